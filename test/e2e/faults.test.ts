// Issue 11 with a real Haraka: a delivery log that cannot be written (C29), a hostile MX RRset
// (C30), and Haraka's cluster mode with DANE enforced in every worker. Its own world: DNS on
// 127.0.3.52/53, receivers on 127.0.3.11 upward.
import assert from 'node:assert/strict'
import path from 'node:path'
import { DnsWorld } from '../world/dns'
import { makeCertificate, tlsaText } from '../world/certs'
import { Listener } from '../world/smtp'
import { Haraka } from '../world/haraka'
import { readDaneLog } from '../world/dane-log'
import { sleep } from '../world/procs'

const GOOD = '127.0.3.11'
const WRONG = '127.0.3.12'

describe('faults and bounds with a real Haraka (C29, C30)', function () {
    this.timeout(180000)
    const dns = new DnsWorld({ nsdAddress: '127.0.3.52', resolverAddress: '127.0.3.53' })
    const good = makeCertificate({ cn: 'good' })
    const wrong = makeCertificate({ cn: 'wrong' })
    const goodRx = new Listener({ address: GOOD, certChainPem: good.pem, keyPem: good.keyPem })
    const wrongRx = new Listener({ address: WRONG, certChainPem: wrong.pem, keyPem: wrong.keyPem })
    const harakas: Haraka[] = []
    const ini = (log: string, extra = '') =>
        `[resolver]\naddress=${dns.resolverAddress}\nport=${dns.port}\ntimeout_ms=1000\nretries=1\n[log]\ndestination=${log}\n${extra}`

    async function deliverAll(h: Haraka, to: string[]): Promise<string[]> {
        const ids: string[] = []
        for (const t of to) ids.push(await h.send(t))
        await Promise.all(ids.map((id) => h.waitFor(id, ['delivered', 'deferred', 'bounce'], 60000)))
        return ids.map((id) => h.events().find((e) => e.queue_id.startsWith(id))!.event)
    }

    before(async () => {
        await dns.start([
            {
                name: 'faults.test',
                signing: 'signed',
                records: [
                    'ee MX 10 mx.ee',
                    `mx.ee A ${GOOD}`,
                    `_25._tcp.mx.ee TLSA ${tlsaText(good, 3, 1, 1)}`,
                    // first MX presents the wrong key, second is right: two handshakes per message
                    'fallback MX 10 mx1.fallback',
                    'fallback MX 20 mx2.fallback',
                    `mx1.fallback A ${WRONG}`,
                    `mx2.fallback A ${GOOD}`,
                    `_25._tcp.mx1.fallback TLSA ${tlsaText(good, 3, 1, 1)}`,
                    `_25._tcp.mx2.fallback TLSA ${tlsaText(good, 3, 1, 1)}`,
                    // C30: forty MX hosts; only the first ten are looked up
                    ...Array.from({ length: 40 }, (_, i) => [
                        `many MX ${i} mx${i}.many`,
                        `mx${i}.many A ${i === 0 ? GOOD : `127.0.3.${100 + i}`}`,
                        `_25._tcp.mx${i}.many TLSA ${tlsaText(good, 3, 1, 1)}`,
                    ]).flat(),
                ],
            },
        ])
        await goodRx.start()
        await wrongRx.start()
    })

    after(async () => {
        for (const h of harakas) {
            await h.stop()
            h.cleanup()
        }
        await goodRx.stop()
        await wrongRx.stop()
        await dns.stop()
    })

    it('C29: with the delivery log on a full device Haraka stays up, delivers by policy (verified), and the operator is told once', async () => {
        const h = new Haraka({ withDane: true })
        harakas.push(h)
        h.writeConfigFile('dane.ini', ini('/dev/full'))
        await h.start()
        const before = goodRx.received.length
        assert.deepEqual(await deliverAll(h, ['a@ee.faults.test', 'b@fallback.faults.test', 'c@ee.faults.test']), ['delivered', 'delivered', 'delivered'])
        assert.equal(goodRx.received.length - before, 3)
        assert.ok(
            goodRx.received.slice(before).every((r) => r.secure && r.servername?.startsWith('mx')),
            'over TLS, to the DANE host',
        )
        assert.equal(wrongRx.received.length, 0, 'never to the host with the wrong key')
        const told = h.log().match(/the delivery log \/dev\/full cannot be written \(ENOSPC\)/g) ?? []
        assert.equal(told.length, 1, h.logTail())
        assert.ok(h.running, 'Haraka is still running')
        await h.stop()
    })

    it('C30: an MX RRset of forty hosts: ten are looked up (lowest preference first), the decision says so, and the mail goes to the first', async () => {
        const h = new Haraka({ withDane: true })
        harakas.push(h)
        const log = path.join(h.dir, 'dane.jsonl')
        h.writeConfigFile('dane.ini', ini(log))
        await h.start()
        assert.deepEqual(await deliverAll(h, ['x@many.faults.test']), ['delivered'])
        const decision = readDaneLog(log).find((l) => l.event === 'decision' && l.domain === 'many.faults.test')!
        assert.equal(decision.hosts?.length, 10)
        assert.match(decision.reason ?? '', /30 more MX host\(s\) beyond the limit of 10 not considered/)
        const final = readDaneLog(log).find((l) => l.event === 'final' && l.domain === 'many.faults.test')!
        assert.equal(final.tls, 'verified')
        await h.stop()
    })

    it('C9, C20: cluster mode (nodes=2): DANE is enforced in both workers (every delivery verified, the wrong key never used)', async () => {
        const h = new Haraka({ withDane: true, config: { 'smtp.ini': 'listen=127.0.0.25:2525\nnodes=2\n' } })
        harakas.push(h)
        const log = path.join(h.dir, 'dane.jsonl')
        h.writeConfigFile('dane.ini', ini(log))
        await h.start()
        await sleep(1000) // both workers listening
        const to = Array.from({ length: 16 }, (_, i) => (i % 4 < 2 ? `c${i}@ee.faults.test` : `c${i}@fallback.faults.test`))
        const before = goodRx.received.length
        assert.deepEqual(
            await deliverAll(h, to),
            to.map(() => 'delivered'),
        )
        assert.equal(goodRx.received.length - before, 16)
        assert.equal(wrongRx.received.length, 0)
        const finals = readDaneLog(log).filter((l) => l.event === 'final')
        assert.equal(finals.length, 16)
        assert.ok(
            finals.every((l) => l.tls === 'verified'),
            JSON.stringify(finals.map((l) => l.tls)),
        )
        const pids = new Set(finals.map((l) => l.pid))
        assert.equal(pids.size, 2, `verified deliveries made by workers ${[...pids].join(', ')}`)
        const failed = readDaneLog(log).filter((l) => l.event === 'attempt' && l.outcome === 'failed')
        assert.equal(failed.length, 8, 'each fallback message refused the wrong key once')
        await h.stop()
    })
})
