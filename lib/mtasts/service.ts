// MTA-STS (RFC 8461): the policy of a destination, from what is kept, its `_mta-sts` TXT record through
// the validating resolver, and a fetch when the rules (lib/mtasts/cache-rules.ts) say so. The I/O edge of
// MTA-STS: the store, the resolver and the HTTPS fetch are given; one fetch at a time per domain; never
// blocks the event loop. A fault is never read as "no policy" (C36): a store that cannot be read, an internal
// error or a lookup that hangs leaves in force what this process holds, or, holding nothing, defers.
import fs from 'node:fs'
import path from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import type { Answer } from '../dns/answer'
import { OperatorNotice } from '../notice'
import { parseStsPolicy, parseStsRecords, stsRecordName } from './policy'
import { DEFAULT_FETCH_MS, fetchStsPolicy, policyHost, type FetchOptions, type FetchResult } from './fetch'
import { planFetch, stsState, type CachedPolicy, type FetchOutcome, type FetchPlan, type StsState, type TxtOutcome } from './cache-rules'

/** Where kept policies live between restarts (and between the processes of one machine). */
export interface StsStore {
    /** The policy kept for a domain, or undefined when none is; rejects when the store could not be read. */
    get(domain: string): Promise<CachedPolicy | undefined>
    /**
     * Keep a domain's policy, unless the store holds one fetched later (another node's, or this process's
     * newer write that arrived first). Never rejects: why it could not be written, or undefined.
     */
    set(domain: string, c: CachedPolicy): Promise<string | undefined>
    /** Drop the policy `seen` (a max_age 0 fetched since), unless the store holds one fetched later. Never rejects. */
    drop(domain: string, seen: CachedPolicy): Promise<string | undefined>
    close?(): Promise<void>
}

/** A kept policy as written by a store (JSON with its domain inside), or undefined when it is not that domain's. */
export function keptPolicyOf(text: string, domain: string): CachedPolicy | undefined {
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

/** A kept policy as a store writes it. */
export function keptPolicyText(domain: string, c: CachedPolicy): string {
    return JSON.stringify({ domain, ...c })
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
        } catch (e) {
            // no file: nothing kept; any other error is a read that failed, which is not "nothing kept"
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
            throw e
        }
        return keptPolicyOf(text, domain)
    }

    /** The policy in the file now, or undefined when there is none or it cannot be read (then the write goes ahead). */
    private async current(domain: string): Promise<CachedPolicy | undefined> {
        return this.get(domain).catch(() => undefined)
    }

    async set(domain: string, c: CachedPolicy): Promise<string | undefined> {
        const f = this.file(domain)
        try {
            const now = await this.current(domain)
            if (now && now.fetchedAt > c.fetchedAt) return undefined
            await fs.promises.mkdir(this.dir, { recursive: true })
            const tmp = `${f}.${process.pid}.${randomBytes(4).toString('hex')}`
            try {
                await fs.promises.writeFile(tmp, keptPolicyText(domain, c))
                await fs.promises.rename(tmp, f)
            } finally {
                await fs.promises.rm(tmp, { force: true })
            }
            return undefined
        } catch (e) {
            return (e as Error)?.message ?? String(e)
        }
    }

    async drop(domain: string, seen: CachedPolicy): Promise<string | undefined> {
        try {
            const now = await this.current(domain)
            if (now && now.fetchedAt > seen.fetchedAt) return undefined
            await fs.promises.rm(this.file(domain), { force: true })
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
    /** a kept policy that could not be written or read (the disk, Redis), for Haraka's log */
    fault?: (message: string) => void
    /** what a service before a configuration reload held: carried over, never dropped */
    memory?: StsMemory
    /** how long an ask may take beyond its fetch's deadline (the store, the TXT lookup); default ASK_SLACK_MS */
    askSlackMs?: number
}

/** What a service holds in memory besides its store: kept policies it read or wrote, and failed fetches. */
export interface StsMemory {
    /** domain → what the store holds, as last read or written by this process (null: nothing kept), and when */
    known: Map<string, { kept: CachedPolicy | null; at: number }>
    /** "domain id" → the last failed fetch, for FETCH_RETRY_MS */
    failures: Map<string, { at: number; outcome: FetchOutcome }>
}

/** RFC 8461 3.3: after a failed fetch, the same domain and id are not fetched again for five minutes. */
export const FETCH_RETRY_MS = 5 * 60_000
/** failed fetches remembered at most (the oldest forgotten first) */
const MAX_FAILURES = 10_000
/** C30: domains whose kept policy (or its absence) is held in memory, at most (an absence or an expired policy forgotten first) */
export const MAX_KNOWN = 10_000
/** an absence held in memory is checked in the store again after this long (another node may have kept a policy since) */
export const ABSENCE_RECHECK_MS = 5 * 60_000
/** the longest one ask may take beyond its fetch's deadline (the store, the TXT lookup) before it counts as an error */
export const ASK_SLACK_MS = 5_000

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
    private readonly inflight = new Map<string, { p: Promise<StsOutcome>; started: number; expire: (e: Error) => void }>()
    private watchdog?: NodeJS.Timeout
    readonly memory: StsMemory
    private readonly storeNotice: OperatorNotice

    /** the longest a policy fetch takes */
    get timeoutMs(): number {
        return this.deps.timeoutMs ?? DEFAULT_FETCH_MS
    }

    constructor(private readonly deps: StsServiceDeps) {
        this.memory = deps.memory ?? { known: new Map(), failures: new Map() }
        this.storeNotice = new OperatorNotice((m) => deps.fault?.(m))
    }

    private readonly starts: (() => void)[] = []
    private starting = false

    /**
     * A turn of the event loop of its own for each fetch's start (a TLS client makes its hello, keys
     * included, at once, about a millisecond): many domains asked at once (a cold start) start their
     * fetches one turn after another, with Haraka's other work between them, never all in one turn.
     */
    private turnToStart(): Promise<void> {
        return new Promise((resolve) => {
            this.starts.push(resolve)
            if (this.starting) return
            this.starting = true
            const next = (): void => {
                const start = this.starts.shift()
                if (!start) {
                    this.starting = false
                    return
                }
                start()
                setImmediate(next)
            }
            setImmediate(next)
        })
    }

    /**
     * The destination's policy now. Concurrent asks for one domain share one lookup and fetch. Rejects only on
     * an internal error when this process holds no live policy for the domain (the caller defers: an error is
     * never read as "no policy"); with one held, that policy stays in force.
     */
    policyFor(domain: string): Promise<StsOutcome> {
        const d = domain.toLowerCase().replace(/\.$/, '')
        const running = this.inflight.get(d)
        if (running) return running.p
        // one deadline for the whole ask (a store or a lookup that hangs is an error, never an ask that never ends),
        // kept by one watchdog for every ask under way rather than a timer each
        let expire: (e: Error) => void = () => undefined
        const deadline = new Promise<never>((_, reject) => (expire = reject))
        const p = Promise.race([this.resolve(d), deadline])
            .catch((e: Error): StsOutcome => {
                const why = e?.message ?? String(e)
                const held = this.memory.known.get(d)?.kept
                if (held && held.expires > (this.deps.now ?? Date.now)())
                    return {
                        domain: d,
                        id: held.id,
                        plan: { fetch: false, why: 'internal error' },
                        inForce: held.policy,
                        keep: held,
                        reason: `internal error (${why}); the policy this process holds (id ${held.id}) stays in force`,
                    }
                throw new Error(`MTA-STS for ${d}: ${why}`)
            })
            .finally(() => this.inflight.delete(d))
        this.inflight.set(d, { p, started: Date.now(), expire })
        this.watch()
        return p
    }

    /** The watchdog of asks under way: one that outlives its fetch's deadline by ASK_SLACK_MS is failed. */
    private watch(): void {
        if (this.watchdog) return
        this.watchdog = setInterval(
            () => {
                const limit = this.timeoutMs + (this.deps.askSlackMs ?? ASK_SLACK_MS)
                const now = Date.now()
                for (const a of this.inflight.values()) if (now - a.started > limit) a.expire(new Error(`no answer within ${limit / 1000} s`))
                if (this.inflight.size === 0) {
                    clearInterval(this.watchdog)
                    this.watchdog = undefined
                }
            },
            Math.min(1000, this.timeoutMs),
        )
        this.watchdog.unref()
    }

    /** Hold what the store has for a domain (C30: bounded; an absence or an expired policy goes first). */
    private hold(domain: string, kept: CachedPolicy | null, now: number): void {
        const { known } = this.memory
        known.delete(domain)
        if (known.size >= MAX_KNOWN) {
            let victim: string | undefined
            let looked = 0
            for (const [d, e] of known) {
                victim ??= d
                if (!e.kept || e.kept.expires <= now) {
                    victim = d
                    break
                }
                if (++looked >= 1000) break
            }
            if (victim !== undefined) known.delete(victim)
        }
        known.set(domain, { kept, at: now })
    }

    private async resolve(domain: string): Promise<StsOutcome> {
        const now = (this.deps.now ?? Date.now)()
        const { failures } = this.memory
        const answer = await this.deps.lookupTxt(stsRecordName(domain))
        const txt = txtOutcome(answer)
        const id = txt.kind === 'record' ? txt.record.id : undefined
        // what this process holds; the store is read when it holds nothing for the domain, an absence checked more
        // than ABSENCE_RECHECK_MS ago, or a policy it would fetch again (expired, due, another id): another node, or
        // this process before a restart, may have kept a newer policy. Not once a delivery.
        const entry = this.memory.known.get(domain)
        const held = entry?.kept ?? undefined
        let cached = held
        let readFailed = false
        let readDone = false
        let stored: CachedPolicy | undefined
        if (!entry || (entry.kept === null && now - entry.at >= ABSENCE_RECHECK_MS) || planFetch(now, cached, txt).fetch) {
            try {
                stored = await this.deps.store.get(domain)
                readDone = true
                if (stored && (!cached || stored.fetchedAt > cached.fetchedAt)) cached = stored
            } catch (e) {
                // a store that cannot be read is not "nothing kept": what this process holds stands, nothing is remembered
                readFailed = true
                this.storeNotice.throttled(
                    `haraka-plugin-dane: the kept MTA-STS policies cannot be read (${(e as Error)?.message ?? e}); this process uses what it holds in memory`,
                )
            }
        }
        let plan = planFetch(now, cached, txt)
        let fetched: FetchOutcome | undefined
        let fetchedFrom: string | undefined
        const failureKey = `${domain} ${id ?? cached?.id ?? ''}`
        const failed = failures.get(failureKey)
        if (plan.fetch && failed && now - failed.at < FETCH_RETRY_MS) {
            // the last fetch failed moments ago: its outcome stands until the retry time (no fetch a delivery)
            plan = {
                fetch: false,
                why: `${plan.why}; the last fetch failed ${Math.round((now - failed.at) / 1000)} s ago, tried again after ${FETCH_RETRY_MS / 60_000} min`,
            }
            fetched = failed.outcome
        } else if (plan.fetch) {
            await this.turnToStart()
            const r = await (this.deps.fetch ?? fetchStsPolicy)(domain, {
                ca: this.deps.ca,
                timeoutMs: this.deps.timeoutMs,
                port: this.deps.port,
                addresses: (host) => this.deps.addresses(host),
            })
            fetchedFrom = policyHost(domain)
            if (!r.ok) fetched = { kind: 'fetch-error', reason: r.error, ...(r.webpki ? { webpki: true } : {}) }
            else {
                const parsed = parseStsPolicy(r.text)
                fetched = parsed.kind === 'policy' ? parsed : { kind: 'invalid', reason: parsed.reason }
            }
            if (fetched.kind === 'policy') failures.delete(failureKey)
            else {
                if (failures.size >= MAX_FAILURES) failures.delete(failures.keys().next().value as string)
                failures.set(failureKey, { at: now, outcome: fetched })
            }
        }
        const state = stsState((this.deps.now ?? Date.now)(), cached, txt, fetched)
        // C36: the store unreadable and nothing held: whether a policy is kept is unknown. Unless the DNS proved
        // (DNSSEC) there is no record, or a policy was just fetched, that is an error (the message defers), never "none"
        if (readFailed && !entry && !state.inForce && !(answer.status !== 'ok' && answer.status !== 'failed' && answer.secure))
            throw new Error(`the kept policies cannot be read and this process holds nothing for ${domain}`)
        if (state.keep && (state.keep !== cached || (readDone && stored === undefined))) {
            // a policy fetched, or one the store lacks (a write that failed before, a store emptied): kept
            const why = await this.deps.store.set(domain, state.keep)
            if (why)
                this.storeNotice.throttled(`haraka-plugin-dane: the MTA-STS policy of ${domain} could not be kept (${why}); this process holds it in memory`)
        } else if (!state.keep && cached && cached.expires > now && fetched?.kind === 'policy') {
            // a policy with max_age 0 replaced a live one: dropped (an expired one lapses by itself, never deleted:
            // another node may have just kept a newer one)
            const why = await this.deps.store.drop(domain, cached)
            if (why) this.storeNotice.throttled(`haraka-plugin-dane: the MTA-STS policy of ${domain} could not be dropped (${why})`)
        }
        if (state.keep || !readFailed) this.hold(domain, state.keep ?? null, now)
        return { domain, id, plan, fetchedFrom, ...state }
    }
}

/** The `_mta-sts` answer as the rules read it: a record, no (valid) record, or no answer. */
export function txtOutcome(a: Answer): TxtOutcome {
    if (a.status === 'failed') return { kind: 'failed', reason: `TXT lookup for ${a.name} failed (${a.reason ?? 'unknown'})` }
    if (a.status !== 'ok') return { kind: 'none', reason: `${a.name}: ${a.status}` }
    return parseStsRecords(a.txt ?? [])
}
