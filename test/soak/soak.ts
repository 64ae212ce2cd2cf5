// The soak (`npm run soak`, not part of `npm test`): a real Haraka with the plugin delivers
// thousands of messages to DANE-EE, DANE-TA, first-MX-fails, insecure and bogus destinations
// while faults are injected: the resolver slowed past the plugin's timeout, unbound stopped and
// started, receivers stopped and started, Haraka itself restarted; once with nodes=0 and once in
// cluster mode (nodes=2). Receivers record every message's token and body hash. At the end it
// prints, per round and in all: delivered exactly once, still queued, bounced, duplicates,
// corrupted, downgrades (a DANE destination's message delivered other than verified, or a bogus
// destination's delivered at all) and lost; it exits non-zero unless duplicates, corrupted,
// downgrades, bounced and lost are all 0.
//
//   npm run soak                          (2 rounds × 1,000 messages)
//   SOAK_MESSAGES=3000 npm run soak       (messages per round)
//
// Needs root like the tests (ports 25 and 53 on 127.0.4.x). Everything it starts, it stops.
import { createHash, randomUUID } from 'node:crypto'
import path from 'node:path'
import { DnsWorld } from '../world/dns'
import { DnsProxy } from '../world/dnsproxy'
import { makeCertificate, tlsaText } from '../world/certs'
import { Listener } from '../world/smtp'
import { Haraka } from '../world/haraka'
import { readDaneLog } from '../world/dane-log'
import { sleep } from '../world/procs'

const MESSAGES = Number(process.env.SOAK_MESSAGES ?? 1000)
const NET = '127.0.4'
const PROXY = `${NET}.54`

type Kind = 'ee' | 'ta' | 'fallback' | 'insecure' | 'bogus'
const MIX: [Kind, number][] = [
    ['ee', 3],
    ['ta', 2],
    ['fallback', 2],
    ['insecure', 2],
    ['bogus', 1],
]
const DOMAIN: Record<Kind, string> = {
    ee: 'ee.soak.test',
    ta: 'ta.soak.test',
    fallback: 'fallback.soak.test',
    insecure: 'soakplain.test',
    bogus: 'bogus.soak.test',
}
/** where each kind may arrive, and the SNI a DANE delivery must carry there */
const ALLOWED: Record<Kind, { listener: string; sni?: string }[]> = {
    ee: [{ listener: 'ee', sni: 'mx.ee.soak.test' }],
    ta: [{ listener: 'ta', sni: 'mx.ta.soak.test' }],
    fallback: [{ listener: 'good', sni: 'mx2.fallback.soak.test' }],
    insecure: [{ listener: 'plain' }],
    bogus: [],
}

interface Sent {
    token: string
    kind: Kind
    hash: string
    queueId: string
    round: number
}

interface Tally {
    sent: number
    /** delivered in the end after at least one deferral (a fault reached it) */
    deferredFirst: number
    once: number
    queued: number
    queuedExpected: number
    bounced: number
    duplicates: number
    corrupted: number
    downgrades: number
    lost: number
}

function sha256(s: string): string {
    return createHash('sha256').update(s).digest('hex')
}

function bodyOf(message: string): string {
    const at = message.indexOf('\r\n\r\n')
    return at < 0 ? '' : message.slice(at + 4)
}

function pick(i: number): Kind {
    const total = MIX.reduce((n, [, w]) => n + w, 0)
    let r = i % total
    for (const [k, w] of MIX) {
        if (r < w) return k
        r -= w
    }
    return 'ee'
}

async function main(): Promise<number> {
    const started = Date.now()
    const certs = {
        ee: makeCertificate({ cn: 'soak-ee' }),
        root: makeCertificate({ cn: 'Soak Root', ca: true }),
        wrong: makeCertificate({ cn: 'soak-wrong' }),
        good: makeCertificate({ cn: 'soak-good' }),
        plain: makeCertificate({ cn: 'soak-plain' }),
    }
    const inter = makeCertificate({ cn: 'Soak Inter', ca: true, issuer: certs.root })
    const taLeaf = makeCertificate({ cn: 'mx.ta.soak.test', sans: ['mx.ta.soak.test'], issuer: inter })
    const listeners: Record<string, Listener> = {
        ee: new Listener({ address: `${NET}.11`, certChainPem: certs.ee.pem, keyPem: certs.ee.keyPem }),
        ta: new Listener({ address: `${NET}.12`, certChainPem: taLeaf.pem + inter.pem, keyPem: taLeaf.keyPem }),
        wrong: new Listener({ address: `${NET}.13`, certChainPem: certs.wrong.pem, keyPem: certs.wrong.keyPem }),
        good: new Listener({ address: `${NET}.14`, certChainPem: certs.good.pem, keyPem: certs.good.keyPem }),
        plain: new Listener({ address: `${NET}.15`, certChainPem: certs.plain.pem, keyPem: certs.plain.keyPem }),
        bogus: new Listener({ address: `${NET}.16`, certChainPem: certs.ee.pem, keyPem: certs.ee.keyPem }),
    }
    const dns = new DnsWorld({ nsdAddress: `${NET}.52`, resolverAddress: `${NET}.53` })
    const proxy = new DnsProxy(PROXY, 53, { address: `${NET}.53`, port: 53 })
    const harakas: Haraka[] = []
    const faults: Record<string, number> = {
        'resolver slowed past the timeout': 0,
        'unbound stopped and started': 0,
        'receivers stopped and started': 0,
        'Haraka restarted': 0,
    }
    const sent: Sent[] = []
    const tallies: Tally[] = []
    try {
        await dns.start([
            {
                name: 'soak.test',
                signing: 'signed',
                records: [
                    'ee MX 10 mx.ee',
                    `mx.ee A ${NET}.11`,
                    `_25._tcp.mx.ee TLSA ${tlsaText(certs.ee, 3, 1, 1)}`,
                    'ta MX 10 mx.ta',
                    `mx.ta A ${NET}.12`,
                    `_25._tcp.mx.ta TLSA ${tlsaText(certs.root, 2, 1, 0)}`,
                    'fallback MX 10 mx1.fallback',
                    'fallback MX 20 mx2.fallback',
                    `mx1.fallback A ${NET}.13`,
                    `mx2.fallback A ${NET}.14`,
                    `_25._tcp.mx1.fallback TLSA ${tlsaText(certs.good, 3, 1, 1)}`,
                    `_25._tcp.mx2.fallback TLSA ${tlsaText(certs.good, 3, 1, 1)}`,
                    'bogus MX 10 mx.bogus',
                    `mx.bogus A ${NET}.16`,
                    `_25._tcp.mx.bogus TLSA ${tlsaText(certs.ee, 3, 1, 1)}`,
                ],
                tamper: [{ owner: '_25._tcp.mx.bogus', type: 'TLSA', rdata: tlsaText(certs.wrong, 3, 1, 1) }],
            },
            { name: 'soakplain.test', signing: 'unsigned', records: ['@ MX 10 mx', `mx A ${NET}.15`] },
        ])
        await proxy.start()
        for (const l of Object.values(listeners)) await l.start()

        for (const [round, nodes] of [0, 2].entries()) {
            const t0 = Date.now()
            const haraka = new Haraka({
                withDane: true,
                config: {
                    'smtp.ini': `listen=127.0.0.25:2525\nnodes=${nodes}\n`,
                    'outbound.ini': 'local_mx_ok=true\nenable_tls=true\ntemp_fail_intervals=2s*500\nconnect_timeout=3\n',
                },
            })
            harakas.push(haraka)
            const log = path.join(haraka.dir, 'dane.jsonl')
            haraka.writeConfigFile('dane.ini', `[resolver]\naddress=${PROXY}\nport=53\ntimeout_ms=500\nretries=1\n[log]\ndestination=${log}\n`)
            await haraka.start()
            await sleep(nodes ? 1000 : 200)

            // faults, one after another, while the messages go in and out
            let faulting = true
            let cycles = 0
            const faultLoop = (async () => {
                const cycle = ['receivers', 'slow', 'unbound'] as const
                // at least two full cycles of every fault, and on until the messages are all in
                for (let i = 0; faulting || i < 2 * cycle.length; i++) {
                    await sleep(1000)
                    cycles = i + 1
                    const f = cycle[i % cycle.length]
                    if (f === 'slow') {
                        proxy.mode = 'slow'
                        faults['resolver slowed past the timeout']++
                        await sleep(2500)
                        proxy.mode = 'pass'
                    } else if (f === 'unbound') {
                        await dns.stopResolver()
                        faults['unbound stopped and started']++
                        await sleep(2500)
                        await dns.startResolver()
                    } else {
                        await Promise.all([listeners.ee.stop(), listeners.good.stop(), listeners.plain.stop()])
                        faults['receivers stopped and started']++
                        await sleep(2500)
                        await Promise.all([listeners.ee.start(), listeners.good.start(), listeners.plain.start()])
                    }
                }
            })()

            // inject, 8 at a time
            const mine: Sent[] = []
            let next = 0
            const injector = async (): Promise<void> => {
                while (next < MESSAGES) {
                    const i = next++
                    const kind = pick(i)
                    const token = randomUUID()
                    const body = `soak-token: ${token}\r\n${`round ${round} message ${i} to ${kind}; `.repeat(8)}\r\n`
                    for (let tries = 0; ; tries++) {
                        try {
                            const queueId = await haraka.send(`m${i}@${DOMAIN[kind]}`, { subject: `soak ${round}/${i}`, body })
                            mine.push({ token, kind, hash: sha256(body), queueId, round })
                            break
                        } catch (e) {
                            if (tries > 20) throw e
                            await sleep(200)
                        }
                    }
                }
            }
            await Promise.all(Array.from({ length: 8 }, injector))
            sent.push(...mine)

            // Haraka restarted with messages queued
            await sleep(2000)
            await haraka.stop()
            faults['Haraka restarted']++
            await haraka.start()
            faulting = false
            await faultLoop
            process.stderr.write(`round ${round + 1}: ${cycles} faults injected\n`)
            proxy.mode = 'pass'
            await dns.startResolver()
            for (const l of [listeners.ee, listeners.good, listeners.plain]) await l.start()

            // everything deliverable delivered, or three minutes passed
            const deliverable = mine.filter((s) => s.kind !== 'bogus')
            const deadline = Date.now() + 180000
            const arrived = (): Set<string> =>
                new Set(Object.values(listeners).flatMap((l) => l.received.map((r) => /soak-token: (\S+)/.exec(r.body)?.[1] ?? '')))
            while (Date.now() < deadline) {
                const got = arrived()
                if (deliverable.every((s) => got.has(s.token))) break
                haraka.flushQueue()
                await sleep(2000)
            }
            await sleep(1500)
            tallies.push(count(mine, listeners, haraka, log))
            await haraka.stop()
            process.stderr.write(`round ${round + 1} (nodes=${nodes}): ${Math.round((Date.now() - t0) / 1000)} s\n`)
        }
    } finally {
        for (const h of harakas) {
            await h.stop().catch(() => undefined)
            h.cleanup()
        }
        for (const l of Object.values(listeners)) await l.stop().catch(() => undefined)
        await proxy.stop().catch(() => undefined)
        await dns.stop().catch(() => undefined)
    }

    const total = tallies.reduce((a, t) => {
        for (const k of Object.keys(a) as (keyof Tally)[]) a[k] += t[k]
        return a
    }, zero())
    const row = (name: string, t: Tally): string =>
        `${name.padEnd(16)}${[t.sent, t.deferredFirst, t.once, t.queued, t.queuedExpected, t.bounced, t.duplicates, t.corrupted, t.downgrades, t.lost].map((v) => String(v).padStart(13)).join('')}`
    console.log(
        `${'round'.padEnd(16)}${['sent', 'deferred 1st', 'once', 'queued', 'of it bogus', 'bounced', 'duplicates', 'corrupted', 'downgrades', 'lost'].map((h) => h.padStart(13)).join('')}`,
    )
    tallies.forEach((t, i) => console.log(row(`${i + 1} (nodes=${i === 0 ? 0 : 2})`, t)))
    console.log(row('all', total))
    console.log(
        `faults injected: ${Object.entries(faults)
            .map(([k, v]) => `${k} ×${v}`)
            .join(', ')}`,
    )
    console.log(`${Math.round((Date.now() - started) / 1000)} s in all`)
    const ok = total.duplicates === 0 && total.corrupted === 0 && total.downgrades === 0 && total.lost === 0 && total.bounced === 0
    console.log(ok ? 'soak: no duplicate, no corruption, no downgrade, no bounce, nothing lost' : 'soak: FAILED')
    return ok ? 0 : 1
}

function zero(): Tally {
    return { sent: 0, deferredFirst: 0, once: 0, queued: 0, queuedExpected: 0, bounced: 0, duplicates: 0, corrupted: 0, downgrades: 0, lost: 0 }
}

function count(mine: Sent[], listeners: Record<string, Listener>, haraka: Haraka, log: string): Tally {
    const t = zero()
    const byToken = new Map<string, { listener: string; secure: boolean; sni?: string; hash: string }[]>()
    for (const [name, l] of Object.entries(listeners)) {
        for (const r of l.received) {
            const token = /soak-token: (\S+)/.exec(r.body)?.[1]
            if (!token) continue
            const list = byToken.get(token) ?? []
            list.push({ listener: name, secure: r.secure, sni: r.servername, hash: sha256(bodyOf(r.body)) })
            byToken.set(token, list)
        }
    }
    const queued = new Set(haraka.queuedIds())
    const deferred = new Set(
        haraka
            .events()
            .filter((e) => e.event === 'deferred')
            .map((e) => e.queue_id.split('.')[0]),
    )
    const bounced = new Set(
        haraka
            .events()
            .filter((e) => e.event === 'bounce')
            .map((e) => e.queue_id.split('.')[0]),
    )
    const finals = readDaneLog(log).filter((l) => l.event === 'final' && l.outcome === 'delivered')
    const unverified = new Set(finals.filter((l) => l.tls !== 'verified' && l.domain !== DOMAIN.insecure).map((l) => (l.queue_id ?? '').split('.')[0]))
    for (const s of mine) {
        t.sent++
        const got = byToken.get(s.token) ?? []
        const isQueued = [...queued].some((q) => q.startsWith(s.queueId))
        if (got.length === 1) t.once++
        if (got.length > 0 && deferred.has(s.queueId.split('.')[0])) t.deferredFirst++
        if (got.length > 1) t.duplicates++
        if (got.some((g) => g.hash !== s.hash)) t.corrupted++
        const allowed = ALLOWED[s.kind]
        const wrong = got.some((g) => {
            const a = allowed.find((x) => x.listener === g.listener)
            return !a || (a.sni !== undefined && (!g.secure || g.sni !== a.sni))
        })
        if (wrong || (s.kind !== 'insecure' && unverified.has(s.queueId.split('.')[0]))) t.downgrades++
        if (got.length === 0 && isQueued) {
            t.queued++
            if (s.kind === 'bogus') t.queuedExpected++
        }
        if (bounced.has(s.queueId.split('.')[0])) t.bounced++
        if (got.length === 0 && !isQueued && !bounced.has(s.queueId.split('.')[0])) t.lost++
    }
    return t
}

main().then(
    (code) => process.exit(code),
    (e) => {
        console.error(e)
        process.exit(2)
    },
)
