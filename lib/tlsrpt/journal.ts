// Where TLS report results are kept until their day's report is built: by default a journal under
// Haraka's directory, one append-only file of JSON lines per UTC day (no server to run).
//
// Why by hand: node 20 has no SQLite of its own and a native module would need a compiler on every
// install; what is needed is small. Each result is one line written with one append (O_APPEND) at the
// moment the attempt ends, so that several Haraka processes (nodes=N) can share the directory, a
// restart loses nothing already written, and a crash loses at most the line being written (a torn last
// line is skipped when read). Every result carries an id and is counted once by it when read, so a line
// written twice cannot count twice.
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

export class JournalStore implements ResultStore {
    private fd: number | undefined
    private fdDay = ''

    constructor(
        readonly dir: string,
        private readonly onFault: (message: string) => void = () => undefined,
    ) {}

    fileOf(day: string): string {
        return path.join(this.dir, `results-${day}.jsonl`)
    }

    add(result: SessionResult): void {
        const day = utcDay(result.at)
        try {
            if (this.fd === undefined || this.fdDay !== day) {
                this.closeFd()
                fs.mkdirSync(this.dir, { recursive: true })
                this.fd = fs.openSync(this.fileOf(day), 'a')
                this.fdDay = day
            }
            fs.writeSync(this.fd, `${JSON.stringify(result)}\n`)
        } catch (e) {
            this.closeFd()
            try {
                this.onFault(`haraka-plugin-dane: TLS report result not kept in ${this.dir}: ${(e as Error).message}`)
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

function isResult(r: unknown): r is SessionResult {
    const x = r as SessionResult
    return (
        typeof x === 'object' &&
        x !== null &&
        typeof x.id === 'string' &&
        typeof x.at === 'number' &&
        typeof x.recipientDomain === 'string' &&
        typeof x.ok === 'boolean' &&
        typeof x.policy === 'object' &&
        x.policy !== null &&
        Array.isArray(x.policy.strings) &&
        Array.isArray(x.policy.mxHosts)
    )
}
