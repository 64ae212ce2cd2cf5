// Where TLS report results and the state of their sending are kept: the interface both stores give, the
// journal under Haraka's directory (lib/tlsrpt/journal.ts, one machine) and Redis
// (lib/tlsrpt/redis-store.ts, several machines sending one report per domain and day between them).
import { tallyResults, utcDay, type Tally } from './report'
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
    /**
     * Keep a delivery; never rejects: why it could not be written, or undefined. One not written is kept in
     * memory, counted by deliveries(), and written by the next deliveries() of that report that can.
     */
    add(day: string, domain: string, d: Delivery): Promise<string | undefined>
    /** Claim a domain's report for a while: a token, or undefined while another holds it. */
    claim(day: string, domain: string, now: number): Promise<string | undefined>
    /** Keep holding it (between destinations): false when it is not this token's any more. Never rejects. */
    renew(day: string, domain: string, token: string, now: number): Promise<boolean>
    /** Give it up, if it is still this token's. Never rejects (an unreleased claim expires). */
    release(day: string, domain: string, token: string): Promise<void>
    /** A delivery of this report is kept in memory only, not yet written: the report is to be looked at again. */
    hasUnwritten(day: string, domain: string): boolean
}

/**
 * What both sent stores do alike (a store gives the primitives): a delivery that cannot be written is
 * kept in memory, counted by deliveries(), and written by the next deliveries() that can; while one is
 * unwritten, release() keeps the claim (so that no other process sends the report again meanwhile) and
 * the next claim() of this store takes it up again; once written, the claim kept is given up.
 */
export abstract class KeepingSentStore implements SentStore {
    private readonly unwritten = new Map<string, Delivery[]>()
    private readonly kept = new Map<string, string>()

    /** The deliveries written. May reject (the store cannot be read). */
    protected abstract read(day: string, domain: string): Promise<Delivery[]>
    /** Write one delivery: why not, or undefined. Never rejects. */
    protected abstract append(day: string, domain: string, d: Delivery): Promise<string | undefined>
    /** A new claim: its token, or undefined while another holds it. May reject. */
    protected abstract create(day: string, domain: string, now: number): Promise<string | undefined>
    /** Extend a claim if it is still this token's. Never rejects. */
    protected abstract extend(day: string, domain: string, token: string, now: number): Promise<boolean>
    /** Remove a claim if it is still this token's. Never rejects. */
    protected abstract drop(day: string, domain: string, token: string): Promise<void>

    async deliveries(day: string, domain: string): Promise<Delivery[]> {
        const key = `${day} ${domain}`
        const pending = this.unwritten.get(key) ?? []
        while (pending.length && (await this.append(day, domain, pending[0])) === undefined) pending.shift()
        if (pending.length === 0) {
            this.unwritten.delete(key)
            const token = this.kept.get(key)
            if (token !== undefined) {
                this.kept.delete(key)
                await this.drop(day, domain, token)
            }
        }
        return [...pending, ...(await this.read(day, domain))].sort((a, b) => a.at - b.at)
    }

    async add(day: string, domain: string, d: Delivery): Promise<string | undefined> {
        const why = await this.append(day, domain, d)
        if (why !== undefined) {
            const key = `${day} ${domain}`
            this.unwritten.set(key, [...(this.unwritten.get(key) ?? []), d])
        }
        return why
    }

    hasUnwritten(day: string, domain: string): boolean {
        return (this.unwritten.get(`${day} ${domain}`)?.length ?? 0) > 0
    }

    async claim(day: string, domain: string, now: number): Promise<string | undefined> {
        const key = `${day} ${domain}`
        const token = this.kept.get(key)
        if (token !== undefined) {
            this.kept.delete(key)
            if (await this.extend(day, domain, token, now)) return token
        }
        return this.create(day, domain, now)
    }

    renew(day: string, domain: string, token: string, now: number): Promise<boolean> {
        return this.extend(day, domain, token, now)
    }

    async release(day: string, domain: string, token: string): Promise<void> {
        if (this.hasUnwritten(day, domain)) this.kept.set(`${day} ${domain}`, token)
        else await this.drop(day, domain, token)
    }
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

/**
 * A day's results held in memory (the journal's, read once a round; tests), grouped by recipient domain
 * once: a domain's counts are taken from its own results, not from a walk over the whole day each.
 */
export function dayResultsOf(day: string, results: SessionResult[]): DayResults {
    const byDomain = new Map<string, SessionResult[]>()
    for (const r of results) {
        if (utcDay(r.at) !== day) continue
        const list = byDomain.get(r.recipientDomain)
        if (list) list.push(r)
        else byDomain.set(r.recipientDomain, [r])
    }
    return { domains: [...byDomain.keys()].sort(), tallies: async (domain) => tallyResults(day, domain, byDomain.get(domain) ?? []) }
}
