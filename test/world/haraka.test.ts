// Issue 2: the Haraka half of the world, without the plugin: a real Haraka
// relays a message through the world's unbound to a world MX, and the world's
// helpers see it arrive, and see what stays queued.
import assert from 'node:assert/strict'
import { DnsWorld } from './dns'
import { Haraka } from './haraka'
import { Listener } from './smtp'
import { makeCertificate } from './certs'

describe('test world: Haraka without the plugin', function () {
    this.timeout(60000)
    const dns = new DnsWorld({ nsdAddress: '127.0.3.52', resolverAddress: '127.0.3.53' })
    const cert = makeCertificate({ cn: 'mx.plain.test' })
    const mx = new Listener({ address: '127.0.0.30', certChainPem: cert.pem, keyPem: cert.keyPem })
    let haraka: Haraka

    before(async () => {
        await dns.start([{ name: 'plain.test', signing: 'signed', records: ['@ MX 10 mx', 'mx A 127.0.0.30', 'down MX 10 mxdown', 'mxdown A 127.0.0.31'] }])
        await mx.start()
        haraka = new Haraka({ withDane: false, port: 2527, systemResolver: dns.resolverAddress })
        await haraka.start()
    })

    after(async () => {
        await haraka?.stop()
        haraka?.cleanup()
        await mx.stop()
        await dns.stop()
    })

    it("world: Haraka delivers to a world MX found through the world's resolver", async () => {
        const qid = await haraka.send('someone@plain.test', { subject: 'world check' })
        const ev = await haraka.waitFor(qid, ['delivered', 'deferred', 'bounce'])
        assert.equal(ev.event, 'delivered')
        assert.equal(ev.ip, '127.0.0.30')
        assert.equal(mx.received.length, 1)
        assert.deepEqual(mx.received[0].to, ['someone@plain.test'])
        assert.match(mx.received[0].body, /Subject: world check/)
        assert.ok(mx.received[0].secure, 'Haraka used the offered STARTTLS')
        assert.ok(!haraka.queuedIds().some((id) => id.startsWith(qid)))
    })

    it('world: a message to an MX that does not answer is deferred and stays in the queue', async () => {
        const qid = await haraka.send('someone@down.plain.test')
        const ev = await haraka.waitFor(qid, ['delivered', 'deferred', 'bounce'])
        assert.equal(ev.event, 'deferred')
        assert.ok(haraka.queuedIds().some((id) => id.startsWith(qid)))
    })
})
