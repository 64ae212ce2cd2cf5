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
import type { SessionResult } from './result'
import { utcDay } from './report'

export interface ResultStore {
    /** Keep one result. Never throws: a store that cannot write reports through `onFault`. */
    add(result: SessionResult): void
    /** The results kept for one UTC day, each id once, in the order they were written. */
    results(day: string): SessionResult[]
    close(): void
}

const FILE = /^results-(\d{4}-\d{2}-\d{2})\.jsonl$/

/** How often, at most, a store that cannot write says so in Haraka's log (as the delivery log, C29). */
const FAULT_REPORT_MS = 60_000

export class JournalStore implements ResultStore {
    private fd: number | undefined
    private fdDay = ''
    private lost = 0
    private lastReport = -Infinity

    constructor(
        readonly dir: string,
        private readonly onFault: (message: string) => void = () => undefined,
    ) {}

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
            const now = Date.now()
            if (now - this.lastReport < FAULT_REPORT_MS) return
            this.lastReport = now
            try {
                this.onFault(
                    `haraka-plugin-dane: TLS report result not kept in ${this.dir}: ${(e as Error).message}; ${this.lost} result(s) lost so far (repeated at most every ${FAULT_REPORT_MS / 1000} s)`,
                )
            } catch {
                /* the operator's log failing too is beyond telling */
            }
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
