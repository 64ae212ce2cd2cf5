// Issue 2: the DNS world itself, checked with an independent client (ldns `drill`).
import assert from 'node:assert/strict'
import { DnsWorld } from './dns'
import { run } from './procs'

function drill(world: DnsWorld, name: string, type: string): { flags: string[]; rcode: string; answer: string[] } {
    const out = run('drill', ['-D', '-p', String(world.port), `@${world.resolverAddress}`, name, type])
    const header = /;; flags: ([a-z ]+);/.exec(out)
    const rcode = /rcode: (\w+)/.exec(out)
    const answerSection = out.split(';; ANSWER SECTION:')[1]?.split(';;')[0] ?? ''
    const answer = answerSection
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith(';') && l.split(/\s+/)[3] === type)
    return { flags: (header?.[1] ?? '').trim().split(/\s+/), rcode: rcode?.[1] ?? '?', answer }
}

describe('test world: nsd + unbound with signed, unsigned and bogus zones', function () {
    this.timeout(60000)
    const world = new DnsWorld()

    before(async () => {
        await world.start([
            {
                name: 'signed.test',
                signing: 'signed',
                records: ['mx A 127.0.0.101', '_25._tcp.mx TLSA 3 1 1 ' + 'ab'.repeat(32), 'www CNAME mx'],
                tamper: [],
            },
            { name: 'insecure.test', signing: 'unsigned', records: ['mx A 127.0.0.102'] },
            { name: 'broken.test', signing: 'bogus-ds', records: ['mx A 127.0.0.103'] },
            {
                name: 'partly.test',
                signing: 'signed',
                records: ['mx A 127.0.0.104', '_25._tcp.mx TLSA 3 1 1 ' + 'cd'.repeat(32)],
                tamper: [{ owner: '_25._tcp.mx', type: 'TLSA', rdata: '3 1 1 ' + 'ef'.repeat(32) }],
            },
        ])
    })
    after(async () => {
        await world.stop()
    })

    it('world: a signed zone answers with AD set', () => {
        const r = drill(world, 'mx.signed.test', 'A')
        assert.equal(r.rcode, 'NOERROR')
        assert.ok(r.flags.includes('ad'), `flags ${r.flags}`)
        assert.match(r.answer.join('\n'), /127\.0\.0\.101/)
    })

    it('world: TLSA records of a signed zone are secure', () => {
        const r = drill(world, '_25._tcp.mx.signed.test', 'TLSA')
        assert.ok(r.flags.includes('ad'))
        assert.equal(r.answer.length, 1)
    })

    it('world: an unsigned delegation answers without AD (insecure)', () => {
        const r = drill(world, 'mx.insecure.test', 'A')
        assert.equal(r.rcode, 'NOERROR')
        assert.ok(!r.flags.includes('ad'), `flags ${r.flags}`)
        assert.match(r.answer.join('\n'), /127\.0\.0\.102/)
    })

    it('world: a zone whose DS names another key is bogus (SERVFAIL)', () => {
        assert.equal(drill(world, 'mx.broken.test', 'A').rcode, 'SERVFAIL')
    })

    it('world: one tampered RRset is bogus while its neighbours stay secure', () => {
        assert.equal(drill(world, '_25._tcp.mx.partly.test', 'TLSA').rcode, 'SERVFAIL')
        const a = drill(world, 'mx.partly.test', 'A')
        assert.equal(a.rcode, 'NOERROR')
        assert.ok(a.flags.includes('ad'))
    })

    it('world: a secure NXDOMAIN and a secure NODATA carry AD', () => {
        const nx = drill(world, '_25._tcp.nothere.signed.test', 'TLSA')
        assert.equal(nx.rcode, 'NXDOMAIN')
        assert.ok(nx.flags.includes('ad'))
        const nodata = drill(world, 'mx.signed.test', 'TLSA')
        assert.equal(nodata.rcode, 'NOERROR')
        assert.equal(nodata.answer.length, 0)
        assert.ok(nodata.flags.includes('ad'))
    })

    it('world: a zone update is served after re-signing and flushing', async () => {
        await world.updateZone({ name: 'insecure.test', signing: 'unsigned', records: ['mx A 127.0.0.105'] })
        assert.match(drill(world, 'mx.insecure.test', 'A').answer.join('\n'), /127\.0\.0\.105/)
        await world.updateZone({ name: 'insecure.test', signing: 'signed', records: ['mx A 127.0.0.106'] })
        const r = drill(world, 'mx.insecure.test', 'A')
        assert.ok(r.flags.includes('ad'), 'newly signed zone with DS in parent is secure')
        assert.match(r.answer.join('\n'), /127\.0\.0\.106/)
    })
})
