// RFC 8460 4 and 5.1: one domain's aggregate report for one UTC day, built from the session results
// the store kept. Pure: the same results give the same report, byte for byte.
import type { AppliedPolicy, FailureDetails, SessionResult } from './result'

/** Who reports: the [tlsrpt] settings of dane.ini. */
export interface Reporter {
    organizationName: string
    /** an addr-spec (RFC 5321 4.1.2); its domain is the submitter (RFC 8460 5.3) */
    contactInfo: string
}

/** RFC 8460 4.4, with the keys in the RFC's order. */
export interface TlsrptReport {
    'organization-name': string
    'date-range': { 'start-datetime': string; 'end-datetime': string }
    'contact-info': string
    'report-id': string
    policies: {
        policy: { 'policy-type': string; 'policy-string': string[]; 'policy-domain': string; 'mx-host': string[] }
        summary: { 'total-successful-session-count': number; 'total-failure-session-count': number }
        'failure-details'?: Record<string, string | number>[]
    }[]
}

const DAY = /^\d{4}-\d{2}-\d{2}$/

/** The UTC day (YYYY-MM-DD) of a time in milliseconds. */
export function utcDay(ms: number): string {
    return new Date(ms).toISOString().slice(0, 10)
}

/** RFC 8460 4.1: a report covers one full UTC day, 00:00:00 to 23:59:59 (as in its Appendix B). */
export function dayRange(day: string): { start: string; end: string; startS: number; endS: number } {
    if (!DAY.test(day) || Number.isNaN(Date.parse(`${day}T00:00:00Z`))) throw new Error(`not a day (YYYY-MM-DD): ${day}`)
    const startS = Date.parse(`${day}T00:00:00Z`) / 1000
    return { start: `${day}T00:00:00Z`, end: `${day}T23:59:59Z`, startS, endS: startS + 86399 }
}

export function submitterOf(r: Reporter): string {
    return r.contactInfo.slice(r.contactInfo.lastIndexOf('@') + 1).toLowerCase()
}

/**
 * RFC 8460 4.4 report-id: stable for a domain and a day, so that a report sent again (a retry) carries
 * the same id and the receiver can drop the copy (RFC 8460 5.3: the Subject's Report-ID is for that). Two
 * machines with journals of their own would send different reports under one id, and one would be
 * dropped: one submitter domain has one reporting store. It is also a valid msg-id ("<" id ">").
 */
export function reportId(day: string, domain: string, r: Reporter): string {
    return `${day}.${domain}@${submitterOf(r)}`
}

/** RFC 8460 5.1: sender!policy-domain!begin-timestamp!end-timestamp.json.gz */
export function reportFilename(day: string, domain: string, r: Reporter): string {
    const { startS, endS } = dayRange(day)
    return `${submitterOf(r)}!${domain}!${startS}!${endS}.json.gz`
}

function policyKey(p: AppliedPolicy): string {
    return JSON.stringify([p.type, p.strings, p.domain, p.mxHosts])
}

// RFC 8460 4.4 failure-details, the optional fields only when known
function failureEntry(d: FailureDetails, count: number): Record<string, string | number> {
    const e: Record<string, string | number> = { 'result-type': d.resultType }
    if (d.sendingMtaIp !== undefined) e['sending-mta-ip'] = d.sendingMtaIp
    if (d.receivingMxHostname !== undefined) e['receiving-mx-hostname'] = d.receivingMxHostname
    if (d.receivingMxHelo !== undefined) e['receiving-mx-helo'] = d.receivingMxHelo
    if (d.receivingIp !== undefined) e['receiving-ip'] = d.receivingIp
    e['failed-session-count'] = count
    if (d.additionalInformation !== undefined) e['additional-information'] = d.additionalInformation
    if (d.failureReasonCode !== undefined) e['failure-reason-code'] = d.failureReasonCode
    return e
}

/**
 * Equal results counted together: what a report is made of, and what a shared store (Redis) keeps
 * instead of every result. `failure` is present on failures whose details are known.
 */
export interface Tally {
    policy: AppliedPolicy
    ok: boolean
    failure?: FailureDetails
    count: number
}

const FAILURE_FIELDS = ['sendingMtaIp', 'receivingMxHostname', 'receivingMxHelo', 'receivingIp', 'additionalInformation', 'failureReasonCode'] as const
const POLICY_TYPES: readonly string[] = ['tlsa', 'sts', 'no-policy-found']

/**
 * The key under which equal results are counted: the policy, success, and the failure's details, in a
 * fixed order (equal results, one key), and read back by tallyOfKey (a shared store keeps the counts under it).
 */
export function tallyKey(t: Omit<Tally, 'count'>): string {
    const f = t.failure
    return JSON.stringify([
        t.policy.type,
        t.policy.strings,
        t.policy.domain,
        t.policy.mxHosts,
        t.ok,
        f ? [f.resultType, ...FAILURE_FIELDS.map((k) => f[k] ?? null)] : null,
    ])
}

const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string')

/** A tallyKey read back, with its count; undefined for anything else (a store's garbage is not reported). */
export function tallyOfKey(key: string, count: number): Tally | undefined {
    let v: unknown
    try {
        v = JSON.parse(key)
    } catch {
        return undefined
    }
    if (!Array.isArray(v) || v.length !== 6 || !Number.isSafeInteger(count) || count < 1) return undefined
    const [type, strings, domain, mxHosts, ok, f] = v as unknown[]
    if (
        typeof type !== 'string' ||
        !POLICY_TYPES.includes(type) ||
        !isStrings(strings) ||
        typeof domain !== 'string' ||
        !isStrings(mxHosts) ||
        typeof ok !== 'boolean'
    )
        return undefined
    const policy = { type: type as AppliedPolicy['type'], strings, domain, mxHosts }
    if (f === null) return { policy, ok, count }
    if (ok || !Array.isArray(f) || f.length !== FAILURE_FIELDS.length + 1 || typeof f[0] !== 'string' || !f.every((x) => x === null || typeof x === 'string'))
        return undefined
    const failure = { resultType: f[0] } as FailureDetails
    FAILURE_FIELDS.forEach((k, i) => {
        if (f[i + 1] !== null) failure[k] = f[i + 1] as string
    })
    return { policy, ok, failure, count }
}

/**
 * The results of `domain` on `day` counted by tallyKey (others are ignored, and a result offered twice,
 * by id, counts once).
 */
export function tallyResults(day: string, domain: string, results: Iterable<SessionResult>): Tally[] {
    const seen = new Set<string>()
    const out = new Map<string, Tally>()
    for (const res of results) {
        if (res.recipientDomain !== domain || utcDay(res.at) !== day || seen.has(res.id)) continue
        seen.add(res.id)
        const t = { policy: res.policy, ok: res.ok, ...(res.ok || !res.failure ? {} : { failure: res.failure }) }
        const key = tallyKey(t)
        const had = out.get(key)
        if (had) had.count++
        else out.set(key, { ...t, count: 1 })
    }
    return [...out.values()]
}

/** The report of `domain` for `day` from its results (see tallyResults). Null when there is nothing to report. */
export function buildReport(day: string, domain: string, results: Iterable<SessionResult>, r: Reporter): TlsrptReport | null {
    return reportOfTallies(day, domain, tallyResults(day, domain, results), r)
}

/**
 * The report of `domain` for `day` from counted results. Policies and failure details are grouped by
 * equal content and sorted, so that the report depends neither on the order the results were stored in
 * nor on how the store grouped them. Null when there is nothing to report.
 */
export function reportOfTallies(day: string, domain: string, tallies: Iterable<Tally>, r: Reporter): TlsrptReport | null {
    const { start, end } = dayRange(day)
    const groups = new Map<string, { policy: AppliedPolicy; ok: number; failed: number; failures: Map<string, { d: FailureDetails; n: number }> }>()
    for (const t of tallies) {
        if (!(t.count > 0)) continue
        const key = policyKey(t.policy)
        let g = groups.get(key)
        if (!g) groups.set(key, (g = { policy: t.policy, ok: 0, failed: 0, failures: new Map() }))
        if (t.ok) {
            g.ok += t.count
            continue
        }
        g.failed += t.count
        if (t.failure) {
            const fk = JSON.stringify(failureEntry(t.failure, 0))
            const f = g.failures.get(fk)
            if (f) f.n += t.count
            else g.failures.set(fk, { d: t.failure, n: t.count })
        }
    }
    if (groups.size === 0) return null
    const policies = [...groups.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([, g]) => {
            const failureDetails = [...g.failures.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, f]) => failureEntry(f.d, f.n))
            return {
                policy: { 'policy-type': g.policy.type, 'policy-string': g.policy.strings, 'policy-domain': g.policy.domain, 'mx-host': g.policy.mxHosts },
                summary: { 'total-successful-session-count': g.ok, 'total-failure-session-count': g.failed },
                ...(failureDetails.length ? { 'failure-details': failureDetails } : {}),
            }
        })
    return {
        'organization-name': r.organizationName,
        'date-range': { 'start-datetime': start, 'end-datetime': end },
        'contact-info': r.contactInfo,
        'report-id': reportId(day, domain, r),
        policies,
    }
}
