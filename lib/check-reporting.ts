// `haraka-dane check`: a destination's TLS reporting record (RFC 8460 3) and MTA-STS policy (RFC 8461),
// beside its DANE decision. Informational: they change no exit code. The lookups are the caller's (the
// same validating resolver as the decision); this file decides what they mean and how they read.
import type { Answer } from './dns/answer'
import type { Decision } from './policy'
import { parseTlsrptRecords } from './tlsrpt/policy-record'
import { allowedBy } from './mtasts/policy'
import { stsAsked } from './mtasts/apply'
import type { StsOutcome } from './mtasts/service'

export interface TlsrptShown {
    /** where the domain's reports go, or why none is sent */
    destinations?: string[]
    none?: string
}

export interface StsShown {
    /** the record's id, when a record was found */
    id?: string
    policy?: { mode: string; maxAge: number; mx: string[] }
    /** why there is no policy ("no policy (...)": no record, a fetch that failed, an invalid policy) */
    none?: string
    resultType?: string
    /** RFC 8461 2: MTA-STS applies only to MX hosts without DANE (lib/mtasts/apply) */
    applies: boolean
    why: string
    /** each MX host of the decision: the pattern that allows it, or null */
    hosts: { name: string; allowedBy: string | null }[]
}

export function tlsrptShown(txt: Answer): TlsrptShown {
    if (txt.status === 'failed') return { none: `TXT lookup for ${txt.name} failed (${txt.reason ?? 'unknown'})` }
    if (txt.status !== 'ok') return { none: `no TLSRPT record (${txt.name}: ${txt.status})` }
    const parsed = parseTlsrptRecords(txt.txt ?? [])
    return parsed.kind === 'policy' ? { destinations: parsed.policy.rua.map((u) => u.uri) } : { none: parsed.reason }
}

export function stsShown(d: Decision, o: StsOutcome): StsShown {
    const { ask: applies, why } = stsAsked(d)
    const p = o.inForce
    return {
        id: o.id,
        policy: p && { mode: p.mode, maxAge: p.maxAge, mx: p.mx },
        none: p ? undefined : o.reason,
        resultType: o.resultType,
        applies,
        why,
        hosts: d.hosts.map((h) => ({ name: h.name, allowedBy: p ? (allowedBy(h.name, p) ?? null) : null })),
    }
}

/** The lines `check` prints for them, after the DANE verdict. */
export function renderReporting(t: TlsrptShown, s: StsShown): string[] {
    const lines = [t.destinations ? `TLSRPT: reports go to ${t.destinations.join(', ')}` : `TLSRPT: none (${t.none})`]
    if (!s.policy) lines.push(`MTA-STS: ${s.none}${s.resultType ? ` [${s.resultType}]` : ''}`)
    else {
        lines.push(`MTA-STS: policy id ${s.id ?? '?'}, mode ${s.policy.mode}, max_age ${s.policy.maxAge} s, mx ${s.policy.mx.join(', ') || '(none)'}`)
        if (s.policy.mode === 'none') lines.push('  (mode none: the domain has withdrawn its policy; no MX host is restricted)')
        else for (const h of s.hosts) lines.push(`  ${h.name}: ${h.allowedBy ? `allowed (${h.allowedBy})` : 'not allowed by the policy'}`)
    }
    lines.push(`MTA-STS ${s.applies ? 'applies' : 'does not apply'}: ${s.why}`)
    return lines
}
