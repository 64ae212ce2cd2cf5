// RFC 8460 5: sending one day's reports, each to every destination its domain names, once; a
// destination that fails is tried again with backoff for up to a day (5.5), and what was sent is kept
// so that a restart, or a second process on the same store, never sends a report twice. The transports
// (mail through Haraka's outbound, HTTPS) and the clock are given by the caller.
import type { Answer } from '../dns/answer'
import { parseTlsrptRecords, tlsrptRecordName } from './policy-record'
import { reportOfTallies, reportFilename, reportId, submitterOf, type Reporter } from './report'
import { gzipReport, reportMessage } from './message'
import type { DayResults, Delivery, SentStore } from './store'

/** RFC 8460 5.5: a failed delivery is tried again for up to 24 hours after the first attempt. */
export const RETRY_FOR_MS = 24 * 3600_000
const FIRST_BACKOFF_MS = 5 * 60_000
const MAX_BACKOFF_MS = 4 * 3600_000

export interface SendDeps {
    reporter: Reporter
    /** the From address of report mail (RFC 8460 5.3) */
    from: string
    lookupTxt(name: string): Promise<Answer>
    sendMail(to: string, message: string): Promise<{ ok: boolean; detail: string }>
    postHttps(url: string, gz: Buffer): Promise<{ ok: boolean; detail: string }>
    now(): number
    /** a unique token (Message-ID, MIME boundary) */
    unique(): string
}

export type DestinationState = 'done' | 'due' | 'wait' | 'expired'

/** 5 minutes, doubling with each failure, at most 4 hours. */
export function backoffMs(failures: number): number {
    return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, failures - 1))
}

/** Whether a destination's report is delivered, due now, waiting for its next try, or given up on. */
export function destinationState(deliveries: Delivery[], uri: string, now: number): DestinationState {
    const mine = deliveries.filter((d) => d.uri === uri)
    if (mine.some((d) => d.ok)) return 'done'
    if (mine.length === 0) return 'due'
    if (now - mine[0].at > RETRY_FOR_MS) return 'expired'
    return now >= mine[mine.length - 1].at + backoffMs(mine.length) ? 'due' : 'wait'
}

/**
 * RFC 8460 4.1: a day's report goes out some time after the day ends, not at midnight: `afterMin` minutes
 * after 00:00 UTC, plus a spread by domain (a hash of its name, the same in every process) so that the
 * reports of many domains do not all go at once.
 */
export function reportDueAt(day: string, domain: string, afterMin: number, spreadMin: number): number {
    let h = 2166136261
    for (let i = 0; i < domain.length; i++) h = Math.imul(h ^ domain.charCodeAt(i), 16777619) >>> 0
    const spreadMs = spreadMin * 60_000
    return Date.parse(`${day}T00:00:00Z`) + 86400_000 + afterMin * 60_000 + (spreadMs > 0 ? h % spreadMs : 0)
}

export interface DomainOutcome {
    domain: string
    /** what was done with each destination this time */
    sent: Delivery[]
    /** why nothing was sent: no TLSRPT record, a lookup failure (tried again later), held by another process */
    skipped?: string
    /** the domain's report is to be looked at again: not due yet, a destination still within its retries, a lookup failure, another process's claim, an error */
    pending?: boolean
}

/**
 * Send the reports of `day` that are due. The TLSRPT record is looked up now (it says where reports go
 * today); a failed lookup is tried again on the next call; a domain without a valid record gets none.
 */
export async function sendDueReports(
    day: string,
    results: DayResults,
    deps: SendDeps,
    store: SentStore,
    only?: string,
    notBefore?: (domain: string) => number,
): Promise<DomainOutcome[]> {
    const out: DomainOutcome[] = []
    for (const domain of [...results.domains].sort()) {
        if (only !== undefined && domain !== only) continue
        if (notBefore && deps.now() < notBefore(domain)) {
            out.push({ domain, sent: [], pending: true })
            continue
        }
        // one domain's trouble (a store that cannot be read, a transport that throws) is not every domain's
        try {
            const o = await sendDomain(day, domain, results, deps, store)
            if (o) out.push(o)
        } catch (e) {
            out.push({ domain, sent: [], skipped: `not sent this round: ${(e as Error)?.message ?? e}`, pending: true })
        }
        // many domains: let deliveries go on between them
        await new Promise((r) => setImmediate(r))
    }
    return out
}

async function sendDomain(day: string, domain: string, results: DayResults, deps: SendDeps, store: SentStore): Promise<DomainOutcome | null> {
    const txt = await deps.lookupTxt(tlsrptRecordName(domain))
    if (txt.status === 'failed')
        return { domain, sent: [], skipped: `TXT lookup for ${txt.name} failed (${txt.reason ?? 'unknown'}); tried again later`, pending: true }
    const policy = parseTlsrptRecords(txt.status === 'ok' ? (txt.txt ?? []) : [])
    if (policy.kind === 'none') return { domain, sent: [], skipped: policy.reason }
    const rua = policy.policy.rua
    let deliveries = await store.deliveries(day, domain)
    const stateOf = (uri: string): DestinationState => destinationState(deliveries, uri, deps.now())
    const open = (): boolean => rua.some((u) => stateOf(u.uri) === 'due' || stateOf(u.uri) === 'wait')
    // nothing due: no report built, no claim taken
    if (!rua.some((u) => stateOf(u.uri) === 'due')) return { domain, sent: [], pending: open() || store.hasUnwritten(day, domain) }
    // a domain's counts are read only when its report is due
    const report = reportOfTallies(day, domain, await results.tallies(domain), deps.reporter)
    if (!report) return null
    const token = await store.claim(day, domain, deps.now())
    if (!token) return { domain, sent: [], skipped: 'another process is sending this report', pending: true }
    // released at the end (the store keeps it while a delivery is not written: lib/tlsrpt/store KeepingSentStore)
    try {
        // read again under the claim: another process may have sent it since
        deliveries = await store.deliveries(day, domain)
        const gz = gzipReport(report)
        const sent: Delivery[] = []
        for (const u of rua) {
            if (stateOf(u.uri) !== 'due') continue
            let r: { ok: boolean; detail: string }
            try {
                if (u.scheme === 'https') r = await deps.postHttps(u.url, gz)
                else {
                    const submitter = submitterOf(deps.reporter)
                    const message = reportMessage({
                        from: deps.from,
                        to: u.address,
                        domain,
                        submitter,
                        reportId: reportId(day, domain, deps.reporter),
                        filename: reportFilename(day, domain, deps.reporter),
                        gz,
                        date: new Date(deps.now()),
                        messageId: `${deps.unique()}.${day}.${domain}@${submitter}`,
                        boundary: `tlsrpt-${deps.unique()}`,
                    })
                    r = await deps.sendMail(u.address, message)
                }
            } catch (e) {
                r = { ok: false, detail: (e as Error)?.message ?? String(e) }
            }
            const d: Delivery = { uri: u.uri, ok: r.ok, detail: r.detail, at: deps.now() }
            const unwritten = await store.add(day, domain, d)
            deliveries.push(d)
            if (unwritten) {
                sent.push({
                    ...d,
                    detail: `${d.detail}; not recorded in the store (${unwritten}): kept here and written on the next round; the claim is held until then`,
                })
                return { domain, sent, pending: true }
            }
            sent.push(d)
            // the claim expired meanwhile (a slow transport) and may be another's now: stop here
            if (!(await store.renew(day, domain, token, deps.now())))
                return { domain, sent, skipped: 'the claim on this report was lost; the rest next round', pending: true }
        }
        return { domain, sent, pending: open() }
    } finally {
        await store.release(day, domain, token)
    }
}
