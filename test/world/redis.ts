// A real redis-server for the test world: Haraka's outbound keeps its "TLS NO-GO"
// marks there (tls.ini [redis] disable_for_failed_hosts=true), which is how a
// TLS failure turns into plaintext on the next try. The tests read the marks
// directly to prove that DANE failures never create one (C20).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startProcess, stopProcess, waitForTcp, Started, run } from './procs'

export class RedisWorld {
    readonly dir: string
    private proc?: Started

    constructor(
        readonly address = '127.0.0.28',
        readonly port = 6379,
    ) {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-world-redis-'))
    }

    async start(): Promise<void> {
        const conf = path.join(this.dir, 'redis.conf')
        fs.writeFileSync(
            conf,
            [
                `bind ${this.address}`,
                `port ${this.port}`,
                'save ""',
                'appendonly no',
                `dir ${this.dir}`,
                'protected-mode no',
                'daemonize no',
                'logfile ""',
                '',
            ].join('\n'),
        )
        this.proc = startProcess('redis-server', 'redis-server', [conf], path.join(this.dir, 'redis.log'))
        await waitForTcp(this.address, this.port, this.proc)
    }

    cli(...args: string[]): string {
        return run('redis-cli', ['-h', this.address, '-p', String(this.port), ...args]).trim()
    }

    /** Addresses Haraka has marked "no TLS". */
    noTlsMarks(): string[] {
        const out = this.cli('--raw', 'KEYS', 'no_tls|*')
        return out
            .split('\n')
            .filter(Boolean)
            .map((k) => k.replace(/^no_tls\|/, ''))
            .sort()
    }

    /** The tls.ini lines that make Haraka's outbound use this redis for its TLS NO-GO list. */
    tlsIni(): string {
        return `[redis]\ndisable_for_failed_hosts=true\nhost=${this.address}\nport=${this.port}\n`
    }

    async stop(): Promise<void> {
        if (this.proc) await stopProcess(this.proc, `${this.address}:${this.port}`)
        this.proc = undefined
        fs.rmSync(this.dir, { recursive: true, force: true })
    }
}
