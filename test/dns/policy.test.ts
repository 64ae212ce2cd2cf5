// Issue 4: the policy engine through the real resolver client, against a real
// unbound validating real signed, unsigned and bogus zones (C1, C4–C12, C21).
// This world uses its own addresses (127.0.1.52/53) so it never meets another.
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { DnsWorld } from '../world/dns'
import { makeCertificate, tlsaText } from '../world/certs'
import { resolverSettingsOrThrow } from '../../lib/config'
import { Resolver } from '../../lib/resolver'
import { decide, Decision, HostDecision } from '../../lib/policy'

describe('policy engine against the real world (C4–C12)', function () {
    this.timeout(60000)
    const world = new DnsWorld({ nsdAddress: '127.0.1.52', resolverAddress: '127.0.1.53' })
    let resolver: Resolver
    const cert = makeCertificate({ cn: 'mx' })
    const ee = tlsaText(cert, 3, 1, 1)

    const lookup = (n: string, t: Parameters<Resolver['lookup']>[1]) => resolver.lookup(n, t)
    const host = (d: Decision, name: string): HostDecision => {
        const h = d.hosts.find((x) => x.name === name)
        assert.ok(h, `${name} in ${JSON.stringify(d.hosts.map((x) => x.name))}`)
        return h
    }

    before(async () => {
        await world.start([
            {
                name: 'p.test',
                signing: 'signed',
                records: [
                    // C9 plain DANE host
                    'dane MX 10 mx.dane',
                    'mx.dane A 127.0.0.31',
                    'mx.dane AAAA ::1',
                    `_25._tcp.mx.dane TLSA ${ee}`,
                    // C5 implicit MX (no MX RRset) with its own TLSA
                    'implicit A 127.0.0.32',
                    `_25._tcp.implicit TLSA ${ee}`,
                    // C5 null MX
                    'nullmx MX 0 .',
                    // C4 bogus MX
                    'bogusmx MX 10 mx.dane',
                    // C7 bogus address on one host, the other fine; C11 one skipped host does not stop delivery
                    'mixed MX 10 mx.badaddr',
                    'mixed MX 20 mx.dane',
                    'mx.badaddr A 127.0.0.33',
                    // C11 TLSA bogus on every host → defer
                    'tlsabogus MX 10 mx.tlsabogus',
                    'mx.tlsabogus A 127.0.0.34',
                    `_25._tcp.mx.tlsabogus TLSA ${ee}`,
                    // C10 secure NODATA and NXDOMAIN at the TLSA name
                    'nodata MX 10 mx.nodata',
                    'mx.nodata A 127.0.0.35',
                    '_25._tcp.mx.nodata TXT "no TLSA here"',
                    'nxd MX 10 mx.nxd',
                    'mx.nxd A 127.0.0.36',
                    // C12 unusable only
                    'unusable MX 10 mx.unusable',
                    'mx.unusable A 127.0.0.37',
                    `_25._tcp.mx.unusable TLSA ${tlsaText(cert, 0, 1, 1)}`,
                    `_25._tcp.mx.unusable TLSA 3 1 1 abcd`,
                    // C8 CNAME'd host, TLSA at the expanded name
                    'cname1 MX 10 mx.cname1',
                    'mx.cname1 CNAME target1',
                    'target1 A 127.0.0.38',
                    `_25._tcp.target1 TLSA ${ee}`,
                    `_25._tcp.mx.cname1 TLSA ${tlsaText(makeCertificate({ cn: 'other' }), 3, 1, 1)}`,
                    // C8 CNAME'd host, no TLSA at the expanded name → the original name's
                    'cname2 MX 10 mx.cname2',
                    'mx.cname2 CNAME target2',
                    'target2 A 127.0.0.39',
                    `_25._tcp.mx.cname2 TLSA ${ee}`,
                    // C6 the MX host an insecure domain points at
                    'mx.forinsecure A 127.0.0.40',
                    `_25._tcp.mx.forinsecure TLSA ${ee}`,
                    // C2: a TLSA RRset too large for a 1232-byte UDP reply
                    'big MX 10 mx.big',
                    'mx.big A 127.0.0.42',
                    `_25._tcp.mx.big TLSA ${ee}`,
                    ...Array.from({ length: 40 }, (_, i) => `_25._tcp.mx.big TLSA 3 0 2 ${i.toString(16).padStart(2, '0').repeat(64)}`),
                    // C8: a secure CNAME to a host in an unsigned zone (RFC 7671 7): TLSA at the original name only
                    'cu MX 10 smtp.cu',
                    'smtp.cu CNAME smtp.u.test.',
                    `_25._tcp.smtp.cu TLSA ${ee}`,
                    `_25._tcp.smtp.u.test.p.test TLSA ${ee}`,
                    // the same without TLSA at the original name: opportunistic
                    'cuno MX 10 smtp.cuno',
                    'smtp.cuno CNAME smtp.u.test.',
                    // the same whose TLSA at the original name is bogus: skipped, never opportunistic
                    'cubogus MX 10 smtp.cubogus',
                    'smtp.cubogus CNAME smtp.u.test.',
                    `_25._tcp.smtp.cubogus TLSA ${ee}`,
                    // C7: the AAAA denial of existence is broken (its NSEC tampered): A and TLSA stay secure
                    'v4 MX 10 mx.v4',
                    'mx.v4 A 127.0.0.45',
                    `_25._tcp.mx.v4 TLSA ${ee}`,
                    // C8: TLSA owners as real zones publish them: a DNAME'd _tcp label, a CNAME to a
                    // shared RRset, a wildcard; and a CNAME into an unsigned zone or onto a bogus RRset
                    'dname MX 10 mx.dname',
                    'mx.dname A 127.0.0.46',
                    '_tcp.mx.dname DNAME _tcp.shared',
                    `_25._tcp.shared TLSA ${ee}`,
                    'tlsacname MX 10 mx.tlsacname',
                    'mx.tlsacname A 127.0.0.47',
                    '_25._tcp.mx.tlsacname CNAME _25._tcp.shared',
                    'wild MX 10 mx.wild',
                    'mx.wild A 127.0.0.48',
                    `*._tcp.mx.wild TLSA ${ee}`,
                    'tlsainsecure MX 10 mx.tlsainsecure',
                    'mx.tlsainsecure A 127.0.0.49',
                    '_25._tcp.mx.tlsainsecure CNAME _25._tcp.x.u.test.',
                    'tlsacnamebogus MX 10 mx.tlsacnamebogus',
                    'mx.tlsacnamebogus A 127.0.0.50',
                    '_25._tcp.mx.tlsacnamebogus CNAME _25._tcp.mx.tlsabogus',
                    // MX hosts of equal preference
                    'equal MX 10 mx.dane',
                    'equal MX 10 mx.nodata',
                    'equal MX 10 mx.nxd',
                ],
                tamper: [
                    { owner: 'bogusmx', type: 'MX', rdata: '10 mx.nodata.p.test.' },
                    { owner: 'mx.badaddr', type: 'A', rdata: '127.0.0.99' },
                    { owner: '_25._tcp.mx.tlsabogus', type: 'TLSA', rdata: tlsaText(makeCertificate({ cn: 'x' }), 3, 1, 1) },
                    { owner: '_25._tcp.smtp.cubogus', type: 'TLSA', rdata: tlsaText(makeCertificate({ cn: 'x' }), 3, 1, 1) },
                    // the NSEC proving that mx.v4 has no AAAA now names another next owner: its signature fails
                    { owner: 'mx.v4', type: 'NSEC', rdata: 'zzz.p.test. A RRSIG NSEC' },
                ],
            },
            {
                name: 'u.test',
                signing: 'unsigned',
                records: [
                    '@ MX 10 mx.forinsecure.p.test.',
                    'plainhost MX 10 mx',
                    'mx A 127.0.0.41',
                    `_25._tcp.mx TLSA ${ee}`,
                    'smtp A 127.0.0.43',
                    `_25._tcp.x TLSA ${ee}`,
                    // an unsigned alias to a DANE host in a signed zone: insecure, so no TLSA anywhere
                    'aliasd MX 10 alias',
                    'alias CNAME mx.dane.p.test.',
                ],
            },
            { name: 'b.test', signing: 'bogus-ds', records: ['@ MX 10 mx.dane.p.test.'] },
        ])
        resolver = new Resolver(resolverSettingsOrThrow({ address: world.resolverAddress, port: world.port, timeoutMs: 1000, retries: 1, cacheSize: 1000 }))
    })

    after(async () => {
        resolver?.close()
        await world.stop()
    })

    it('C9: secure MX, secure addresses, usable TLSA → dane, STARTTLS mandatory', async () => {
        const d = await decide('dane.p.test', lookup)
        assert.equal(d.action, 'deliver')
        assert.ok(d.mxSecure)
        const h = host(d, 'mx.dane.p.test')
        assert.equal(h.mode, 'dane')
        assert.equal(h.tlsaBase, 'mx.dane.p.test')
        assert.equal(h.tlsa.state, 'secure')
        assert.equal(h.tlsa.usable, 1)
        assert.deepEqual(h.addresses, ['127.0.0.31', '::1'])
        assert.ok(h.addressSecure)
    })

    it('C6, C16: a secure MX RRset makes the next-hop domain a reference identifier beside the MX host', async () => {
        const h = host(await decide('dane.p.test', lookup), 'mx.dane.p.test')
        assert.deepEqual(h.referenceNames, ['mx.dane.p.test', 'dane.p.test'])
    })

    it('C6: an insecure MX RRset still gets DANE for an MX host with secure address and TLSA records', async () => {
        const d = await decide('u.test', lookup)
        assert.equal(d.mxSecure, false)
        const h = host(d, 'mx.forinsecure.p.test')
        assert.equal(h.mode, 'dane')
        assert.ok(!h.referenceNames.includes('u.test'), 'the next-hop domain is never a reference identifier')
    })

    it('C7: insecure addresses → no TLSA lookup, opportunistic TLS', async () => {
        const h = host(await decide('plainhost.u.test', lookup), 'mx.u.test')
        assert.equal(h.addressSecure, false)
        assert.equal(h.tlsa.state, 'not-looked-up')
        assert.equal(h.mode, 'opportunistic')
    })

    it('C7, C11: a host whose address is bogus is skipped; the other MX host is still used', async () => {
        const d = await decide('mixed.p.test', lookup)
        assert.equal(d.action, 'deliver')
        const bad = host(d, 'mx.badaddr.p.test')
        assert.equal(bad.mode, 'skip')
        assert.match(bad.reason, /servfail/)
        assert.equal(host(d, 'mx.dane.p.test').mode, 'dane')
    })

    it("C4: a bogus MX RRset defers (no fall back to the domain's addresses)", async () => {
        const d = await decide('bogusmx.p.test', lookup)
        assert.equal(d.action, 'defer')
        assert.equal(d.hosts.length, 0)
        assert.match(d.reason, /servfail/)
    })

    it('C4: a domain in a zone whose chain of trust is broken defers', async () => {
        const d = await decide('b.test', lookup)
        assert.equal(d.action, 'defer')
    })

    it('C5: NODATA for MX → implicit MX: the domain itself is the host', async () => {
        const d = await decide('implicit.p.test', lookup)
        assert.equal(d.action, 'deliver')
        assert.ok(d.implicitMx)
        assert.equal(d.hosts.length, 1)
        assert.equal(d.hosts[0].name, 'implicit.p.test')
        assert.equal(d.hosts[0].mode, 'dane')
    })

    it('C5: NXDOMAIN bounces', async () => {
        const d = await decide('nowhere.p.test', lookup)
        assert.equal(d.action, 'bounce')
        assert.match(d.reason, /NXDOMAIN/)
    })

    it('C5: a null MX bounces', async () => {
        const d = await decide('nullmx.p.test', lookup)
        assert.equal(d.action, 'bounce')
        assert.match(d.reason, /null MX/)
    })

    it('C10: secure NODATA at the TLSA name → no DANE, opportunistic TLS', async () => {
        const h = host(await decide('nodata.p.test', lookup), 'mx.nodata.p.test')
        assert.equal(h.tlsa.state, 'none')
        assert.equal(h.mode, 'opportunistic')
    })

    it('C10: secure NXDOMAIN at the TLSA name → no DANE, opportunistic TLS', async () => {
        const h = host(await decide('nxd.p.test', lookup), 'mx.nxd.p.test')
        assert.equal(h.tlsa.state, 'none')
        assert.equal(h.mode, 'opportunistic')
    })

    it('C11: TLSA SERVFAIL (bogus) on every host → every host skipped → defer', async () => {
        const d = await decide('tlsabogus.p.test', lookup)
        assert.equal(d.action, 'defer')
        const h = host(d, 'mx.tlsabogus.p.test')
        assert.equal(h.mode, 'skip')
        assert.equal(h.tlsa.state, 'failed')
        assert.equal(h.resultType, 'dnssec-invalid')
        assert.match(d.reason, /every MX host was skipped/)
    })

    it('C12: secure TLSA with only unusable records → encrypt (TLS mandatory, unauthenticated)', async () => {
        const h = host(await decide('unusable.p.test', lookup), 'mx.unusable.p.test')
        assert.equal(h.mode, 'encrypt')
        assert.equal(h.tlsa.records.length, 2)
        assert.equal(h.tlsa.usable, 0)
        assert.match(h.reason, /no usable record/)
    })

    it("C8: a CNAME'd host uses the TLSA RRset of the expanded name first; both names are reference identifiers", async () => {
        const h = host(await decide('cname1.p.test', lookup), 'mx.cname1.p.test')
        assert.equal(h.cname, 'target1.p.test')
        assert.equal(h.tlsaBase, 'target1.p.test')
        assert.deepEqual(h.referenceNames, ['target1.p.test', 'mx.cname1.p.test', 'cname1.p.test'])
        assert.equal(h.tlsa.records[0].text, ee.toLowerCase())
    })

    it("C8: with no TLSA at the expanded name, the original name's TLSA RRset is used", async () => {
        const h = host(await decide('cname2.p.test', lookup), 'mx.cname2.p.test')
        assert.equal(h.tlsaBase, 'mx.cname2.p.test')
        assert.equal(h.mode, 'dane')
        assert.deepEqual(h.referenceNames, ['mx.cname2.p.test', 'cname2.p.test'])
    })

    it('C8: a secure CNAME to a host in an unsigned zone: TLSA at the original name decides (base, SNI and reference name)', async () => {
        const d = await decide('cu.p.test', lookup)
        const h = host(d, 'smtp.cu.p.test')
        assert.equal(h.addressSecure, false, 'the addresses come from the unsigned zone')
        assert.equal(h.cname, 'smtp.u.test')
        assert.equal(h.mode, 'dane')
        assert.equal(h.tlsaBase, 'smtp.cu.p.test', 'the original name, never the insecure target')
        assert.deepEqual(h.referenceNames, ['smtp.cu.p.test', 'cu.p.test'])
        assert.deepEqual(h.addresses, ['127.0.0.43'])
        assert.match(h.reason, /CNAME at smtp\.cu\.p\.test is secure/)
    })

    it('C8: a secure CNAME to an unsigned zone without TLSA at the original name → opportunistic', async () => {
        const h = host(await decide('cuno.p.test', lookup), 'smtp.cuno.p.test')
        assert.equal(h.mode, 'opportunistic')
        assert.equal(h.tlsa.state, 'none')
    })

    it('C8, C11: a secure CNAME to an unsigned zone whose TLSA at the original name is bogus → skipped, deferred', async () => {
        const d = await decide('cubogus.p.test', lookup)
        assert.equal(d.action, 'defer')
        const h = host(d, 'smtp.cubogus.p.test')
        assert.equal(h.mode, 'skip')
        assert.equal(h.resultType, 'dnssec-invalid')
    })

    it('C7, C8: an insecure CNAME (even to a DANE host in a signed zone) → opportunistic, no TLSA lookup', async () => {
        const h = host(await decide('aliasd.u.test', lookup), 'alias.u.test')
        assert.equal(h.addressSecure, false)
        assert.equal(h.tlsa.state, 'not-looked-up')
        assert.equal(h.mode, 'opportunistic')
    })

    it('C7: a broken AAAA denial (SERVFAIL) leaves the secure IPv4 answer in use, with DANE, and says so', async () => {
        const d = await decide('v4.p.test', lookup)
        assert.equal(d.action, 'deliver')
        const h = host(d, 'mx.v4.p.test')
        assert.equal(h.mode, 'dane')
        assert.ok(h.addressSecure)
        assert.deepEqual(h.addresses, ['127.0.0.45'])
        assert.deepEqual(h.failedFamilies, ['AAAA'])
        assert.match(h.reason, /AAAA lookup for mx\.v4\.p\.test failed \(servfail\)/)
    })

    it("C8: a TLSA owner under a DNAME (a DNAME'd _tcp label) is secure when every step is", async () => {
        const h = host(await decide('dname.p.test', lookup), 'mx.dname.p.test')
        assert.equal(h.mode, 'dane')
        assert.equal(h.tlsaBase, 'mx.dname.p.test', 'the base domain is the MX host, not the DNAME target')
        assert.equal(h.tlsa.owner, '_25._tcp.shared.p.test')
    })

    it('C8: a TLSA owner that is a CNAME to a shared RRset is secure when every step is', async () => {
        const h = host(await decide('tlsacname.p.test', lookup), 'mx.tlsacname.p.test')
        assert.equal(h.mode, 'dane')
        assert.equal(h.tlsaBase, 'mx.tlsacname.p.test')
        assert.equal(h.tlsa.owner, '_25._tcp.shared.p.test')
    })

    it('C9: a wildcard TLSA RRset (*._tcp) applies with its proof of expansion', async () => {
        const h = host(await decide('wild.p.test', lookup), 'mx.wild.p.test')
        assert.equal(h.mode, 'dane')
        assert.equal(h.tlsa.usable, 1)
    })

    it('C8, C10: a TLSA owner that is a CNAME into an unsigned zone is insecure → opportunistic', async () => {
        const h = host(await decide('tlsainsecure.p.test', lookup), 'mx.tlsainsecure.p.test')
        assert.equal(h.tlsa.state, 'insecure')
        assert.equal(h.mode, 'opportunistic')
    })

    it('C8, C11: a TLSA owner that is a CNAME onto a bogus RRset → skipped', async () => {
        const h = host(await decide('tlsacnamebogus.p.test', lookup), 'mx.tlsacnamebogus.p.test')
        assert.equal(h.mode, 'skip')
        assert.equal(h.tlsa.state, 'failed')
    })

    it('C21: dane-only skips hosts DANE would not authenticate, and defers when none is left', async () => {
        const d = await decide('nodata.p.test', lookup, { policy: 'dane-only' })
        assert.equal(d.action, 'defer')
        assert.equal(d.resultType, 'dane-required')
        const ok = await decide('dane.p.test', lookup, { policy: 'dane-only' })
        assert.equal(ok.action, 'deliver')
    })

    it('C21: may, encrypt and none look up no TLSA and set the mode for every host', async () => {
        for (const [policy, mode] of [
            ['may', 'opportunistic'],
            ['encrypt', 'encrypt'],
            ['none', 'plaintext'],
        ] as const) {
            const h = host(await decide('tlsabogus.p.test', lookup, { policy }), 'mx.tlsabogus.p.test')
            assert.equal(h.mode, mode, policy)
            assert.equal(h.tlsa.state, 'not-looked-up', policy)
        }
    })

    it('MX hosts of equal preference come back in random order, lower preference first', async () => {
        const orders = new Set<string>()
        for (let i = 0; i < 30; i++) {
            const d = await decide('equal.p.test', lookup)
            orders.add(d.hosts.map((h) => h.name).join(','))
        }
        assert.ok(orders.size > 1, 'more than one order seen')
        const mixed = await decide('mixed.p.test', lookup)
        assert.deepEqual(
            mixed.hosts.map((h) => h.preference),
            [10, 20],
        )
    })

    it('C3: a decision made twice asks the resolver once (cache), and a failure is asked again', async () => {
        const r = new Resolver(resolverSettingsOrThrow({ address: world.resolverAddress, port: world.port, timeoutMs: 1000, retries: 0, cacheSize: 100 }))
        try {
            await decide('dane.p.test', (n, t) => r.lookup(n, t))
            const wire = r.stats().udp
            await decide('dane.p.test', (n, t) => r.lookup(n, t))
            assert.equal(r.stats().udp, wire, 'second decision from cache')
            await decide('tlsabogus.p.test', (n, t) => r.lookup(n, t))
            const afterFail = r.stats().udp
            await decide('tlsabogus.p.test', (n, t) => r.lookup(n, t))
            assert.ok(r.stats().udp > afterFail, 'the failed TLSA lookup is asked again')
        } finally {
            r.close()
        }
    })

    it('C2: a reply truncated over UDP is asked again over TCP, and validated all the same', async () => {
        const r = new Resolver(resolverSettingsOrThrow({ address: world.resolverAddress, port: world.port, timeoutMs: 1000, retries: 0, cacheSize: 100 }))
        try {
            const d = await decide('big.p.test', (n, t) => r.lookup(n, t))
            const h = host(d, 'mx.big.p.test')
            assert.equal(h.mode, 'dane')
            assert.equal(h.tlsa.records.length, 41)
            assert.equal(h.tlsa.state, 'secure')
            assert.ok(r.stats().tcp >= 1, `tcp queries: ${r.stats().tcp}`)
        } finally {
            r.close()
        }
    })

    it('C1, C4: a resolver that is down → defer, never an opportunistic decision', async () => {
        const down = new Resolver(resolverSettingsOrThrow({ address: '127.0.1.99', port: 53, timeoutMs: 300, retries: 1, cacheSize: 10 }))
        try {
            const d = await decide('dane.p.test', (n, t) => down.lookup(n, t))
            assert.equal(d.action, 'defer')
            assert.equal(d.hosts.length, 0)
        } finally {
            down.close()
        }
    })

    it('C2, C4: a resolver slower than the timeout → defer after bounded retries', async () => {
        const silent = dgram.createSocket('udp4')
        let seen = 0
        silent.on('message', () => seen++)
        await new Promise<void>((r) => silent.bind(53, '127.0.1.98', () => r()))
        const slow = new Resolver(resolverSettingsOrThrow({ address: '127.0.1.98', port: 53, timeoutMs: 200, retries: 2, cacheSize: 10 }))
        try {
            const d = await decide('dane.p.test', (n, t) => slow.lookup(n, t))
            assert.equal(d.action, 'defer')
            assert.match(d.reason, /timeout/)
            assert.equal(seen, 3, 'one try and two retries')
        } finally {
            slow.close()
            silent.close()
        }
    })
})
