// Kept MTA-STS policies in Redis ([mtasts] store=redis), for the Haraka nodes of one organisation: a
// policy one node fetched is the others' too, so a domain is fetched once per max_age by all of them, and
// a node that starts (or restarts) has every policy the others kept: the attacker who blocks a domain's
// `_mta-sts` record cannot erase `enforce` by waiting for a restart.
//
// One key a domain, `<prefix>:<sha256 of the domain>`, holding the policy as the file store writes it (the
// domain inside, checked on reading), expiring when the policy does. Nothing waits long for Redis: a command
// fails at once while the connection is down (only before the first connection does a read wait for it, at
// most READ_MS), and takes at most READ_MS or WRITE_MS once sent; a command that gave up is never sent later
// (an old write must not overwrite a newer policy another node kept). A read that fails is a failure, not
// "nothing kept": the service then uses what it holds in memory (lib/mtasts/service), and Haraka's log says so.
import { createHash } from 'node:crypto'
import { createClient } from 'redis'
import { OperatorNotice } from '../notice'
import { redactedUrl } from '../tlsrpt/redis-store'
import type { CachedPolicy } from './cache-rules'
import { keptPolicyOf, keptPolicyText, type StsStore } from './service'

/** a delivery waits at most this long for Redis (the first connection, then an answer) */
const READ_MS = 1_000
const WRITE_MS = 1_000

export class RedisStsStore implements StsStore {
    private readonly client: ReturnType<typeof createClient>
    private readonly notice: OperatorNotice
    private closed = false
    private waiting?: Promise<void>
    /** the connection was ready once: from then on a command while it is down fails at once */
    private wasReady = false

    /** Throws when node-redis refuses the URL (the configuration checks it first: lib/config.ts redisUrlProblem). */
    constructor(
        readonly settings: { url: string; prefix: string },
        onFault: (message: string) => void = () => undefined,
    ) {
        this.notice = new OperatorNotice(onFault)
        this.client = createClient({
            url: settings.url,
            disableOfflineQueue: true,
            socket: { connectTimeout: 5000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 5000) },
        })
        // without a listener an 'error' event would end Haraka (C29); the client reconnects by itself
        this.client.on('error', (e: Error) => this.fault(e?.message ?? String(e)))
        this.client.on('ready', () => (this.wasReady = true))
        this.client.connect().catch((e: Error) => this.fault(e?.message ?? String(e)))
        this.client.unref()
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
        if (!this.client.isReady && this.wasReady) throw new Error('not reachable')
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

    async set(domain: string, c: CachedPolicy | undefined): Promise<string | undefined> {
        try {
            if (!c) await this.command(['DEL', this.key(domain)], WRITE_MS)
            else await this.command(['SET', this.key(domain), keptPolicyText(domain, c), 'PX', String(Math.max(1, c.expires - Date.now()))], WRITE_MS)
            return undefined
        } catch (e) {
            return `Redis ${this.where}: ${(e as Error)?.message ?? e}`
        }
    }

    async close(): Promise<void> {
        if (this.closed) return
        this.closed = true
        try {
            await this.client.close()
        } catch {
            this.client.destroy()
        }
    }
}
