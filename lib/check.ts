// The verdicts of the command-line tool (bin/haraka-dane.ts), as pure
// functions: a policy Decision plus live probe results → a Nagios-style status
// with the reasons; a Decision plus a candidate certificate chain → whether
// every DANE host would authenticate it (key rollover). No I/O: the command
// does the DNS and the probing and prints what these return.
import { createHash, X509Certificate } from 'node:crypto'
import type { Decision, HostDecision } from './policy'
import type { ResultType } from './result-type'
import { tlsaQueryName } from './policy'
import type { ProbeResult } from './probe'
import type { Answer } from './dns/answer'
import { strongestDigests, type TlsaRecord } from './tlsa'
import { associationData, parseChain, rfc8460ResultType, verifyChain, type ParsedChain, type VerifyResult } from './verify'

export type Status = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN'

/** Nagios plugin exit codes */
export const EXIT_CODE: Record<Status, number> = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 }
const RANK: Record<Status, number> = { OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3 }

export function worst(...s: Status[]): Status {
    return s.reduce<Status>((a, b) => (RANK[b] > RANK[a] ? b : a), 'OK')
}

export interface Problem {
    status: Status
    text: string
    /** RFC 8460 result type, when one fits (C25) */
    resultType?: ResultType
}

export interface CertSummary {
    subject: string
    issuer: string
    notBefore: string
    notAfter: string
    selfIssued: boolean
    ca: boolean
    sha256: string
}

export interface AddressReport {
    address: string
    probe: ProbeResult
    /** days until each presented certificate expires (negative: expired), leaf first */
    expiresInDays: number[]
    /**
     * where dates matter, whole days the presented chain stays valid: under DANE-TA until the chain would no longer
     * verify (whatever order or extras it was sent with, a DNS-given anchor included); under PKIX (MTA-STS) until
     * the leaf expires. Undefined for DANE-EE, encrypt and opportunistic hosts (no dates checked).
     */
    validDays?: number
    chain: CertSummary[]
    /** DANE hosts whose probe got a chain */
    verify?: VerifyResult
    /** usable records (after digest agility) that each alone authenticate the live chain */
    matching: string[]
    status: Status
    problems: Problem[]
    notes: string[]
}

export interface HostReport {
    name: string
    mode: HostDecision['mode']
    status: Status
    problems: Problem[]
    notes: string[]
    addresses: AddressReport[]
}

export interface CheckReport {
    domain: string
    status: Status
    exitCode: number
    /** the first output line, "DANE OK - ... | perfdata" */
    summary: string
    problems: Problem[]
    hosts: HostReport[]
    /** Nagios performance data (after the "|" of the summary) */
    perfdata: PerfData
}

/** Trends for a graphing monitor: the DNS decision's time, the slowest handshake, the days to the nearest expiry that matters. */
export interface PerfData {
    dnsMs?: number
    handshakeMs?: number
    expiryDays?: number
    /** the --days threshold, the WARNING level of expiryDays */
    warnDays?: number
}

const DAY_MS = 86400_000

/** "'dns_ms'=12ms;;;0 'handshake_ms'=4ms;;;0 'expiry_days'=29;14:;0:" (Nagios plugin guidelines) */
export function renderPerfData(p: PerfData): string {
    const out: string[] = []
    if (p.dnsMs !== undefined) out.push(`'dns_ms'=${p.dnsMs}ms;;;0`)
    if (p.handshakeMs !== undefined) out.push(`'handshake_ms'=${p.handshakeMs}ms;;;0`)
    // "alert below" ranges (Nagios plugin guidelines): WARNING under --days, CRITICAL once expired
    if (p.expiryDays !== undefined) out.push(`'expiry_days'=${p.expiryDays};${p.warnDays ? `${p.warnDays}:` : ''};0:`)
    return out.join(' ')
}

export interface CheckOptions {
    now?: Date
    /** the MX lookup failed because the resolver itself could not be reached: the check cannot tell anything (UNKNOWN) */
    resolverUnreachable?: boolean
    /** looking ahead (`--days N`): a chain whose dates matter that would not verify, or a certificate that expires, within N days is a WARNING */
    days?: number
    /** the resolver self-test: the answer for a name that must validate (AD set); none set → DANE is silently off (CRITICAL) */
    selfTest?: Answer
    /** each host with secure TLSA denials → the answers for A at those TLSA names (internet.nl's check that a denial is not broken) */
    denial?: Record<string, Answer[]>
    /** hosts whose addresses -4/-6 all filtered out → the family asked for ("IPv4", "IPv6") */
    unprobed?: Record<string, string>
    /** how long the DNS decision took (perfdata) */
    dnsMs?: number
}

/** "3 1 1 0123456789abcdef…" */
export function briefRecord(text: string, hexChars = 16): string {
    const m = /^(\S+ \S+ \S+ )(\S+)$/.exec(text)
    if (!m || m[2].length <= hexChars) return text
    return `${m[1]}${m[2].slice(0, hexChars)}…`
}

function label(host: string, address?: string): string {
    return address ? `${host} [${address}]` : host
}

function dn(s: string): string {
    return s.split('\n').filter(Boolean).join(', ')
}

export function summarizeCert(der: Buffer): CertSummary {
    const sha256 = createHash('sha256').update(der).digest('hex')
    try {
        const c = new X509Certificate(der)
        return {
            subject: dn(c.subject),
            issuer: dn(c.issuer),
            notBefore: new Date(c.validFrom).toISOString(),
            notAfter: new Date(c.validTo).toISOString(),
            selfIssued: c.subject === c.issuer,
            ca: c.ca,
            sha256,
        }
    } catch (e) {
        return { subject: `(unparseable: ${(e as Error).message})`, issuer: '', notBefore: '', notAfter: '', selfIssued: false, ca: false, sha256 }
    }
}

/** Usable records (after RFC 7671 9 digest agility) that, each on its own, authenticate the chain. */
export function matchingRecords(chain: ParsedChain, records: TlsaRecord[], referenceNames: string[], now?: Date): TlsaRecord[] {
    return strongestDigests(records).filter((r) => verifyChain({ chain, records: [r], referenceNames, now }).authenticated)
}

// C9, C12, C14-C18, C25: one address of one host, from its probe
function assessAddress(host: HostDecision, probe: ProbeResult, now: Date | undefined, days = 0, typed = false): AddressReport {
    // an address that served both certificate types is judged for each, and each is named
    const where = label(host.name, probe.address) + (typed && probe.certType ? ` (${presentedType(probe)})` : '')
    const chainDer = probe.tls?.chain ?? []
    const t = (now ?? new Date()).getTime()
    const chainSummary = chainDer.map(summarizeCert)
    const report: AddressReport = {
        address: probe.address,
        probe,
        chain: chainSummary,
        expiresInDays: chainSummary.map((c) => Math.floor((Date.parse(c.notAfter) - t) / DAY_MS)),
        matching: [],
        status: 'OK',
        problems: [],
        notes: [],
    }
    const add = (status: Status, text: string, resultType?: ResultType): void => {
        report.problems.push({ status, text, resultType })
        report.status = worst(report.status, status)
    }
    const mandatory = host.mode === 'dane' || host.mode === 'encrypt' || host.mode === 'sts'
    const why = host.mode === 'dane' ? 'DANE requires TLS' : host.mode === 'sts' ? 'MTA-STS (enforce) requires TLS' : 'TLS is mandatory'
    const err = probe.error

    // could not talk SMTP at all: the host is not usable now, but that says nothing about DANE
    if (err && (err.step === 'connect' || err.step === 'greeting' || err.step === 'ehlo')) {
        add('WARNING', `${where} could not be probed (${err.step}: ${err.message})`)
        return report
    }
    if (probe.startTlsOffered === false) {
        if (mandatory) add('CRITICAL', `${where} does not offer STARTTLS; ${why} (starttls-not-supported)`, 'starttls-not-supported')
        else report.notes.push(`${where} does not offer STARTTLS: mail to it would go in plaintext`)
        return report
    }
    if (err && err.step === 'starttls') {
        if (mandatory) add('CRITICAL', `${where}: ${err.message}; ${why} (starttls-not-supported)`, 'starttls-not-supported')
        else report.notes.push(`${where}: ${err.message}: mail to it would go in plaintext`)
        return report
    }
    if (err && err.step === 'tls') {
        if (mandatory) add('CRITICAL', `${where}: TLS handshake failed: ${err.message} (validation-failure)`, 'validation-failure')
        else report.notes.push(`${where}: TLS handshake failed (${err.message}): Haraka would retry without TLS`)
        return report
    }
    if (!probe.tls) {
        add('WARNING', `${where}: probe ended without TLS${err ? ` (${err.step}: ${err.message})` : ''}`)
        return report
    }
    // MTA-STS: a PKIX-valid certificate for the MX host name, required (enforce) or reported (testing)
    const pkix = probe.tls.pkix
    if (pkix && !pkix.ok) {
        if (host.mode === 'sts') add('CRITICAL', `${where} fails MTA-STS: ${pkix.detail} (${pkix.resultType})`, pkix.resultType)
        else add('WARNING', `${where} would fail MTA-STS if the policy were enforced: ${pkix.detail} (${pkix.resultType})`, pkix.resultType)
    } else if (pkix) report.notes.push(`${where}: certificate PKIX-valid for ${host.name} (MTA-STS ${host.sts?.mode ?? ''})`.replace(' )', ')'))
    if (pkix?.ok && report.expiresInDays.length) {
        const left = report.expiresInDays[0]
        report.validDays = left
        if (days > 0 && left < days) add('WARNING', `${where}: its certificate expires in ${left} day(s), within ${days} (MTA-STS needs it PKIX-valid)`)
    }
    if (host.mode !== 'dane') return report

    const chain = parseChain(chainDer)
    const v = verifyChain({ chain, records: host.tlsa.records, referenceNames: host.referenceNames, now })
    report.verify = v
    if (!v.authenticated) {
        const f = v.failure
        const rt = rfc8460ResultType(f.code)
        add('CRITICAL', `${where} fails DANE verification: ${f.code}: ${f.detail} (${rt})`, rt)
        return report
    }
    // looking ahead: DANE-TA checks the dates of the chain below the anchor; DANE-EE none (RFC 7672 3.1.1)
    if (v.match.record.usage === 2) {
        const valid = validityDays(chain, host, t)
        report.validDays = valid.days
        if (days > 0 && valid.days < days)
            add('WARNING', `${where} would fail DANE verification in ${valid.days} day(s), within ${days}: ${valid.failure ?? 'its dates'}`)
    }
    const matching = matchingRecords(chain, host.tlsa.records, host.referenceNames, now)
    report.matching = matching.map((r) => r.text)
    const m = v.match
    if (m.record.usage === 3 && chain.certs[0]) {
        // C14: DANE-EE ignores dates and names; say so, since other tools will complain about them
        const leaf = chain.certs[0]
        const t = (now ?? new Date()).getTime()
        if (Date.parse(leaf.validTo) < t)
            report.notes.push(
                `the leaf expired ${new Date(leaf.validTo).toISOString().slice(0, 10)}: ignored by DANE-EE (RFC 7672 3.1.1), but PKIX clients will reject it`,
            )
        else if (Date.parse(leaf.validFrom) > t)
            report.notes.push(`the leaf is not valid before ${new Date(leaf.validFrom).toISOString()}: ignored by DANE-EE (RFC 7672 3.1.1)`)
    }
    return report
}

/** the longest look ahead: a chain valid that long is reported as valid for that many days */
const MAX_LOOKAHEAD_DAYS = 3650

/**
 * DANE-TA: whole days the chain stays valid. Validity changes only when a presented certificate expires, so the
 * chain is verified again just after each presented certificate's notAfter, in date order, and the first instant
 * it fails counts: exactly the certificates the validated path uses matter (any order, extras, a DNS-given anchor
 * whose dates are not checked), and a path that fails for a while before another one becomes valid is caught.
 */
function validityDays(chain: ParsedChain, host: HostDecision, t: number): { days: number; failure?: string } {
    const instants = [...new Set(chain.certs.map((c) => Date.parse(c.validTo) + 1000))]
        .filter((x) => Number.isFinite(x) && x > t && x <= t + MAX_LOOKAHEAD_DAYS * DAY_MS)
        .sort((a, b) => a - b)
    for (const x of instants) {
        const v = verifyChain({ chain, records: host.tlsa.records, referenceNames: host.referenceNames, now: new Date(x) })
        if (!v.authenticated) return { days: Math.floor((x - 1000 - t) / DAY_MS), failure: `${v.failure.code}: ${v.failure.detail}` }
    }
    return { days: MAX_LOOKAHEAD_DAYS }
}

/**
 * A handshake refused because the server has no certificate for the signature algorithms offered (TLS alert 40),
 * or a server that signed with its one key type whatever was offered (OpenSSL: wrong signature type).
 */
const TYPE_NOT_SERVED = /alert handshake failure|no shared cipher|no suitable signature algorithm|no shared signature algorithms|wrong signature type/i

/**
 * Probes of one address with each certificate type (ECDSA, then RSA): a type the server does not serve (its
 * handshake refused with alert 40 while the other type's succeeded) is a note, not a failure; every other
 * outcome of each type is judged, and a failure both types met before TLS (connect, EHLO, STARTTLS) is judged
 * once. When both handshakes were refused as "not served", the server served neither: judged once.
 */
function typedProbes(probes: ProbeResult[]): { judged: ProbeResult[]; notes: string[] } {
    const notes: string[] = []
    const judged: ProbeResult[] = []
    const byAddress = new Map<string, ProbeResult[]>()
    for (const p of probes) {
        if (!p) continue
        if (!p.certType) judged.push(p)
        else byAddress.set(p.address, [...(byAddress.get(p.address) ?? []), p])
    }
    for (const [address, typed] of byAddress) {
        const notServed = (p: ProbeResult): boolean => !p.tls && p.error?.step === 'tls' && TYPE_NOT_SERVED.test(p.error.message)
        const preTls = (p: ProbeResult): boolean => !p.tls && p.error?.step !== 'tls'
        const served = typed.filter((p) => p.tls)
        for (const p of typed) {
            if (notServed(p) && (served.length > 0 || typed.some(preTls))) {
                notes.push(
                    served.length > 0
                        ? `${address} serves no ${p.certType} certificate (a handshake offering only ${p.certType} signature algorithms was refused: ${p.error?.message})`
                        : `${address}: a handshake offering only ${p.certType} signature algorithms was refused (${p.error?.message}); the other type could not be probed, so whether it serves ${p.certType} is not known`,
                )
                continue
            }
            // the same failure before TLS, or "served neither", for every type: judged once
            const twin = judged.find(
                (q) => q.address === address && q.certType && !q.tls && q.error?.step === p.error?.step && q.error?.message === p.error?.message,
            )
            if (!p.tls && twin) continue
            judged.push(p)
        }
    }
    return { judged, notes }
}

/** The probe's certificate type as presented (the leaf's key), else as asked. */
export function presentedType(p: ProbeResult): string | undefined {
    return p.tls?.keyType ?? p.certType
}

function hostReport(host: HostDecision, probes: ProbeResult[], now: Date | undefined, days = 0, unprobed?: string): HostReport {
    const r: HostReport = { name: host.name, mode: host.mode, status: 'OK', problems: [], notes: [], addresses: [] }
    const add = (status: Status, text: string, resultType?: ResultType): void => {
        r.problems.push({ status, text, resultType })
        r.status = worst(r.status, status)
    }
    if (host.mode === 'skip') {
        add('WARNING', `${host.name} skipped: ${host.reason}${host.resultType ? ` (${host.resultType})` : ''}`, host.resultType)
        return r
    }
    if (host.failedFamilies?.length) {
        // C7: delivery goes on over the family that answered, but the destination's DNS is broken for the other
        add('WARNING', `${host.name}: ${host.failedFamilies.join(', ')} lookup failed; only the other address family is used`, 'dnssec-invalid')
    }
    if (host.mode === 'encrypt' && host.tlsa.state === 'secure') {
        // C12: secure TLSA, none usable
        add('WARNING', `${host.name}: encrypt only: ${host.reason} (tlsa-invalid)`, 'tlsa-invalid')
    }
    if (unprobed) add('WARNING', `${host.name}: no ${unprobed} address to probe (${host.addresses.join(', ')}); nothing of this host was checked`)
    const { judged, notes } = typedProbes(probes)
    r.notes.push(...notes)
    for (const p of judged) {
        const typed = judged.filter((q) => q.address === p.address && q.certType).length > 1
        const a = assessAddress(host, p, now, days, typed)
        r.addresses.push(a)
        r.status = worst(r.status, a.status)
    }
    if (host.mode === 'dane') rolloverTrap(host, r, add)
    return r
}

/**
 * RFC 7671 8.1, the "current + next" practice: when every usable TLSA record matches a chain the host serves now
 * (with any certificate type), no next key is published, and the next certificate or key change breaks DANE delivery.
 */
function rolloverTrap(host: HostDecision, r: HostReport, add: (s: Status, text: string) => void): void {
    const verified = r.addresses.filter((a) => a.verify?.authenticated)
    if (verified.length === 0) return
    const effective = strongestDigests(host.tlsa.records)
    const matched = new Set(verified.flatMap((a) => a.matching))
    const spare = effective.filter((e) => !matched.has(e.text)).length
    if (spare > 0) {
        r.notes.push(`${spare} usable TLSA record(s) match no chain the host serves now (a pre-published next key?)`)
        return
    }
    // a chain matched by one record alone, and no record beside those that match: its next key change breaks delivery
    // (a 2 x x record for the issuer beside 3 x x for the leaf matches the same chain twice: the issuer survives a leaf change)
    const trap =
        'no next key is published (rollover trap: the next certificate or key change breaks DANE delivery; publish current + next at least 2×TTL before a change)'
    for (const a of verified) {
        if (a.matching.length !== 1) continue
        const m = a.verify!.match!
        // the type is named where the address served more than one
        const typed = verified.some((b) => b !== a && b.address === a.address) ? ` (${presentedType(a.probe)})` : ''
        if (effective.length === 1)
            add(
                'WARNING',
                `${label(host.name, a.address)}${typed} verified by ${briefRecord(m.record.text)} at depth ${m.depth}, but it is the only TLSA record: ${trap}`,
            )
        else
            add(
                'WARNING',
                `${label(host.name, a.address)}${typed} verified by ${briefRecord(m.record.text)} alone, and every other TLSA record matches another chain it serves: ${trap}`,
            )
    }
}

function dnsWhy(d: Decision): string {
    const usable = d.hosts.filter((h) => h.mode !== 'skip')
    if (!d.mxSecure && !d.implicitMx && usable.every((h) => !h.addressSecure)) return 'MX RRset and MX host addresses are not DNSSEC-signed (insecure)'
    if (usable.every((h) => h.tlsa.state === 'not-looked-up')) return 'MX host addresses are not DNSSEC-signed (insecure)'
    if (usable.every((h) => h.tlsa.state === 'insecure')) return 'TLSA answers are insecure'
    return 'no MX host publishes TLSA records'
}

/** The verdict of `haraka-dane check`. `probes` maps each MX host name to the probes of its addresses. */
export function checkVerdict(decision: Decision, probes: Record<string, ProbeResult[]>, opts: CheckOptions = {}): CheckReport {
    const d = decision
    const problems: Problem[] = []
    const hosts: HostReport[] = []
    let status: Status = 'OK'
    let okText = ''
    const add = (s: Status, text: string, resultType?: ResultType): void => {
        problems.push({ status: s, text, resultType })
        status = worst(status, s)
    }

    if (d.action === 'defer') {
        if (opts.resolverUnreachable) add('UNKNOWN', `cannot check: the resolver is unreachable (${d.reason})`)
        else add('CRITICAL', `mail would be deferred: ${d.reason}${d.resultType ? ` (${d.resultType})` : ''}`, d.resultType)
        // a host-level view is still useful in the details
        for (const h of d.hosts) hosts.push({ name: h.name, mode: h.mode, status: 'CRITICAL', problems: [], notes: [], addresses: [] })
    } else if (d.action === 'bounce') {
        if (/null MX/.test(d.reason)) okText = `${d.reason}; DANE does not apply`
        else add('CRITICAL', `mail would bounce: ${d.reason}`)
    } else {
        for (const h of d.hosts) {
            const hr = hostReport(h, h.mode === 'skip' ? [] : (probes[h.name] ?? []), opts.now, opts.days, opts.unprobed?.[h.name])
            // a secure TLSA denial whose name fails validation for another type: the denial of existence is broken
            for (const den of opts.denial?.[h.name] ?? []) {
                if (den.status !== 'failed') continue
                const text = `${h.name}: the denial of TLSA records at ${den.name} looks broken: ${den.type} at the same name fails (${den.reason ?? 'failed'}); resolvers that ask differently may find no proof and defer mail`
                hr.problems.push({ status: 'WARNING', text, resultType: 'dnssec-invalid' })
                hr.status = worst(hr.status, 'WARNING')
            }
            hosts.push(hr)
            for (const p of hr.problems) add(p.status, p.text, p.resultType)
            for (const a of hr.addresses) for (const p of a.problems) add(p.status, p.text, p.resultType)
        }
        const probed = hosts.flatMap((h) => h.addresses)
        if (probed.length > 0 && probed.every((a) => a.probe.error && ['connect', 'greeting', 'ehlo'].includes(a.probe.error.step))) {
            add('CRITICAL', 'no MX host address could be reached')
        }
        const dane = d.hosts.filter((h) => h.mode === 'dane')
        const encrypt = d.hosts.filter((h) => h.mode === 'encrypt')
        const sts = d.hosts.filter((h) => h.mode === 'sts')
        if (dane.length === 0 && encrypt.length === 0 && sts.length > 0) {
            okText = `DANE does not apply (${dnsWhy(d)}); MTA-STS enforce: ${sts.map((h) => h.name).join(', ')} PKIX-valid`
        } else if (dane.length === 0 && encrypt.length === 0) {
            okText = `DANE does not apply: ${dnsWhy(d)}; opportunistic TLS`
        } else {
            const verified = hosts.flatMap((h) =>
                h.addresses.flatMap((a) =>
                    a.verify?.authenticated
                        ? [
                              `${label(h.name, a.address)}${h.addresses.filter((x) => x.address === a.address).length > 1 ? ` (${presentedType(a.probe)})` : ''} verified by ${briefRecord(a.verify.match.record.text)} at depth ${a.verify.match.depth}`,
                          ]
                        : [],
                ),
            )
            okText = verified.length ? verified.join('; ') : `${dane.length} DANE host(s)`
        }
    }

    // the resolver self-test: without AD on a name that must validate, every answer looks insecure and DANE is silently off
    const st = opts.selfTest
    if (st && !opts.resolverUnreachable) {
        if (st.status === 'failed')
            add(
                'UNKNOWN',
                `the resolver self-test got no answer: ${st.type} ${st.name || '.'} failed (${st.reason ?? 'unknown'}); --selftest NAME names a signed name this resolver can answer`,
            )
        else if (!st.secure)
            add(
                'CRITICAL',
                `the resolver does not validate: ${st.type} ${st.name || '.'} ${st.status}, AD not set; every answer would look insecure and DANE would never apply`,
            )
    }
    const probing = d.hosts.filter((h) => h.mode !== 'skip' && h.mode !== 'plaintext')
    if (d.action === 'deliver' && probing.length > 0 && probing.every((h) => opts.unprobed?.[h.name]))
        add('UNKNOWN', `nothing was probed: no MX host has an ${opts.unprobed?.[probing[0].name]} address`)
    const addresses = hosts.flatMap((h) => h.addresses)
    const handshakes = addresses.flatMap((a) => (a.probe.tls ? [a.probe.tls.handshakeMs] : []))
    const mattering = addresses.flatMap((a) => (a.validDays === undefined ? [] : [a.validDays]))
    const perfdata: PerfData = {
        dnsMs: opts.dnsMs,
        handshakeMs: handshakes.length ? Math.max(...handshakes) : undefined,
        expiryDays: mattering.length ? Math.min(...mattering) : undefined,
        warnDays: opts.days || undefined,
    }
    const worstProblems = problems.filter((p) => p.status === status)
    const others = problems.length - worstProblems.length
    const head = status === 'OK' ? okText : worstProblems.map((p) => p.text).join('; ')
    const tail = others > 0 ? ` (+${others} more below)` : ''
    return {
        domain: d.domain,
        status,
        exitCode: EXIT_CODE[status],
        summary: `DANE ${status} - ${d.domain}: ${head}${tail}${renderPerfData(perfdata) ? ` | ${renderPerfData(perfdata)}` : ''}`,
        problems,
        hosts,
        perfdata,
    }
}

// ---------------------------------------------------------------------------
// Rollover
// ---------------------------------------------------------------------------

export interface RolloverHost {
    name: string
    tlsaBase?: string
    /** TLSA RRset TTL as the resolver reported it (remaining cache time), when known */
    ttl?: number
    ok: boolean
    status: Status
    text: string
    verify?: VerifyResult
    /** presentation lines to publish when the new chain does not authenticate */
    publish: string[]
}

export interface RolloverReport {
    domain: string
    status: Status
    exitCode: number
    summary: string
    hosts: RolloverHost[]
    /** advice lines (TTL, 2×TTL) */
    advice: string[]
}

/**
 * The records that would authenticate `chain` for a host: the same usage/selector/matching
 * types it publishes today (DANE-EE → the leaf, DANE-TA → each CA certificate of the chain),
 * or `3 1 1` of the leaf when it publishes nothing usable.
 */
export function suggestedRecords(chain: ParsedChain, host: HostDecision): string[] {
    const certs = chain.certs
    if (certs.length === 0) return []
    const kinds = new Set(strongestDigests(host.tlsa.records).map((r) => `${r.usage} ${r.selector} ${r.mtype}`))
    if (kinds.size === 0) kinds.add('3 1 1')
    const out = new Set<string>()
    for (const k of kinds) {
        const [usage, selector, mtype] = k.split(' ').map(Number)
        const targets = usage === 3 ? [certs[0]] : certs.slice(1).filter((c) => c.ca)
        for (const c of targets) out.add(`${usage} ${selector} ${mtype} ${associationData(c, selector, mtype).toString('hex')}`)
    }
    if (out.size === 0) {
        // DANE-TA published, but the new chain file carries no CA certificate
        out.add(`3 1 1 ${associationData(certs[0], 1, 1).toString('hex')}`)
    }
    return [...out]
}

/** Would every DANE host of the domain authenticate `nextChain`? ttls: TLSA query name → TTL. */
export function rolloverVerdict(decision: Decision, nextChain: ParsedChain, ttls: Record<string, number>, now?: Date): RolloverReport {
    const d = decision
    const hosts: RolloverHost[] = []
    let status: Status = 'OK'
    const advice: string[] = []

    if (d.action !== 'deliver') {
        const s: Status = d.action === 'defer' ? 'CRITICAL' : 'WARNING'
        return {
            domain: d.domain,
            status: s,
            exitCode: EXIT_CODE[s],
            summary: `DANE ROLLOVER ${s} - ${d.domain}: cannot check, mail would ${d.action === 'defer' ? 'be deferred' : 'bounce'}: ${d.reason}`,
            hosts,
            advice,
        }
    }
    for (const h of d.hosts) {
        // a host whose TLSA lookup fails cannot be confirmed (C11)
        if (h.mode === 'skip' && h.tlsa.state === 'failed') {
            hosts.push({ name: h.name, ok: false, status: 'CRITICAL', text: `${h.name}: cannot confirm: ${h.reason}`, publish: [] })
            status = worst(status, 'CRITICAL')
            continue
        }
        if (h.mode !== 'dane') continue
        const ttl = h.tlsaBase !== undefined ? ttls[tlsaQueryName(h.tlsaBase)] : undefined
        const v = verifyChain({ chain: nextChain, records: h.tlsa.records, referenceNames: h.referenceNames, now })
        if (v.authenticated) {
            const m = v.match
            hosts.push({
                name: h.name,
                tlsaBase: h.tlsaBase,
                ttl,
                ok: true,
                status: 'OK',
                verify: v,
                publish: [],
                text: `${h.name}: the new chain is authenticated by ${m.record.text} at depth ${m.depth}`,
            })
        } else {
            const f = v.failure ?? { code: 'no-match' as const, detail: 'no TLSA record matched' }
            const publish =
                f.code === 'name-mismatch' || f.code === 'expired' || f.code === 'not-yet-valid' || f.code === 'bad-certificate' || f.code === 'empty-chain'
                    ? []
                    : suggestedRecords(nextChain, h)
            const hint =
                f.code === 'name-mismatch'
                    ? `; the new leaf must carry one of: ${h.referenceNames.join(', ')}`
                    : publish.length
                      ? '; publish (alongside the current records):'
                      : ''
            hosts.push({
                name: h.name,
                tlsaBase: h.tlsaBase,
                ttl,
                ok: false,
                status: 'CRITICAL',
                verify: v,
                publish,
                text: `${h.name}: the new chain would NOT authenticate: ${f.code}: ${f.detail}${hint}`,
            })
            status = worst(status, 'CRITICAL')
        }
    }
    const dane = hosts.filter((h) => h.verify)
    if (dane.length === 0 && status === 'OK') {
        return {
            domain: d.domain,
            status: 'WARNING',
            exitCode: EXIT_CODE.WARNING,
            summary: `DANE ROLLOVER WARNING - ${d.domain}: no DANE host: nothing to check`,
            hosts,
            advice,
        }
    }
    const ttlValues = dane.map((h) => h.ttl).filter((t): t is number => t !== undefined)
    if (ttlValues.length) {
        const ttl = Math.max(...ttlValues)
        advice.push(
            `TLSA TTL ${ttl} s (as seen by the resolver: the time its cached copy has left; the zone's own TTL may be higher). ` +
                `New TLSA records must have been published for at least 2×TTL = ${2 * ttl} s (use the zone's TTL if larger) before the new certificate goes live, ` +
                `and the old records kept until 2×TTL after it.`,
        )
    }
    const bad = hosts.filter((h) => !h.ok)
    const summary =
        status === 'OK'
            ? `DANE ROLLOVER OK - ${d.domain}: all ${dane.length} DANE host(s) would authenticate the new chain`
            : `DANE ROLLOVER CRITICAL - ${d.domain}: ${bad.map((h) => h.name).join(', ')} would not authenticate the new chain`
    return { domain: d.domain, status, exitCode: EXIT_CODE[status], summary, hosts, advice }
}

export { renderCheck } from './check-text'
