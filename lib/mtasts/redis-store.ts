// Kept MTA-STS policies in Redis ([mtasts] store=redis), for the Haraka nodes of one organisation: a
// policy one node fetched is the others' too, so a domain is fetched once per max_age by all of them, and
// a node that starts (or restarts) has every policy the others kept: the attacker who blocks a domain's
// `_mta-sts` record cannot erase `enforce` by waiting for a restart.
//
// One key a domain, `<prefix>:<sha256 of the domain>`, holding the policy as the file store writes it (the
// domain inside, checked on reading), expiring when the policy does. Nothing waits long for Redis: a command
// fails at once while the connection is down (only in the first seconds, before the first connection, does a
// command wait for it), and takes at most READ_MS or WRITE_MS; a command that gave up is never sent later, and a
// write that was sent and arrives late is applied only if no newer policy is there (newer wins, in one script). A read that fails is a failure, not
// "nothing kept": the service then uses what it holds in memory (lib/mtasts/service), and Haraka's log says so.
import { createHash } from 'node:crypto'
import { OperatorNotice } from '../notice'
import { closeRedis, openRedis, redactedUrl, type RedisClient } from '../redis'
import type { CachedPolicy } from './cache-rules'
import { keptPolicyOf, keptPolicyText, type StsStore } from './service'

/** a delivery waits at most this long for Redis (the first connection, then an answer) */
const READ_MS = 1_000
const WRITE_MS = 1_000
/** after the store is made, commands wait (each at most READ_MS or WRITE_MS) for the first connection this long; later, none */
const FIRST_CONNECTION_MS = 2_000

// newer wins: a policy is written unless the key holds one fetched later; a drop removes only what was seen.
// So a write that reaches Redis late (it was sent, then Redis stalled) never replaces another node's newer policy.
const SET_NEWER =
    "local cur = redis.call('GET', KEYS[1]) " +
    'if cur then local ok, o = pcall(cjson.decode, cur) ' +
    "if ok and type(o) == 'table' and tonumber(o.fetchedAt) and tonumber(o.fetchedAt) > tonumber(ARGV[2]) then return 0 end end " +
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) return 1"
const DROP_SEEN =
    "local cur = redis.call('GET', KEYS[1]) " +
    'if cur then local ok, o = pcall(cjson.decode, cur) ' +
    "if ok and type(o) == 'table' and tonumber(o.fetchedAt) and tonumber(o.fetchedAt) > tonumber(ARGV[1]) then return 0 end end " +
    "return redis.call('DEL', KEYS[1])"

export class RedisStsStore implements StsStore {
    private readonly client: RedisClient
    private readonly notice: OperatorNotice
    private closed = false
    private waiting?: Promise<void>
    private readonly made = Date.now()

    /** Throws when node-redis refuses the URL (the configuration checks it first: lib/config.ts redisUrlProblem). */
    constructor(
        readonly settings: { url: string; prefix: string },
        onFault: (message: string) => void = () => undefined,
    ) {
        this.notice = new OperatorNotice(onFault)
        this.client = openRedis(settings.url, (e) => this.fault(e?.message ?? String(e)))
    }

    get where(): string {
        return `${redactedUrl(this.settings.url)} (prefix ${this.settings.prefix})`
    }

    key(domain: string): string {
        return `${this.settings.prefix}:${createHash('sha256').update(domain).digest('hex')}`
    }

    private fault(message: string): void {
        if (!this.closed) this.notice.throttled(`haraka-plugin-dane: MTA-STS policies in Redis ${this.where}: ${message}`)
    }

    /** The connection's next 'ready', one listener however many commands wait for it. */
    private ready(): Promise<void> {
        this.waiting ??= new Promise<void>((resolve) =>
            this.client.once('ready', () => {
                this.waiting = undefined
                resolve()
            }),
        )
        return this.waiting
    }

    /** One command, within `ms` (waiting for the first connection included); never sent once it gave up. */
    private async command(args: string[], ms: number): Promise<unknown> {
        if (this.closed) throw new Error('the store was closed')
        // only the first connection is waited for (briefly): a Redis that is down fails a command at once, so no
        // delivery waits on it and nothing piles up behind it
        if (!this.client.isReady && Date.now() - this.made > FIRST_CONNECTION_MS) throw new Error('not reachable')
        let timer: NodeJS.Timeout | undefined
        let gaveUp = false
        const late = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms)
        })
        const sent = (this.client.isReady ? Promise.resolve() : this.ready()).then(() => {
            if (gaveUp) throw new Error('gave up before it was sent')
            return this.client.sendCommand(args)
        })
        try {
            return await Promise.race([sent, late])
        } finally {
            gaveUp = true
            clearTimeout(timer)
            sent.catch(() => undefined)
        }
    }

    /** Rejects when Redis cannot be read (not reachable, no answer): that is not "nothing kept". */
    async get(domain: string): Promise<CachedPolicy | undefined> {
        let text: unknown
        try {
            text = await this.command(['GET', this.key(domain)], READ_MS)
        } catch (e) {
            throw new Error(`Redis ${this.where}: ${(e as Error)?.message ?? e}`)
        }
        return typeof text === 'string' ? keptPolicyOf(text, domain) : undefined
    }

    async set(domain: string, c: CachedPolicy): Promise<string | undefined> {
        const ttl = String(Math.max(1, c.expires - Date.now()))
        try {
            await this.command(['EVAL', SET_NEWER, '1', this.key(domain), keptPolicyText(domain, c), String(c.fetchedAt), ttl], WRITE_MS)
            return undefined
        } catch (e) {
            return `Redis ${this.where}: ${(e as Error)?.message ?? e}`
        }
    }

    async drop(domain: string, seen: CachedPolicy): Promise<string | undefined> {
        try {
            await this.command(['EVAL', DROP_SEEN, '1', this.key(domain), String(seen.fetchedAt)], WRITE_MS)
            return undefined
        } catch (e) {
            return `Redis ${this.where}: ${(e as Error)?.message ?? e}`
        }
    }

    async close(): Promise<void> {
        if (this.closed) return
        this.closed = true
        await closeRedis(this.client)
    }
}
