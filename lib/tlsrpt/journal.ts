// Where TLS report results are kept until their day's report is built: by default a journal under
// Haraka's directory, one append-only file of JSON lines per UTC day (no server to run).
//
// Why by hand: node 20 has no SQLite of its own and a native module would need a compiler on every
// install; what is needed is small. Each result is one line written with one append (O_APPEND) when its
// session's result is known, so that several Haraka processes (nodes=N) on one machine can share the
// directory (a local file system: O_APPEND is not atomic over NFS), and a Haraka restart loses nothing
// already written. Each line is written after a line break of its own, so that a line torn by a crash or
// a full disk (skipped when read) cannot swallow the next one. There is no fsync: a power loss can lose
// what the kernel had not yet written. Every result carries an id (one per attempt) and is counted once
// by it when read.
import fs from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import type { SessionResult } from './result'
import { utcDay } from './report'
import { NOTICE_EVERY_MS, OperatorNotice } from '../notice'
import { CLAIM_MS, dayResultsOf, KeepingSentStore, type DayResults, type Delivery, type TlsrptStore } from './store'

const FILE = /^results-(\d{4}-\d{2}-\d{2})\.jsonl$/

export class JournalStore {
    private fd: number | undefined
    private fdDay = ''
    private lost = 0
    private readonly notice: OperatorNotice

    constructor(
        readonly dir: string,
        onFault: (message: string) => void = () => undefined,
    ) {
        this.notice = new OperatorNotice(onFault)
    }

    fileOf(day: string): string {
        return path.join(this.dir, `results-${day}.jsonl`)
    }

    add(result: SessionResult): void {
        try {
            const day = utcDay(result.at)
            if (this.fd === undefined || this.fdDay !== day) {
                this.closeFd()
                fs.mkdirSync(this.dir, { recursive: true })
                this.fd = fs.openSync(this.fileOf(day), 'a')
                this.fdDay = day
            }
            const line = Buffer.from(`\n${JSON.stringify(result)}\n`)
            const n = fs.writeSync(this.fd, line)
            if (n !== line.length) throw new Error(`short write (${n} of ${line.length} bytes)`)
        } catch (e) {
            this.closeFd()
            this.lost++
            this.notice.throttled(
                `haraka-plugin-dane: TLS report result not kept in ${this.dir}: ${(e as Error).message}; ${this.lost} result(s) lost so far (repeated at most every ${NOTICE_EVERY_MS / 1000} s)`,
            )
        }
    }

    results(day: string): SessionResult[] {
        let text: string
        try {
            text = fs.readFileSync(this.fileOf(day), 'utf8')
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
            throw e
        }
        const out: SessionResult[] = []
        const seen = new Set<string>()
        for (const line of text.split('\n')) {
            if (!line) continue
            let r: SessionResult
            try {
                r = JSON.parse(line) as SessionResult
            } catch {
                continue // a line torn by a crash
            }
            if (!isResult(r) || seen.has(r.id)) continue
            seen.add(r.id)
            out.push(r)
        }
        return out
    }

    /** The days the journal holds, oldest first. */
    days(): string[] {
        try {
            return fs
                .readdirSync(this.dir)
                .flatMap((f) => FILE.exec(f)?.[1] ?? [])
                .sort()
        } catch {
            return []
        }
    }

    close(): void {
        this.closeFd()
    }

    private closeFd(): void {
        if (this.fd !== undefined) {
            try {
                fs.closeSync(this.fd)
            } catch {
                /* already gone */
            }
        }
        this.fd = undefined
        this.fdDay = ''
    }
}

const POLICY_TYPES = ['tlsa', 'sts', 'no-policy-found']

function isResult(r: unknown): r is SessionResult {
    const x = r as SessionResult
    return (
        typeof x === 'object' &&
        x !== null &&
        typeof x.id === 'string' &&
        Number.isFinite(x.at) &&
        Math.abs(x.at) < 8.64e15 &&
        POLICY_TYPES.includes(x.policy?.type) &&
        typeof x.policy.domain === 'string' &&
        (x.failure === undefined || (typeof x.failure === 'object' && x.failure !== null && typeof x.failure.resultType === 'string')) &&
        typeof x.recipientDomain === 'string' &&
        typeof x.ok === 'boolean' &&
        typeof x.policy === 'object' &&
        x.policy !== null &&
        Array.isArray(x.policy.strings) &&
        Array.isArray(x.policy.mxHosts)
    )
}

/**
 * The deliveries, as JSON lines beside the day's results (`sent-YYYY-MM-DD.jsonl`), and claims as files
 * created exclusively (O_EXCL) holding a token, so that the processes of one machine sharing the
 * directory send each report once: a claim is released only by its holder, and a stale one is taken over
 * by renaming it away first (only one process can), then creating a new one. A delivery that cannot be
 * written is kept in memory too, so that this process does not send it again while the disk is full.
 */
export class FileSentStore extends KeepingSentStore {
    constructor(readonly dir: string) {
        super()
    }

    private file(day: string): string {
        return path.join(this.dir, `sent-${day}.jsonl`)
    }

    private claimFile(day: string, domain: string): string {
        return path.join(this.dir, `claim-${day}-${domain}`)
    }

    protected async read(day: string, domain: string): Promise<Delivery[]> {
        let text = ''
        try {
            text = fs.readFileSync(this.file(day), 'utf8')
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
        }
        const out: Delivery[] = []
        for (const line of text.split('\n')) {
            if (!line) continue
            try {
                const d = JSON.parse(line) as Delivery & { domain: string }
                if (d.domain === domain && typeof d.uri === 'string' && typeof d.ok === 'boolean' && Number.isFinite(d.at)) out.push(d)
            } catch {
                /* a torn line */
            }
        }
        return out
    }

    protected async append(day: string, domain: string, d: Delivery): Promise<string | undefined> {
        try {
            fs.mkdirSync(this.dir, { recursive: true })
            fs.appendFileSync(this.file(day), `\n${JSON.stringify({ domain, ...d })}\n`)
            return undefined
        } catch (e) {
            return (e as Error).message
        }
    }

    protected async create(day: string, domain: string, now: number): Promise<string | undefined> {
        fs.mkdirSync(this.dir, { recursive: true })
        const f = this.claimFile(day, domain)
        const token = `${process.pid}.${randomBytes(6).toString('hex')}`
        const create = (): boolean => {
            try {
                fs.writeFileSync(f, `${token} ${now}\n`, { flag: 'wx' })
                return true
            } catch (e) {
                if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
                return false
            }
        }
        if (create()) return token
        const held = this.readClaim(f)
        if (held && !(now - held.since > CLAIM_MS)) return undefined
        // stale (its sender died or hung): only the process whose rename succeeds may replace it
        const aside = `${f}.stale.${token}`
        try {
            fs.renameSync(f, aside)
        } catch {
            return undefined
        }
        fs.rmSync(aside, { force: true })
        return create() ? token : undefined
    }

    protected async extend(day: string, domain: string, token: string, now: number): Promise<boolean> {
        const f = this.claimFile(day, domain)
        if (this.readClaim(f)?.token !== token) return false
        try {
            fs.writeFileSync(f, `${token} ${now}\n`)
            return true
        } catch {
            return false
        }
    }

    protected async drop(day: string, domain: string, token: string): Promise<void> {
        const f = this.claimFile(day, domain)
        try {
            if (this.readClaim(f)?.token === token) fs.rmSync(f, { force: true })
        } catch {
            /* it goes stale after CLAIM_MS */
        }
    }

    private readClaim(f: string): { token: string; since: number } | undefined {
        try {
            const [token, since] = fs.readFileSync(f, 'utf8').trim().split(' ')
            return { token, since: Number.isFinite(Number(since)) ? Number(since) : 0 }
        } catch {
            return undefined
        }
    }
}

/** The store of one machine: the journal, and what was sent beside it (several processes of that machine share it). */
export class FileStore implements TlsrptStore {
    readonly journal: JournalStore
    readonly sent: FileSentStore

    constructor(
        readonly dir: string,
        onFault: (message: string) => void = () => undefined,
    ) {
        this.journal = new JournalStore(dir, onFault)
        this.sent = new FileSentStore(dir)
    }

    get where(): string {
        return this.dir
    }

    add(result: SessionResult): void {
        this.journal.add(result)
    }

    async days(): Promise<string[]> {
        return this.journal.days()
    }

    /** the day's file read once; each domain's counts taken from it in memory */
    async day(day: string): Promise<DayResults> {
        return dayResultsOf(day, this.journal.results(day))
    }

    async close(): Promise<void> {
        this.journal.close()
    }
}
