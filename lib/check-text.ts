// The text the command prints for a check (bin/haraka-dane.ts check): the decision for every MX
// host, then what each address's live probe showed and what DANE made of it. Pure.
import { tlsaQueryName, type Decision } from './policy'
import { rfc8460ResultType } from './verify'
import { presentedType, type CheckReport } from './check'

function replyLine(r: { code: number; lines: string[] } | undefined): string {
    return r ? `${r.code} ${r.lines[0] ?? ''}`.trim() : '-'
}

function expiry(days: number | undefined): string {
    if (days === undefined || Number.isNaN(days)) return 'expiry unknown'
    return days < 0 ? `expired ${-days} day(s) ago` : `expires in ${days} day(s)`
}

/** The detail lines after the summary. */
export function renderCheck(decision: Decision, report: CheckReport): string[] {
    const out: string[] = []
    const d = decision
    const mxWord =
        d.hosts.length === 0 && d.action !== 'deliver'
            ? 'no MX host'
            : d.implicitMx
              ? 'implicit MX (no MX RRset)'
              : `MX RRset ${d.mxSecure ? 'secure' : 'insecure'}`
    out.push(`Decision: ${d.action}${d.action === 'deliver' ? '' : ` (${d.reason})`}; ${mxWord}; policy ${d.policy}`)
    for (const h of d.hosts) {
        const hr = report.hosts.find((x) => x.name === h.name)
        out.push('')
        out.push(`MX ${h.preference} ${h.name}: ${h.mode}${hr ? ` [${hr.status}]` : ''}`)
        if (h.cname) out.push(`  CNAME → ${h.cname}`)
        const failed = h.failedFamilies?.length ? `; ${h.failedFamilies.join(', ')} lookup failed, not used` : ''
        out.push(`  addresses: ${h.addresses.length ? h.addresses.join(', ') : '-'} (${h.addressSecure ? 'secure' : 'insecure'}${failed})`)
        if (h.tlsa.state !== 'not-looked-up') {
            const at = h.tlsaBase ? tlsaQueryName(h.tlsaBase) : (h.tlsa.asked ?? [h.name]).map(tlsaQueryName).join(', ')
            out.push(
                `  TLSA ${at}: ${h.tlsa.state}${h.tlsa.state === 'secure' ? `, ${h.tlsa.records.length} record(s), ${h.tlsa.usable} usable` : ''}${h.tlsa.detail ? ` (${h.tlsa.detail})` : ''}`,
            )
            for (const r of h.tlsa.records) out.push(`    ${r.text}`)
        }
        if (h.referenceNames.length && h.mode === 'dane' && h.tlsa.records.some((r) => r.usage === 2))
            out.push(`  reference names (DANE-TA): ${h.referenceNames.join(', ')}`)
        out.push(`  ${h.reason}`)
        for (const p of hr?.problems ?? []) out.push(`  ${p.status}: ${p.text}`)
        for (const n of hr?.notes ?? []) out.push(`  note: ${n}`)
        for (const a of hr?.addresses ?? []) {
            const p = a.probe
            out.push(
                `  ${p.address.includes(':') ? `[${p.address}]` : p.address}:${p.port}${p.certType ? ` ${presentedType(p)}` : ''} [${a.status}] (${p.ms} ms)`,
            )
            if (!p.connected) {
                out.push(`    connect: ${p.error?.message ?? 'failed'}`)
                continue
            }
            out.push(`    greeting: ${replyLine(p.greeting)}`)
            if (p.startTlsOffered !== undefined) out.push(`    STARTTLS: ${p.startTlsOffered ? 'offered' : 'NOT offered'}`)
            if (p.tls) {
                out.push(`    TLS: ${p.tls.protocol ?? '?'} ${p.tls.cipher}; SNI ${p.tls.servername ?? '(none)'}; ${p.tls.handshakeMs} ms`)
                a.chain.forEach((c, i) => {
                    out.push(
                        `    depth ${i}: ${c.subject} (issuer ${c.issuer}; ${c.notBefore.slice(0, 10)} to ${c.notAfter.slice(0, 10)}, ${expiry(a.expiresInDays[i])}${c.ca ? '; CA' : ''})`,
                    )
                })
            }
            if (p.error) out.push(`    error at ${p.error.step}: ${p.error.message}`)
            if (a.verify) {
                if (a.verify.authenticated) {
                    const m = a.verify.match
                    out.push(
                        `    DANE: verified: ${m.record.text} at depth ${m.depth}${m.anchor ? ` (anchor ${m.anchor})` : ''}${a.verify.matchedName ? `; leaf name ${a.verify.matchedName}` : ''}`,
                    )
                    out.push(`    records matching the live chain: ${a.matching.length} of ${a.verify.usable} usable`)
                } else {
                    const f = a.verify.failure
                    out.push(`    DANE: FAILED: ${f.code} (${rfc8460ResultType(f.code)}): ${f.detail}`)
                }
            }
            for (const pr of a.problems) out.push(`    ${pr.status}: ${pr.text}`)
            for (const n of a.notes) out.push(`    note: ${n}`)
        }
    }
    return out
}
