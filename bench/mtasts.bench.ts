/**
 * What MTA-STS costs a delivery (`npm run bench -- mtasts`): the per-domain service (lib/mtasts/service.ts)
 * against a real HTTPS policy server on loopback, in a process of its own so that its handshakes are not
 * counted as this one's (a test CA, one certificate naming every policy host), and
 * the real file store in a temporary directory. The `_mta-sts` TXT answer is given (its cost is a cached
 * lookup of the plugin's resolver: the resolver benchmark has it). It prints:
 *  - cold: DOMAINS domains asked at once, each fetched once, and how long the event loop was held meanwhile
 *    (perf_hooks' event-loop delay: the fetches are I/O, the parse is small);
 *  - steady: STEADY asks over those domains with their policies kept: the cost of one ask, and fetches made;
 *  - a simulated month (the clock moved an hour at a time, every domain asked every hour, max_age 7 days):
 *    fetches per domain, against the one per max_age RFC 8461 10.2 implies.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { makeCertificate } from '../test/world/certs'
import { FileStsStore, StsPolicies } from '../lib/mtasts/service'
import type { Answer } from '../lib/dns/answer'
import { txtAnswer } from '../test/world/tlsrpt-fixtures'

const DOMAINS = Number(process.env.BENCH_STS_DOMAINS ?? 200)
const STEADY = 200_000
const MAX_AGE_S = 7 * 86400
const HOUR = 3600_000

const txt = (name: string): Answer => txtAnswer(name, ['v=STSv1; id=bench1'])

export async function benchMtasts(): Promise<void> {
    const domains = Array.from({ length: DOMAINS }, (_, i) => `d${i}.bench.test`)
    const ca = makeCertificate({ cn: 'Bench CA', ca: true })
    const cert = makeCertificate({ cn: 'mta-sts.d0.bench.test', sans: domains.map((d) => `mta-sts.${d}`), issuer: ca })
    // the policy server: another node process; it says its port, then a line for each request it served
    const serverCode = `
        const https = require('node:https')
        const s = https.createServer({ cert: process.env.CERT, key: process.env.KEY }, (req, res) => {
            process.stdout.write('served\\n')
            res.writeHead(200, { 'Content-Type': 'text/plain' }).end(process.env.POLICY)
        })
        s.listen(0, '127.0.0.1', () => process.stdout.write('port ' + s.address().port + '\\n'))`
    const child = spawn(process.execPath, ['-e', serverCode], {
        env: { ...process.env, CERT: cert.pem, KEY: cert.keyPem, POLICY: `version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: ${MAX_AGE_S}\n` },
        stdio: ['ignore', 'pipe', 'inherit'],
    })
    let served = 0
    let buffered = ''
    const port = await new Promise<number>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`the policy server ended (${code})`)))
        child.stdout!.on('data', (chunk: Buffer) => {
            buffered += chunk.toString()
            let nl: number
            while ((nl = buffered.indexOf('\n')) >= 0) {
                const line = buffered.slice(0, nl)
                buffered = buffered.slice(nl + 1)
                if (line.startsWith('port ')) resolve(Number(line.slice(5)))
                else if (line === 'served') served++
            }
        })
    })
    // the server's count arrives over a pipe: read it once every request it answered has been told
    const servedNow = async (): Promise<number> => {
        await new Promise((r) => setTimeout(r, 50))
        return served
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-bench-sts-'))
    let now = Date.now()
    const service = (): StsPolicies =>
        new StsPolicies({
            lookupTxt: async (name) => txt(name),
            addresses: async () => ['127.0.0.1'],
            store: new FileStsStore(dir),
            ca: ca.pem,
            port,
            timeoutMs: 10_000,
            now: () => now,
        })
    try {
        const s = service()
        const loop = monitorEventLoopDelay({ resolution: 1 })
        loop.enable()
        let t0 = process.hrtime.bigint()
        const cold = await Promise.all(domains.map((d) => s.policyFor(d)))
        const coldMs = Number(process.hrtime.bigint() - t0) / 1e6
        loop.disable()
        const enforced = cold.filter((o) => o.inForce?.mode === 'enforce').length
        console.log(
            `cold: ${DOMAINS} domains asked at once: ${await servedNow()} fetches, ${enforced} policies in force, ${coldMs.toFixed(0)} ms in all; ` +
                `event loop delay meanwhile: max ${(loop.max / 1e6).toFixed(1)} ms, p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms`,
        )

        const before = await servedNow()
        t0 = process.hrtime.bigint()
        for (let i = 0; i < STEADY; i++) await s.policyFor(domains[i % DOMAINS])
        const perAskUs = Number(process.hrtime.bigint() - t0) / 1e3 / STEADY
        console.log(`steady: ${STEADY} asks over ${DOMAINS} kept policies: ${perAskUs.toFixed(2)} µs an ask, ${(await servedNow()) - before} fetches`)

        // a month, an hour at a time; a new service first (a restart: policies read from the files)
        const month = service()
        const start = served
        const hours = 30 * 24
        for (let h = 0; h < hours; h++) {
            now += HOUR
            await Promise.all(domains.map((d) => month.policyFor(d)))
        }
        const perDomain = ((await servedNow()) - start) / DOMAINS
        console.log(
            `a month (${hours} hours, every domain asked every hour, max_age ${MAX_AGE_S / 86400} days): ${perDomain.toFixed(2)} fetches per domain ` +
                `(${((hours * HOUR) / (MAX_AGE_S * 1000)).toFixed(2)} max_ages)`,
        )
    } finally {
        child.removeAllListeners('exit')
        child.kill()
        fs.rmSync(dir, { recursive: true, force: true })
    }
}
