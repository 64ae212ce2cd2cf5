// Issue 11: the plugin's own I/O never takes Haraka down (C29), and the work per message is
// bounded (C30): a log destination that fails, and a hostile MX RRset, without a network.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { SafeDestination, createLogger, LOG_FAULT_REPORT_MS, LOG_FLUSH_MS } from '../../lib/log'
import { decide, type Lookup } from '../../lib/policy'
import type { Answer, RRType } from '../../lib/resolver'

describe('C29: a failing delivery log', () => {
    it('C29: writing to a full device never throws; the operator is told once, then at most once a minute, with the count', () => {
        const told: string[] = []
        let now = 1_000_000
        const d = new SafeDestination(
            '/dev/full',
            (m) => told.push(m),
            () => now,
        )
        for (let i = 0; i < 5; i++) {
            assert.equal(d.write('{"a":1}\n'), true)
            d.flush() // each line in a turn of its own
        }
        assert.equal(told.length, 1)
        assert.match(told[0], /the delivery log \/dev\/full cannot be written \(ENOSPC\); 1 line\(s\) lost so far\. Deliveries go on by policy/)
        now += LOG_FAULT_REPORT_MS
        d.write('{"a":2}\n')
        d.flush()
        assert.equal(told.length, 2)
        assert.match(told[1], /6 line\(s\) lost so far/)
    })

    it('C29: when the destination works again, logging resumes and says how many lines were lost', () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-log-'))
        const file = path.join(dir, 'sub', 'dane.jsonl')
        const told: string[] = []
        const d = new SafeDestination(file, (m) => told.push(m))
        d.write('one\n')
        d.flush()
        // the descriptor goes bad behind the logger's back (a rotation tool closing it, say)
        fs.closeSync((d as unknown as { fd: number }).fd)
        d.write('lost\n')
        d.flush()
        d.write('two\n')
        d.flush()
        assert.equal(fs.readFileSync(file, 'utf8'), 'one\ntwo\n')
        assert.equal(told.length, 2)
        assert.match(told[0], /cannot be written \(EBADF\)/)
        assert.match(told[1], /is written again; 1 line\(s\) were lost/)
        d.close()
        fs.rmSync(dir, { recursive: true, force: true })
    })

    it('C29: a pino logger on /dev/full logs without throwing, and an operator callback that throws is contained', async () => {
        let calls = 0
        const logger = createLogger({ destination: '/dev/full', level: 'info' }, () => {
            calls++
            throw new Error('the operator log is broken too')
        })
        assert.doesNotThrow(() => logger.info({ event: 'decision' }, 'x'))
        assert.doesNotThrow(() => logger.error({ event: 'final' }, 'y'))
        // the lines are written within LOG_FLUSH_MS: the failure, and the throwing callback, come then
        await new Promise((resolve) => setTimeout(resolve, LOG_FLUSH_MS + 5))
        assert.equal(calls, 1)
    })

    it('C29: the lines logged within LOG_FLUSH_MS are written together, in order, in one system call', async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-log-'))
        const file = path.join(dir, 'dane.jsonl')
        const d = new SafeDestination(file, () => undefined)
        const mod = fs as { writeSync: typeof fs.writeSync }
        const original = mod.writeSync
        let calls = 0
        mod.writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
            calls++
            return original(...args)
        }) as typeof fs.writeSync
        try {
            d.write('line 1\n')
            // a line of a later turn joins them
            await new Promise((resolve) => setImmediate(resolve))
            for (let i = 2; i <= 3; i++) d.write(`line ${i}\n`)
            assert.equal(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '', '', 'nothing written yet')
            await new Promise((resolve) => setTimeout(resolve, LOG_FLUSH_MS + 5))
            assert.equal(calls, 1)
            assert.equal(fs.readFileSync(file, 'utf8'), 'line 1\nline 2\nline 3\n')
            // a turn that logs more than 64 KiB writes as it goes
            for (let i = 0; i < 100; i++) d.write(`${'x'.repeat(1023)}\n`)
            assert.ok(fs.statSync(file).size > 64 * 1024)
        } finally {
            mod.writeSync = original
            d.close()
        }
        assert.equal(fs.statSync(file).size, 21 + 100 * 1024, 'close writes what was left')
        // a line logged after close (a decision under way when the configuration changed) is written, the file not kept open
        d.write('late\n')
        await new Promise((resolve) => setTimeout(resolve, LOG_FLUSH_MS + 5))
        assert.ok(fs.readFileSync(file, 'utf8').endsWith('late\n'))
        const open = fs.readdirSync('/proc/self/fd').filter((fd) => {
            try {
                return fs.readlinkSync(`/proc/self/fd/${fd}`) === file
            } catch {
                return false
            }
        })
        assert.deepEqual(open, [], 'no descriptor left on the old file')
        fs.rmSync(dir, { recursive: true, force: true })
    })

    it('C29: lines not yet written are written when the process exits: at process.exit and on an uncaught exception', () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-log-'))
        const log = require.resolve('../../lib/log')
        for (const [how, end] of [
            ['exit', 'process.exit(0)'],
            ['crash', "throw new Error('boom')"],
        ]) {
            const file = path.join(dir, `${how}.jsonl`)
            const script = `const { createLogger } = require(${JSON.stringify(log)}); const l = createLogger({ destination: ${JSON.stringify(file)}, level: 'info' }); l.info({ event: 'decision', n: 1 }, 'one'); l.info({ event: 'final', n: 2 }, 'two'); ${end}`
            const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
            assert.equal(r.status, how === 'exit' ? 0 : 1, r.stderr)
            const lines = fs
                .readFileSync(file, 'utf8')
                .trim()
                .split('\n')
                .map((l) => JSON.parse(l) as { n: number })
            assert.deepEqual(
                lines.map((l) => l.n),
                [1, 2],
                how,
            )
        }
        fs.rmSync(dir, { recursive: true, force: true })
    })
})

describe('C30: bounded work per destination', () => {
    /** a destination with `n` MX hosts, each with one secure address and a DANE-EE record */
    function manyMx(n: number, asked: string[]): Lookup {
        return async (name: string, type: RRType): Promise<Answer> => {
            asked.push(`${name} ${type}`)
            const base = { name, type, secure: true, canonicalName: name, cnames: [], ttl: 60, rcode: 0 }
            if (type === 'MX')
                return { ...base, status: 'ok', mx: Array.from({ length: n }, (_, i) => ({ preference: i, exchange: `mx${i}.hostile.example` })) }
            if (type === 'A')
                return { ...base, status: 'ok', addresses: [`192.0.2.${(Number(/mx(\d+)/.exec(name)?.[1]) % 250) + 1}`, '198.51.100.1', '198.51.100.2'] }
            if (type === 'TLSA') return { ...base, status: 'ok', tlsa: [Buffer.concat([Buffer.from([3, 1, 1]), Buffer.alloc(32, 1)])] }
            return { ...base, status: 'nodata' }
        }
    }

    it('C30: an MX RRset of 2,873 hosts costs the lookups of the first 10 (lowest preference) only, and says so', async () => {
        const asked: string[] = []
        const d = await decide('hostile.example', manyMx(2873, asked))
        assert.equal(d.hosts.length, 10)
        assert.deepEqual(
            d.hosts.map((h) => h.name),
            Array.from({ length: 10 }, (_, i) => `mx${i}.hostile.example`),
        )
        assert.ok(asked.length <= 1 + 10 * 3, `${asked.length} lookups`)
        assert.match(d.reason, /2863 more MX host\(s\) beyond the limit of 10 not considered/)
    })

    it('C30: at most the configured number of addresses in all, in MX order; a host left without any is not used', async () => {
        const d = await decide('hostile.example', manyMx(5, []), { limits: { mxHosts: 5, addresses: 4 } })
        assert.deepEqual(
            d.hosts.map((h) => h.addresses.length),
            [3, 1, 0, 0, 0],
        )
        assert.deepEqual(
            d.hosts.map((h) => h.mode),
            ['dane', 'dane', 'skip', 'skip', 'skip'],
        )
        assert.match(d.hosts[1].reason, /2 address\(es\) beyond the limit of 4 not used/)
        assert.match(d.hosts[2].reason, /the limit of 4 address\(es\) per destination was reached/)
        assert.equal(d.action, 'deliver')
    })

    it("C30: one decision's log line stays bounded whatever the MX RRset holds", async () => {
        const { decisionFields } = await import('../../lib/log')
        const d = await decide('hostile.example', manyMx(2873, []))
        const line = JSON.stringify(decisionFields(d, 'Q', 1))
        assert.ok(line.length < 8000, `${line.length} bytes`)
    })
})
