// TLS report results and sending state in Redis ([tlsrpt] store=redis): what the Haraka ecosystem uses
// for shared state (haraka-plugin-redis), so that the Haraka nodes of one organisation, on as many machines
// as it has, count into one report per domain and day and send it once between them.
//
// What is kept, under the prefix (`dane-tlsrpt` by default), each key expiring KEEP_DAYS after its last write:
//   <p>:days                    set of the UTC days with results
//   <p>:domains:<day>           set of the recipient domains with results that day
//   <p>:tally:<day>:<domain>    hash: tallyKey (policy, success, failure details) → number of sessions
//   <p>:sent:<day>:<domain>     list of the deliveries of that report (JSON)
//   <p>:claim:<day>:<domain>    the token of the process sending it now (SET NX, expires after CLAIM_MS)
//
// Counts, not results: a day of a million sessions is a few fields per domain. A result is counted by one
// MULTI that is never sent twice: a restart or a crash cannot count it twice. Nothing waits for Redis: while
// it is unreachable, results wait in memory (at most MAX_PENDING, sent when it is back); past that, and for
// a MULTI that fails, they are lost and Haraka's log says how many (at most once a minute). The client's own
// queue is off (lib/redis.ts): it has no bound.
import { randomBytes } from 'node:crypto'
import { closeRedis, openRedis, redactedUrl, type RedisClient } from '../redis'
import { NOTICE_EVERY_MS, OperatorNotice } from '../notice'
import { tallyKey, tallyOfKey, utcDay, type Tally } from './report'
import type { SessionResult } from './result'
import { CLAIM_MS, KeepingSentStore, type DayResults, type Delivery, type SentStore, type TlsrptStore } from './store'

export interface RedisStoreSettings {
    /** redis[s]://[[user]:password@]host[:port][/db] */
    url: string
    prefix: string
}

/** The sender looks back four days; a day's keys outlive that. */
export const KEEP_DAYS = 8
const KEEP_S = String(KEEP_DAYS * 86400)

/** Results waiting for Redis or on their way to it, at most; more are dropped (and counted as lost). */
export const MAX_PENDING = 10_000

/** How long a command waits for an unreachable Redis before it fails (the sender tries again next round). */
const READY_MS = 5_000
/** How long a command may take once sent (a Redis that is paused, a connection that went half-open). */
const COMMAND_MS = 10_000

const DAY = /^\d{4}-\d{2}-\d{2}$/

// compare-and-delete and compare-and-extend: only the holder of a claim releases or renews it
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
const RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"

/** HGETALL's reply, whichever form the client gives it: [field, value, ...] (RESP2), an object, or a Map. */
function hashEntries(reply: unknown): [string, string][] {
    if (Array.isArray(reply)) {
        const out: [string, string][] = []
        for (let i = 0; i + 1 < reply.length; i += 2) out.push([String(reply[i]), String(reply[i + 1])])
        return out
    }
    if (reply instanceof Map) return [...reply.entries()].map(([k, v]) => [String(k), String(v)])
    if (reply && typeof reply === 'object') return Object.entries(reply).map(([k, v]) => [k, String(v)])
    return []
}

export class RedisStore implements TlsrptStore {
    private readonly client: RedisClient
    private inFlight = 0
    private waiting: SessionResult[] = []
    private lost = 0
    /** results lost, and the connection's trouble: two faults, each told at most once a minute */
    private readonly lossNotice: OperatorNotice
    private readonly connectionNotice: OperatorNotice
    private closed = false
    readonly sent: SentStore

    /** Throws when node-redis refuses the URL (the configuration checks it first: lib/config.ts redisUrlProblem). */
    constructor(
        readonly settings: RedisStoreSettings,
        onFault: (message: string) => void = () => undefined,
    ) {
        this.lossNotice = new OperatorNotice(onFault)
        this.connectionNotice = new OperatorNotice(onFault)
        this.client = openRedis(settings.url, (e) => this.connectionFault(e))
        this.client.on('ready', () => this.flush())
        this.sent = new RedisSentStore(
            (args) => this.command(args),
            (...parts) => this.key(...parts),
        )
    }

    /** One command (or one MULTI), once Redis is reachable (within READY_MS), answered within COMMAND_MS. */
    private async command(args: string[] | string[][]): Promise<unknown> {
        if (this.closed) throw new Error(`Redis ${this.where}: the store was closed`)
        if (!this.client.isReady) {
            await new Promise<void>((resolve, reject) => {
                const ready = (): void => {
                    clearTimeout(timer)
                    resolve()
                }
                const timer = setTimeout(() => {
                    this.client.off('ready', ready)
                    reject(new Error(`Redis ${this.where} not reachable within ${READY_MS / 1000} s`))
                }, READY_MS)
                this.client.once('ready', ready)
            })
        }
        let sent: Promise<unknown>
        if (typeof args[0] === 'string') sent = this.client.sendCommand(args as string[])
        else {
            const m = this.client.multi()
            for (const a of args as string[][]) m.addCommand(a)
            sent = m.exec()
        }
        let timer: NodeJS.Timeout | undefined
        const late = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`Redis ${this.where} did not answer within ${COMMAND_MS / 1000} s`)), COMMAND_MS)
        })
        try {
            return await Promise.race([sent, late])
        } finally {
            clearTimeout(timer)
            sent.catch(() => undefined)
        }
    }

    private flush(): void {
        const waiting = this.waiting
        this.waiting = []
        for (const r of waiting) this.write(r)
    }

    get where(): string {
        return `${redactedUrl(this.settings.url)} (prefix ${this.settings.prefix})`
    }

    private key(...parts: string[]): string {
        return [this.settings.prefix, ...parts].join(':')
    }

    add(result: SessionResult): void {
        if (this.closed) return
        if (this.inFlight + this.waiting.length >= MAX_PENDING) return this.lose(1, `${MAX_PENDING} results already waiting for Redis`)
        if (!this.client.isReady) {
            this.waiting.push(result)
            return
        }
        this.write(result)
    }

    /** Never throws (it runs inside the client's 'ready' event too). */
    private write(result: SessionResult): void {
        this.inFlight++
        try {
            const day = utcDay(result.at)
            const domain = result.recipientDomain
            const field = tallyKey({ policy: result.policy, ok: result.ok, ...(result.ok || !result.failure ? {} : { failure: result.failure }) })
            const [days, domains, tally] = [this.key('days'), this.key('domains', day), this.key('tally', day, domain)]
            this.client
                .multi()
                .addCommand(['SADD', days, day])
                .addCommand(['EXPIRE', days, KEEP_S])
                .addCommand(['SADD', domains, domain])
                .addCommand(['EXPIRE', domains, KEEP_S])
                .addCommand(['HINCRBY', tally, field, '1'])
                .addCommand(['EXPIRE', tally, KEEP_S])
                .exec()
                .then(
                    () => this.inFlight--,
                    (e: Error) => {
                        this.inFlight--
                        this.lose(1, e?.message ?? String(e))
                    },
                )
        } catch (e) {
            this.inFlight--
            this.lose(1, (e as Error)?.message ?? String(e))
        }
    }

    /** The days with results, oldest first; days past KEEP_DAYS are taken out of the set. */
    async days(): Promise<string[]> {
        const days = ((await this.command(['SMEMBERS', this.key('days')])) as string[]).filter((d) => DAY.test(d)).sort()
        const oldest = utcDay(Date.now() - KEEP_DAYS * 86400_000)
        const old = days.filter((d) => d < oldest)
        if (old.length) await this.command(['SREM', this.key('days'), ...old])
        return days.filter((d) => d >= oldest)
    }

    async day(day: string): Promise<DayResults> {
        const domains = (await this.command(['SMEMBERS', this.key('domains', day)])) as string[]
        return {
            domains: domains.sort(),
            tallies: async (domain: string): Promise<Tally[]> => {
                const out: Tally[] = []
                for (const [field, count] of hashEntries(await this.command(['HGETALL', this.key('tally', day, domain)]))) {
                    const t = tallyOfKey(field, Number(count))
                    if (t) out.push(t)
                }
                return out
            },
        }
    }

    /** Results not yet in Redis are lost when the store is closed, and Haraka's log says how many. */
    async close(): Promise<void> {
        if (this.closed) return
        if (this.waiting.length) {
            this.lossNotice.reset()
            this.lose(this.waiting.length, 'the store was closed while Redis was unreachable')
            this.waiting = []
        }
        this.closed = true
        await closeRedis(this.client)
    }

    private lose(n: number, why: string): void {
        this.lost += n
        this.lossNotice.throttled(
            `haraka-plugin-dane: TLS report result(s) not kept in Redis ${this.where}: ${why}; ${this.lost} lost so far (repeated at most every ${NOTICE_EVERY_MS / 1000} s)`,
        )
    }

    private connectionFault(e: Error): void {
        if (this.closed) return
        this.connectionNotice.throttled(
            `haraka-plugin-dane: Redis ${this.where}: ${e?.message ?? e}; results wait in memory until it is back (repeated at most every ${NOTICE_EVERY_MS / 1000} s)`,
        )
    }
}

/** What was sent, and the claims, in Redis: shared by every node sending from it. */
class RedisSentStore extends KeepingSentStore {
    constructor(
        private readonly command: (args: string[] | string[][]) => Promise<unknown>,
        private readonly key: (...parts: string[]) => string,
    ) {
        super()
    }

    protected async read(day: string, domain: string): Promise<Delivery[]> {
        const lines = (await this.command(['LRANGE', this.key('sent', day, domain), '0', '-1'])) as string[]
        const out: Delivery[] = []
        for (const line of lines) {
            try {
                const d = JSON.parse(line) as Delivery
                if (typeof d.uri === 'string' && typeof d.ok === 'boolean' && Number.isFinite(d.at)) out.push(d)
            } catch {
                /* not ours */
            }
        }
        return out
    }

    protected async append(day: string, domain: string, d: Delivery): Promise<string | undefined> {
        const k = this.key('sent', day, domain)
        try {
            await this.command([
                ['RPUSH', k, JSON.stringify(d)],
                ['EXPIRE', k, KEEP_S],
            ])
            return undefined
        } catch (e) {
            return (e as Error)?.message ?? String(e)
        }
    }

    protected async create(day: string, domain: string): Promise<string | undefined> {
        const token = `${process.pid}.${randomBytes(6).toString('hex')}`
        const r = await this.command(['SET', this.key('claim', day, domain), token, 'NX', 'PX', String(CLAIM_MS)])
        return (r as unknown) === 'OK' ? token : undefined
    }

    protected async extend(day: string, domain: string, token: string): Promise<boolean> {
        try {
            return Number(await this.command(['EVAL', RENEW, '1', this.key('claim', day, domain), token, String(CLAIM_MS)])) === 1
        } catch {
            return false
        }
    }

    protected async drop(day: string, domain: string, token: string): Promise<void> {
        await this.command(['EVAL', RELEASE, '1', this.key('claim', day, domain), token]).catch(() => undefined)
    }
}
