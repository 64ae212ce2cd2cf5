// What the plugin costs Haraka's outbound delivery, measured so that Haraka is the bottleneck:
//  - receivers that greet at once (bench/fast-receiver.ts, in processes of their own whose CPU is
//    read and printed, so that one can see they are not the limit);
//  - both Harakas with Nagle's algorithm off on their outbound sockets (bench/no-nagle.ts): as
//    shipped, every message waits ~44 ms for the receiver's delayed ACK, and that timer, not the
//    MTA, bounded the benchmark;
//  - each round fills Haraka's queue with delivery disabled (injection is not timed; the disk is
//    synced), enables delivery, lets WARM deliveries go untimed (a Haraka idle while the other ran
//    warms up again) and times the next N: messages a second, and the CPU over the same deliveries;
//  - stock Haraka (its own MX lookup, opportunistic TLS) and Haraka with the plugin alternate strictly
//    (stock, plugin, stock, plugin: each timed run follows exactly one run of the other), on the same destinations, 20 connections at a time (outbound concurrency_max);
//  - per round: messages per second, the ratio plugin/stock, CPU seconds per 1,000 messages (the
//    Haraka processes' user+system time), the receivers' CPU, the median latency (get_mx to
//    delivered); peak memory of each Haraka at the end.
// Workloads: DANE-EE (one MX, 3 1 1), DANE-TA (2 0 1 on a presented root), and first-MX-fails
// (the first MX presents a key its TLSA record does not name; two handshakes a message); and the
// DANE-EE workload again with nodes=2. Needs root (ports 25/53 on 127.0.6.x), like the tests.
//
//   npm run bench -- delivery                 (5 rounds × 1,000 messages a workload, about 20 minutes)
//   BENCH_MESSAGES=2000 BENCH_ROUNDS=5 npm run bench -- delivery
//   BENCH_WORKLOADS=ee,nodes=2:ee ...          (some workloads only)
//   BENCH_POLICY=may, BENCH_LOG_LEVEL=silent   (the plugin's policy word and log level, to see where its cost lies)
//   BENCH_PROFILE=1 ...                        (node --cpu-prof on both Harakas; the .cpuprofile files are kept)
//   BENCH_WARM=600 ...                         (deliveries not timed at the start of each round; default 200)
//   BENCH_NAGLE=1 ...                          (Haraka as shipped: Nagle on, see bench/no-nagle.ts)
//   BENCH_TAIL=1 ...                           (per round: memory, p99 and max latency, the 5-95% rate)
//   BENCH_NODE_ARGS='--max-semi-space-size=32' (node options for both Harakas)
//   BENCH_BASELINE=plugin BENCH_TLSRPT=1 ...   (both sides run the plugin; the "plugin" side keeps TLS report
//                                              results ([tlsrpt] enabled): what reporting costs)
//   BENCH_BASELINE=checkout:DIR ...            (both sides run the plugin, the "stock" side from another built checkout
//                                               of it, e.g. the commit before a change: what the change saves)
//   BENCH_BASELINE=minimal ...                 (the stock side gets a get_mx plugin that answers the same MX
//                                              addresses from a table: Haraka's cost of a get_mx plugin, and
//                                              the plugin's own above it)
import { execSync, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DnsWorld } from '../test/world/dns'
import { makeCertificate, tlsaText, type TestCert } from '../test/world/certs'
import { Haraka } from '../test/world/haraka'
import { sleep } from '../test/world/procs'

const N = Number(process.env.BENCH_MESSAGES ?? 1000)
/** deliveries at the start of each round that are not timed (see round()) */
const WARM = Number(process.env.BENCH_WARM ?? Math.max(1, Math.min(200, Math.floor(N / 5))))
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const CONCURRENCY = 20
const NET = '127.0.6'
const TICK = 100 // clock ticks a second (/proc/<pid>/stat)

/**
 * BENCH_BASELINE=minimal: the least a get_mx plugin can do, answer each workload's MX addresses from a
 * table (no DNS, no log, no TLS policy), given to the stock Haraka. Against it, the ratio and CPU columns
 * show the plugin's own cost; stock against it shows what Haraka's hook path costs or saves.
 */
const MINIMAL_MX: Record<string, [number, string][]> = {
    'ee.bench.test': [[10, `${NET}.11`]],
    'ta.bench.test': [[10, `${NET}.12`]],
    'fallback.bench.test': [
        [10, `${NET}.14`],
        [20, `${NET}.13`],
    ],
}
const MINIMAL_MX_PLUGIN = `'use strict'
const { HarakaMx } = require(${JSON.stringify(require.resolve('haraka-net-utils', { paths: [path.dirname(require.resolve('Haraka/package.json'))] }))})
const table = ${JSON.stringify(MINIMAL_MX)}
exports.register = function () {
    this.register_hook('get_mx', 'answer')
}
exports.answer = function (next, hmail, domain) {
    const mx = table[domain]
    if (!mx) return next()
    next(OK, mx.map(([priority, exchange]) => new HarakaMx({ exchange, priority, from_dns: domain })))
}
`

interface Receiver {
    proc: ChildProcess
    count(): Promise<{ messages: number; cpuUs: number }>
}

async function startReceiver(dir: string, name: string, chain: TestCert[], key: string, addresses: string[]): Promise<Receiver> {
    const cert = path.join(dir, `${name}.pem`)
    const keyFile = path.join(dir, `${name}.key`)
    fs.writeFileSync(cert, chain.map((c) => c.pem).join(''))
    fs.writeFileSync(keyFile, key)
    const proc = spawn(process.execPath, [path.join(__dirname, 'fast-receiver.js'), cert, keyFile, ...addresses], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    while (!out.includes('READY')) {
        if (proc.exitCode !== null) throw new Error(`receiver ${name} exited`)
        await sleep(20)
    }
    return {
        proc,
        count: async () => {
            const before = out.length
            proc.kill('SIGUSR2')
            while (!/COUNT \d+ \d+\n/.test(out.slice(before))) await sleep(10)
            const m = /COUNT (\d+) (\d+)\n/.exec(out.slice(before))!
            return { messages: Number(m[1]), cpuUs: Number(m[2]) }
        },
    }
}

/** user+system CPU seconds of these processes so far */
/** user+system CPU of these processes (all their threads), or of their main threads only (JavaScript's) */
function cpuSeconds(pids: number[], mainThread = false): number {
    let ticks = 0
    for (const pid of pids) {
        try {
            const f = fs
                .readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8')
                .split(') ')[1]
                .split(' ')
            ticks += Number(f[11]) + Number(f[12]) // utime, stime (fields 14 and 15)
        } catch {
            /* gone */
        }
    }
    return ticks / TICK
}

/** peak resident memory (VmHWM) of these processes, MB */
function peakMb(pids: number[]): number {
    let kb = 0
    for (const pid of pids) {
        try {
            kb = Math.max(kb, Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0))
        } catch {
            /* gone */
        }
    }
    return kb / 1024
}

function outbound(disabled: boolean, nodes: number): string {
    return `local_mx_ok=true\nenable_tls=true\ntemp_fail_intervals=1s*50\nconnect_timeout=10\nconcurrency_max=${Math.ceil(CONCURRENCY / Math.max(1, nodes))}\ndisabled=${disabled}\n`
}

async function inject(h: Haraka, to: string, n: number): Promise<string[]> {
    const ids: string[] = []
    let next = 0
    await Promise.all(
        Array.from({ length: 10 }, async () => {
            while (next < n) {
                const i = next++
                ids.push(await h.send(`b${i}@${to}`, { subject: `bench ${i}` }))
            }
        }),
    )
    return ids
}

interface RoundResult {
    /** median ms from the start of a message's delivery (get_mx) to its delivery */
    latencyMs: number
    perSecond: number
    cpuPer1000: number
    /** the same for the main threads alone: JavaScript, Haraka's and the plugin's, runs there and nowhere else */
    jsCpuPer1000: number
    delivered: number
    tail: string
    /** deferrals seen (a deferred message is retried after a second, which stretches the round) */
    deferred: number
}

/** the delivery events Haraka's test plugin appends to its file, read as they come (only the new bytes each time) */
class EventTail {
    private offset: number
    private rest = ''
    readonly events: { event: string; t?: number; started?: number }[] = []
    constructor(private readonly file: string) {
        this.offset = fs.existsSync(file) ? fs.statSync(file).size : 0
    }
    read(): void {
        if (!fs.existsSync(this.file)) return
        const size = fs.statSync(this.file).size
        if (size <= this.offset) return
        const buf = Buffer.alloc(size - this.offset)
        const fd = fs.openSync(this.file, 'r')
        try {
            fs.readSync(fd, buf, 0, buf.length, this.offset)
        } finally {
            fs.closeSync(fd)
        }
        this.offset = size
        const lines = (this.rest + buf.toString('utf8')).split('\n')
        this.rest = lines.pop() ?? ''
        for (const l of lines) if (l) this.events.push(JSON.parse(l))
    }
    count(kind: string): number {
        return this.events.filter((e) => e.event === kind).length
    }
}

/**
 * Fill the queue with delivery disabled, enable it, and time the steady state: the first WARM deliveries of
 * a round are not timed (a Haraka that sat idle while the other ran has code to warm up again: bytecode
 * flushed, optimisations dropped; untimed, that cost fell on whichever ran second in a pair, the plugin more
 * than stock), then N deliveries are: messages a second from the WARM-th delivery to the last, and the CPU
 * over the same deliveries.
 */
async function round(h: Haraka, nodes: number, to: string): Promise<RoundResult> {
    const file = path.join(h.dir, 'events.jsonl')
    const tail = new EventTail(file)
    const ids = await inject(h, to, WARM + N)
    // the queue files just written reach the disk now, not while the next round is timed (the one after this
    // round's deletions, too): otherwise whichever Haraka ran second in a pair paid for the first's writeback
    execSync('sync')
    await sleep(300)
    h.writeConfigFile('outbound.ini', outbound(false, nodes))
    // the benchmark's own work while it waits must not load the machine: it reads only what was appended
    let cpu0: number | undefined
    let js0 = 0
    let counted0 = 0
    const deadline = Date.now() + 300000
    for (;;) {
        tail.read()
        const seen = tail.events.length
        if (cpu0 === undefined && tail.count('delivered') >= WARM) {
            cpu0 = cpuSeconds(h.pids())
            js0 = cpuSeconds(h.pids(), true)
            counted0 = tail.count('delivered')
        }
        if (seen >= ids.length || Date.now() > deadline) break
        await sleep(cpu0 === undefined ? 10 : 100)
    }
    const cpu1 = cpuSeconds(h.pids())
    const js1 = cpuSeconds(h.pids(), true)
    const rss = h.pids().map((pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) >> 10)
    h.writeConfigFile('outbound.ini', outbound(true, nodes))
    execSync('sync')
    const all = tail.events.filter((e) => e.event === 'delivered').sort((a, b) => (a.t ?? 0) - (b.t ?? 0))
    const deferred = tail.count('deferred')
    const timed = all.slice(WARM)
    const times = timed.map((e) => e.t ?? 0)
    const span = (times[times.length - 1] - (all[WARM - 1]?.t ?? times[0])) / 1000
    // the next round starts only once Haraka has seen delivery disabled again (haraka-config's watcher)
    await sleep(6000)
    const latencies = timed.flatMap((e) => (e.t && e.started ? [e.t - e.started] : [])).sort((a, b) => a - b)
    const median = latencies.length ? latencies[Math.floor(latencies.length / 2)] : NaN
    return {
        perSecond: timed.length / span,
        cpuPer1000: ((cpu1 - (cpu0 ?? cpu1)) * 1000) / Math.max(1, all.length - counted0),
        jsCpuPer1000: ((js1 - (cpu0 === undefined ? js1 : js0)) * 1000) / Math.max(1, all.length - counted0),
        delivered: timed.length,
        deferred,
        latencyMs: median,
        tail: `rss ${rss.join('+')} MB; p99 ${latencies[Math.floor(latencies.length * 0.99)]} max ${latencies[latencies.length - 1]} ms; 5-95% ${((0.9 * timed.length) / ((times[Math.floor(times.length * 0.95)] - times[Math.floor(times.length * 0.05)]) / 1000)).toFixed(0)}/s`,
    }
}

export async function benchDelivery(): Promise<void> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-bench-'))
    const good = makeCertificate({ cn: 'bench-good' })
    const wrong = makeCertificate({ cn: 'bench-wrong' })
    const root = makeCertificate({ cn: 'Bench Root', ca: true })
    const inter = makeCertificate({ cn: 'Bench Inter', ca: true, issuer: root })
    const taLeaf = makeCertificate({ cn: 'mx.ta.bench.test', sans: ['mx.ta.bench.test'], issuer: inter })
    const dns = new DnsWorld({ nsdAddress: `${NET}.52`, resolverAddress: `${NET}.53` })
    const receivers: Receiver[] = []
    const harakas: Haraka[] = []
    try {
        await dns.start([
            {
                name: 'bench.test',
                signing: 'signed',
                ttl: 3600,
                records: [
                    'ee MX 10 mx.ee',
                    `mx.ee A ${NET}.11`,
                    `_25._tcp.mx.ee TLSA ${tlsaText(good, 3, 1, 1)}`,
                    'ta MX 10 mx.ta',
                    `mx.ta A ${NET}.12`,
                    `_25._tcp.mx.ta TLSA ${tlsaText(root, 2, 0, 1)}`,
                    'fallback MX 10 mx1.fallback',
                    'fallback MX 20 mx2.fallback',
                    `mx1.fallback A ${NET}.14`,
                    `mx2.fallback A ${NET}.13`,
                    `_25._tcp.mx1.fallback TLSA ${tlsaText(good, 3, 1, 1)}`,
                    `_25._tcp.mx2.fallback TLSA ${tlsaText(good, 3, 1, 1)}`,
                ],
            },
        ])
        const minimal = process.env.BENCH_BASELINE === 'minimal'
        receivers.push(await startReceiver(dir, 'good', [good], good.keyPem, [`${NET}.11`, `${NET}.13`]))
        receivers.push(await startReceiver(dir, 'ta', [taLeaf, inter, root], taLeaf.keyPem, [`${NET}.12`]))
        receivers.push(await startReceiver(dir, 'wrong', [wrong], wrong.keyPem, [`${NET}.14`]))
        const nodeArgs = (who: string): string[] => [
            ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
            ...(process.env.BENCH_NAGLE ? [] : ['-r', path.join(__dirname, 'no-nagle.js')]),
            ...(process.env.BENCH_PROFILE
                ? ['-r', path.join(__dirname, 'exit-on-sigterm.js'), '--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'profiles', who)}`]
                : []),
        ]

        const otherCheckout = process.env.BENCH_BASELINE?.startsWith('checkout:')
            ? path.resolve(process.env.BENCH_BASELINE.slice('checkout:'.length))
            : undefined
        if (otherCheckout && !['dist/index.js', 'node_modules'].every((f) => fs.existsSync(path.join(otherCheckout, f))))
            throw new Error(`BENCH_BASELINE: ${otherCheckout} needs dist/index.js and node_modules (npm ci and a build there first)`)
        const pluginBaseline = process.env.BENCH_BASELINE === 'plugin' || otherCheckout !== undefined
        const make = async (side: boolean, nodes: number, port: number): Promise<Haraka> => {
            const withDane = side || pluginBaseline
            // BENCH_TLSRPT: the plugin side keeps a TLS report result of every session (RFC 8460); reports go out a day later
            const tlsrpt =
                side && process.env.BENCH_TLSRPT
                    ? `[tlsrpt]\nenabled=true\norganization_name=Bench\ncontact_info=tls@bench.test\ndirectory=${path.join(dir, `tlsrpt-${port}`)}\n`
                    : ''
            const h = new Haraka({
                withDane,
                pluginRoot: side ? undefined : otherCheckout,
                port,
                systemResolver: withDane ? undefined : dns.resolverAddress,
                nodeArgs: nodeArgs(side ? 'plugin' : 'stock'),
                config: {
                    'smtp.ini': `listen=127.0.0.25:${port}\nnodes=${nodes}\n`,
                    'outbound.ini': outbound(true, nodes),
                    'log.ini': '[main]\nlevel=warn\n',
                    'dane.ini': `[resolver]\naddress=${dns.resolverAddress}\nport=53\n[log]\ndestination=${path.join(dir, `dane-${port}.jsonl`)}\nlevel=${process.env.BENCH_LOG_LEVEL ?? 'info'}\n[main]\npolicy=${process.env.BENCH_POLICY ?? 'dane'}\n${tlsrpt}`,
                },
            })
            if (minimal && !withDane) {
                fs.writeFileSync(path.join(h.dir, 'plugins', 'minimal_mx.js'), MINIMAL_MX_PLUGIN)
                h.writeConfigFile('plugins', 'relay\nworld_events\nminimal_mx\n')
            }
            harakas.push(h)
            await h.start()
            await sleep(nodes ? 1500 : 300)
            return h
        }

        const receiverCpu = async (): Promise<number> => (await Promise.all(receivers.map((r) => r.count()))).reduce((n, c) => n + c.cpuUs, 0) / 1e6
        if (otherCheckout) console.log(`BENCH_BASELINE=checkout: "stock" is Haraka with the plugin as built in ${otherCheckout}`)
        else if (pluginBaseline)
            console.log(
                `BENCH_BASELINE=plugin: "stock" is Haraka with the plugin too${process.env.BENCH_TLSRPT ? '; the "plugin" side keeps TLS report results' : ''}`,
            )
        if (minimal) console.log('BENCH_BASELINE=minimal: "stock" is Haraka with a get_mx plugin that answers the same MX addresses from a table')
        console.log(
            `delivery: ${N} messages a round timed (after ${WARM} untimed), ${CONCURRENCY} connections, one message a connection, on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}`,
        )
        const only = process.env.BENCH_WORKLOADS?.split(',')
        for (const [label, nodes, all] of [
            ['nodes=0', 0, ['ee', 'ta', 'fallback']],
            ['nodes=2', 2, ['ee']],
        ] as const) {
            const workloads = all.filter((w) => !only || only.includes(`${label}:${w}`) || only.includes(w))
            if (workloads.length === 0) continue
            const stock = await make(false, nodes, 2540 + nodes)
            const dane = await make(true, nodes, 2550 + nodes)
            for (const w of workloads) {
                const to = `${w}.bench.test`
                // warm both: DNS caches, TLS session code, JIT
                await round(stock, nodes, to).catch(() => undefined)
                await round(dane, nodes, to).catch(() => undefined)
                console.log(
                    `\n${label} ${w}: round  stock msg/s  plugin msg/s  ratio  stock CPU s/1000 (JS)  plugin CPU s/1000 (JS)  receivers CPU s  latency ms s / p`,
                )
                const ratios: number[] = []
                const extraUs: number[] = []
                const extraJsUs: number[] = []
                for (let r = 1; r <= ROUNDS; r++) {
                    const rc0 = await receiverCpu()
                    // strictly alternating, stock then plugin: every timed run follows one run of the other
                    // Haraka (the warm-up above included), so each starts from the same idle time. ABBA gave
                    // one Haraka two runs in a row and the other two idle runs, and the one that had sat
                    // idle through two runs was the slow one of that round (the plugin down to 0.74 of
                    // stock, stock by 5-10 %)
                    const s = await round(stock, nodes, to)
                    const d = await round(dane, nodes, to)
                    const rc1 = await receiverCpu()
                    ratios.push(d.perSecond / s.perSecond)
                    extraUs.push(d.cpuPer1000 - s.cpuPer1000) // s per 1,000 messages = ms a message; ×1000 below
                    extraJsUs.push(d.jsCpuPer1000 - s.jsCpuPer1000)
                    console.log(
                        `${' '.repeat(label.length + w.length + 2)}${String(r).padStart(6)}${s.perSecond.toFixed(0).padStart(13)}${d.perSecond.toFixed(0).padStart(14)}${(d.perSecond / s.perSecond).toFixed(2).padStart(7)}${`${s.cpuPer1000.toFixed(2)} (${s.jsCpuPer1000.toFixed(2)})`.padStart(23)}${`${d.cpuPer1000.toFixed(2)} (${d.jsCpuPer1000.toFixed(2)})`.padStart(24)}${(rc1 - rc0).toFixed(2).padStart(17)}${`${s.latencyMs} / ${d.latencyMs}`.padStart(16)}` +
                            (s.delivered !== N || d.delivered !== N ? `  (delivered ${s.delivered}/${d.delivered} of ${N})` : '') +
                            (s.deferred || d.deferred ? `  (deferrals ${s.deferred}/${d.deferred})` : '') +
                            (process.env.BENCH_TAIL ? `\n      stock ${s.tail}\n      plugin ${d.tail}` : ''),
                    )
                }
                const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
                const sorted = [...ratios].sort((a, b) => a - b)
                const us = (ms: number): string => `${ms >= 0 ? '+' : ''}${(ms * 1000).toFixed(0)} µs`
                console.log(
                    `${' '.repeat(label.length + w.length + 2)}median ratio ${median(ratios).toFixed(2)} (min ${sorted[0].toFixed(2)}, max ${sorted[sorted.length - 1].toFixed(2)}); the plugin's CPU a message above stock's: median ${us(median(extraUs))}, JS thread ${us(median(extraJsUs))}`,
                )
            }
            console.log(`${' '.repeat(label.length + 1)}peak memory: stock ${peakMb(stock.pids()).toFixed(0)} MB, plugin ${peakMb(dane.pids()).toFixed(0)} MB`)
            await stock.stop()
            await dane.stop()
        }
        if (process.env.BENCH_PROFILE) console.log(`\nCPU profiles (stock/, plugin/): ${path.join(dir, 'profiles')}`)
    } finally {
        for (const h of harakas) {
            await h.stop().catch(() => undefined)
            h.cleanup()
        }
        for (const r of receivers) r.proc.kill('SIGKILL')
        await dns.stop()
        if (!process.env.BENCH_PROFILE) fs.rmSync(dir, { recursive: true, force: true })
    }
}
