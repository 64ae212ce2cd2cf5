// Where TLS report results and the state of their sending are kept: the interface both stores give, the
// journal under Haraka's directory (lib/tlsrpt/journal.ts, one machine) and Redis
// (lib/tlsrpt/redis-store.ts, several machines sending one report per domain and day between them).
import { domainsWithResults, tallyResults, type Tally } from './report'
import type { SessionResult } from './result'

/** How long a claim holds before another process may take it over (a sender that died or hung). */
export const CLAIM_MS = 10 * 60_000

/** One attempt to deliver one report to one destination. */
export interface Delivery {
    uri: string
    ok: boolean
    detail: string
    at: number
}

/** What was sent, and who is sending: shared by every process that sends from the same store. */
export interface SentStore {
    deliveries(day: string, domain: string): Promise<Delivery[]>
    /** Keep a delivery; never rejects: why it could not be written (it is then kept in memory), or undefined. */
    add(day: string, domain: string, d: Delivery): Promise<string | undefined>
    /** Claim a domain's report for a while: a token, or undefined while another holds it. */
    claim(day: string, domain: string, now: number): Promise<string | undefined>
    /** Keep holding it (between destinations). */
    renew(day: string, domain: string, token: string, now: number): Promise<void>
    /** Give it up, if it is still this token's. */
    release(day: string, domain: string, token: string): Promise<void>
}

/** One day's results as a sender reads them: the domains, then each domain's counts when it is due. */
export interface DayResults {
    domains: string[]
    tallies(domain: string): Promise<Tally[]>
}

export interface TlsrptStore {
    /** where it keeps things, for messages (a directory, a Redis URL without its password) */
    readonly where: string
    /** Keep one result. Never throws and never waits: a store that cannot write reports it through its fault callback. */
    add(result: SessionResult): void
    /** The days with results, oldest first. */
    days(): Promise<string[]>
    day(day: string): Promise<DayResults>
    readonly sent: SentStore
    close(): Promise<void>
}

/** A day's results held in memory (the journal's, read once a round; tests). */
export function dayResultsOf(day: string, results: SessionResult[]): DayResults {
    return { domains: domainsWithResults(day, results), tallies: async (domain) => tallyResults(day, domain, results) }
}
