// MTA-STS (RFC 8461): the policy of a destination, from what is kept, its `_mta-sts` TXT record through
// the validating resolver, and a fetch when the rules (lib/mtasts/cache-rules.ts) say so. The I/O edge of
// MTA-STS: the store, the resolver and the HTTPS fetch are given; one fetch at a time per domain; never
// throws, never blocks the event loop.
import fs from 'node:fs'
import path from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import type { Answer } from '../dns/answer'
import { parseStsPolicy, parseStsRecords, stsRecordName } from './policy'
import { fetchStsPolicy, policyHost, type FetchOptions, type FetchResult } from './fetch'
import { planFetch, stsState, type CachedPolicy, type FetchOutcome, type FetchPlan, type StsState, type TxtOutcome } from './cache-rules'

/** Where kept policies live between restarts (and between the processes of one machine). */
export interface StsStore {
    get(domain: string): Promise<CachedPolicy | undefined>
    /** Keep (or, with undefined, drop) a domain's policy. Never rejects: why it could not be written, or undefined. */
    set(domain: string, c: CachedPolicy | undefined): Promise<string | undefined>
}

/**
 * One small JSON file a domain, named by the SHA-256 of the domain (a recipient domain can be any string
 * Haraka accepts: it never becomes a path), written to a temporary name and renamed into place, so that a
 * reader never sees half a file and two processes writing the same domain leave one whole policy, never a
 * mix. A file that cannot be read as this domain's policy is no policy kept.
 */
export class FileStsStore implements StsStore {
    constructor(readonly dir: string) {}

    file(domain: string): string {
        return path.join(this.dir, `sts-${createHash('sha256').update(domain).digest('hex')}.json`)
    }

    async get(domain: string): Promise<CachedPolicy | undefined> {
        let text: string
        try {
            text = await fs.promises.readFile(this.file(domain), 'utf8')
        } catch {
            return undefined
        }
        try {
            const c = JSON.parse(text) as CachedPolicy & { domain?: string }
            const ok =
                c?.domain === domain &&
                typeof c.id === 'string' &&
                Number.isFinite(c.fetchedAt) &&
                Number.isFinite(c.expires) &&
                ['enforce', 'testing', 'none'].includes(c.policy?.mode) &&
                Array.isArray(c.policy.mx) &&
                c.policy.mx.every((m: unknown) => typeof m === 'string') &&
                Number.isFinite(c.policy.maxAge)
            return ok ? { policy: c.policy, id: c.id, fetchedAt: c.fetchedAt, expires: c.expires } : undefined
        } catch {
            return undefined
        }
    }

    async set(domain: string, c: CachedPolicy | undefined): Promise<string | undefined> {
        const f = this.file(domain)
        try {
            if (!c) {
                await fs.promises.rm(f, { force: true })
                return undefined
            }
            await fs.promises.mkdir(this.dir, { recursive: true })
            const tmp = `${f}.${process.pid}.${randomBytes(4).toString('hex')}`
            try {
                await fs.promises.writeFile(tmp, JSON.stringify({ domain, ...c }))
                await fs.promises.rename(tmp, f)
            } finally {
                await fs.promises.rm(tmp, { force: true })
            }
            return undefined
        } catch (e) {
            return (e as Error)?.message ?? String(e)
        }
    }
}

export interface StsServiceDeps {
    lookupTxt(name: string): Promise<Answer>
    /** the addresses of a host (the plugin's resolver: A and AAAA) */
    addresses(host: string): Promise<string[]>
    store: StsStore
    fetch?: (domain: string, opts: FetchOptions) => Promise<FetchResult>
    /** CA file contents for the policy hosts (tests, private CAs); node's store when absent */
    ca?: string | Buffer
    timeoutMs?: number
    port?: number
    now?: () => number
    /** a kept policy that could not be written (the disk), for Haraka's log */
    fault?: (message: string) => void
}

/** RFC 8461 3.3: after a failed fetch, the same domain and id are not fetched again for five minutes. */
export const FETCH_RETRY_MS = 5 * 60_000
/** failed fetches remembered at most (the oldest forgotten first) */
const MAX_FAILURES = 10_000

/** The policy in force for one delivery, and how it was arrived at (for the log and TLSRPT). */
export interface StsOutcome extends StsState {
    domain: string
    /** the `_mta-sts` record's id, when there is a record */
    id?: string
    plan: FetchPlan
    /** the policy host, when a fetch was made */
    fetchedFrom?: string
}

export class StsPolicies {
    private readonly inflight = new Map<string, Promise<StsOutcome>>()
    /** "domain id" → the last failed fetch, for FETCH_RETRY_MS */
    private readonly failures = new Map<string, { at: number; outcome: FetchOutcome }>()

    constructor(private readonly deps: StsServiceDeps) {}

    /** The destination's policy now. Concurrent asks for one domain share one lookup and fetch. Never rejects. */
    policyFor(domain: string): Promise<StsOutcome> {
        const d = domain.toLowerCase().replace(/\.$/, '')
        const running = this.inflight.get(d)
        if (running) return running
        const p = this.resolve(d)
            .catch((e: Error): StsOutcome => ({ domain: d, plan: { fetch: false, why: 'internal error' }, reason: `no policy: ${e?.message ?? e}` }))
            .finally(() => this.inflight.delete(d))
        this.inflight.set(d, p)
        return p
    }

    private async resolve(domain: string): Promise<StsOutcome> {
        const now = (this.deps.now ?? Date.now)()
        const cached = await this.deps.store.get(domain)
        const txt = txtOutcome(await this.deps.lookupTxt(stsRecordName(domain)))
        const id = txt.kind === 'record' ? txt.record.id : undefined
        let plan = planFetch(now, cached, txt)
        let fetched: FetchOutcome | undefined
        let fetchedFrom: string | undefined
        const failureKey = `${domain} ${id ?? cached?.id ?? ''}`
        const failed = this.failures.get(failureKey)
        if (plan.fetch && failed && now - failed.at < FETCH_RETRY_MS) {
            // the last fetch failed moments ago: its outcome stands until the retry time (no fetch a delivery)
            plan = {
                fetch: false,
                why: `${plan.why}; the last fetch failed ${Math.round((now - failed.at) / 1000)} s ago, tried again after ${FETCH_RETRY_MS / 60_000} min`,
            }
            fetched = failed.outcome
        } else if (plan.fetch) {
            const r = await (this.deps.fetch ?? fetchStsPolicy)(domain, {
                ca: this.deps.ca,
                timeoutMs: this.deps.timeoutMs,
                port: this.deps.port,
                addresses: (host) => this.deps.addresses(host),
            })
            fetchedFrom = policyHost(domain)
            if (!r.ok) fetched = { kind: 'fetch-error', reason: r.error }
            else {
                const parsed = parseStsPolicy(r.text)
                fetched = parsed.kind === 'policy' ? parsed : { kind: 'invalid', reason: parsed.reason }
            }
            if (fetched.kind === 'policy') this.failures.delete(failureKey)
            else {
                if (this.failures.size >= MAX_FAILURES) this.failures.delete(this.failures.keys().next().value as string)
                this.failures.set(failureKey, { at: now, outcome: fetched })
            }
        }
        const state = stsState((this.deps.now ?? Date.now)(), cached, txt, fetched)
        if (state.keep !== cached) {
            const why = await this.deps.store.set(domain, state.keep)
            if (why) this.deps.fault?.(`haraka-plugin-dane: the MTA-STS policy of ${domain} could not be kept (${why}); it is fetched again next time`)
        }
        return { domain, id, plan, fetchedFrom, ...state }
    }
}

/** The `_mta-sts` answer as the rules read it: a record, no (valid) record, or no answer. */
export function txtOutcome(a: Answer): TxtOutcome {
    if (a.status === 'failed') return { kind: 'failed', reason: `TXT lookup for ${a.name} failed (${a.reason ?? 'unknown'})` }
    if (a.status !== 'ok') return { kind: 'none', reason: `${a.name}: ${a.status}` }
    return parseStsRecords(a.txt ?? [])
}
