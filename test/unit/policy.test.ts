// Issue 4: the pure parts of the policy engine, with a scripted lookup (no network).
import assert from 'node:assert/strict'
import { decide, orderMxHosts, tlsaBaseDomains, referenceIdentifiers, mxTrust, serverName, Lookup } from '../../lib/policy'
import type { Answer, RRType } from '../../lib/resolver'

function answer(name: string, type: RRType, a: Partial<Answer>): Answer {
    return { name, type, status: 'ok', secure: true, canonicalName: name, cnames: [], ttl: 60, rcode: 0, ...a }
}

/** A lookup from a table "name TYPE" → partial answer; anything else is a secure NXDOMAIN. */
function scripted(table: Record<string, Partial<Answer>>, asked: string[] = []): Lookup {
    return async (name, type) => {
        asked.push(`${name} ${type}`)
        const a = table[`${name} ${type}`]
        return a ? answer(name, type, a) : answer(name, type, { status: 'nxdomain', secure: true })
    }
}

describe('policy engine, pure parts', () => {
    it('RFC 5321 5.1: MX hosts by preference, duplicates kept once at their best preference', () => {
        const hosts = orderMxHosts(
            [
                { preference: 20, exchange: 'b.example' },
                { preference: 10, exchange: 'A.example.' },
                { preference: 5, exchange: 'b.example' },
            ],
            () => 0.5,
        )
        assert.deepEqual(hosts, [
            { name: 'b.example', preference: 5 },
            { name: 'a.example', preference: 10 },
        ])
    })

    it('RFC 5321 5.1: equal preferences follow the random source', () => {
        const mx = [
            { preference: 10, exchange: 'a' },
            { preference: 10, exchange: 'b' },
        ]
        const seq = (vals: number[]) => () => vals.shift()!
        assert.deepEqual(
            orderMxHosts(mx, seq([0.9, 0.1])).map((h) => h.name),
            ['b', 'a'],
        )
        assert.deepEqual(
            orderMxHosts(mx, seq([0.1, 0.9])).map((h) => h.name),
            ['a', 'b'],
        )
    })

    it('C8: TLSA base domains: with secure addresses the expanded name first, then the MX name', async () => {
        const asked: string[] = []
        const none = scripted({}, asked)
        assert.deepEqual(await tlsaBaseDomains('mx.example', { secure: true, cname: 'real.example' }, none), {
            kind: 'candidates',
            names: ['real.example', 'mx.example'],
        })
        assert.deepEqual(await tlsaBaseDomains('mx.example', { secure: true }, none), { kind: 'candidates', names: ['mx.example'] })
        assert.equal((await tlsaBaseDomains('mx.example', { secure: false }, none)).kind, 'none')
        assert.deepEqual(asked, [], 'no CNAME query when the addresses are secure or no CNAME was followed')
    })

    it('C8: insecure addresses through a CNAME: an explicit CNAME query decides; secure → the MX name alone', async () => {
        const asked: string[] = []
        const secureAlias = scripted({ 'mx.example CNAME': { cnames: ['mx.example', 'real.example.org'], canonicalName: 'real.example.org' } }, asked)
        const b = await tlsaBaseDomains('mx.example', { secure: false, cname: 'real.example.org' }, secureAlias)
        assert.equal(b.kind, 'candidates')
        assert.deepEqual(b.kind === 'candidates' && b.names, ['mx.example'])
        assert.deepEqual(asked, ['mx.example CNAME'])
        const insecureAlias = scripted({ 'mx.example CNAME': { secure: false, cnames: ['mx.example', 'real.example.org'], canonicalName: 'real.example.org' } })
        assert.equal((await tlsaBaseDomains('mx.example', { secure: false, cname: 'real.example.org' }, insecureAlias)).kind, 'none')
        const failedAlias = scripted({ 'mx.example CNAME': { status: 'failed', secure: false, reason: 'servfail' } })
        const f = await tlsaBaseDomains('mx.example', { secure: false, cname: 'real.example.org' }, failedAlias)
        assert.equal(f.kind, 'failed', 'a CNAME lookup that fails never becomes opportunistic TLS')
    })

    it('C16: reference identifiers: the TLSA base domain, the MX name when CNAME expansion changed it, the next hop only with a secure MX RRset', () => {
        assert.deepEqual(referenceIdentifiers('mx.example', 'mx.example'), ['mx.example'])
        assert.deepEqual(referenceIdentifiers('mx.example', 'real.example'), ['real.example', 'mx.example'])
        assert.deepEqual(referenceIdentifiers('mx.example', 'mx.example', { domain: 'example', trust: 'dane' }), ['mx.example', 'example'])
        assert.deepEqual(referenceIdentifiers('mx.example', 'mx.example', { domain: 'example', trust: 'half-dane' }), ['mx.example'])
        // implicit MX: the domain is the host; named once
        assert.deepEqual(referenceIdentifiers('example', 'example', { domain: 'example', trust: 'dane' }), ['example'])
    })

    it('C6: a secure MX RRset is level dane, an insecure one half-dane (Postfix TLS_LEV_HALF_DANE)', () => {
        assert.equal(mxTrust(true), 'dane')
        assert.equal(mxTrust(false), 'half-dane')
    })

    it('C19: SNI is the TLSA base domain on a DANE host, and no rule of the plugin elsewhere', () => {
        assert.equal(serverName({ mode: 'dane', tlsaBase: 'real.example' }), 'real.example')
        for (const mode of ['encrypt', 'opportunistic', 'plaintext', 'skip'] as const) assert.equal(serverName({ mode, tlsaBase: 'real.example' }), undefined)
    })

    it('C4: a lookup that throws is a failure, and the decision defers', async () => {
        const d = await decide('x.example', async () => {
            throw new Error('socket exploded')
        })
        assert.equal(d.action, 'defer')
        assert.match(d.reason, /socket exploded/)
    })

    it('C7: an address family whose lookup fails contributes nothing; the other family is used and the reason names the failure', async () => {
        const d = await decide(
            'x.example',
            scripted({
                'x.example MX': { mx: [{ preference: 10, exchange: 'mx.x.example' }] },
                'mx.x.example A': { addresses: ['192.0.2.1'] },
                'mx.x.example AAAA': { status: 'failed', secure: false, reason: 'servfail' },
                '_25._tcp.mx.x.example TLSA': { tlsa: [Buffer.from([3, 1, 1, ...Buffer.alloc(32)])] },
            }),
        )
        assert.equal(d.action, 'deliver')
        const h = d.hosts[0]
        assert.equal(h.mode, 'dane')
        assert.deepEqual(h.addresses, ['192.0.2.1'])
        assert.ok(h.addressSecure)
        assert.deepEqual(h.failedFamilies, ['AAAA'])
        assert.match(h.reason, /AAAA lookup for mx\.x\.example failed \(servfail\): AAAA not used/)
    })

    it('C7: every family failed → the host is skipped (dnssec-invalid)', async () => {
        const d = await decide(
            'x.example',
            scripted({
                'x.example MX': { mx: [{ preference: 10, exchange: 'mx.x.example' }] },
                'mx.x.example A': { status: 'failed', secure: false, reason: 'timeout' },
                'mx.x.example AAAA': { status: 'failed', secure: false, reason: 'servfail' },
            }),
        )
        assert.equal(d.action, 'defer')
        assert.equal(d.hosts[0].mode, 'skip')
        assert.equal(d.hosts[0].resultType, 'dnssec-invalid')
        assert.deepEqual(d.hosts[0].failedFamilies, ['A', 'AAAA'])
    })

    it('C7: one family failed and the other has no address (NODATA) → skipped, never a guess', async () => {
        const d = await decide(
            'x.example',
            scripted({
                'x.example MX': { mx: [{ preference: 10, exchange: 'mx.x.example' }] },
                'mx.x.example A': { status: 'nodata' },
                'mx.x.example AAAA': { status: 'failed', secure: false, reason: 'servfail' },
            }),
        )
        assert.equal(d.action, 'defer')
        assert.equal(d.hosts[0].mode, 'skip')
        assert.match(d.hosts[0].reason, /servfail.*A: no addresses/)
    })

    it('C7: the security of the host is judged from the families that succeeded (an insecure one makes it insecure)', async () => {
        const d = await decide(
            'x.example',
            scripted({
                'x.example MX': { mx: [{ preference: 10, exchange: 'mx.x.example' }] },
                'mx.x.example A': { addresses: ['192.0.2.1'], secure: false },
                'mx.x.example AAAA': { status: 'failed', secure: false, reason: 'servfail' },
            }),
        )
        assert.equal(d.hosts[0].mode, 'opportunistic')
        assert.equal(d.hosts[0].addressSecure, false)
    })

    it('C10: an insecure TLSA answer gives opportunistic TLS; C8 then also tries the original name', async () => {
        const asked: string[] = []
        const d = await decide(
            'x.example',
            scripted(
                {
                    'x.example MX': { mx: [{ preference: 10, exchange: 'mx.x.example' }] },
                    'mx.x.example A': { addresses: ['192.0.2.1'], cnames: ['mx.x.example', 'real.x.example'], canonicalName: 'real.x.example' },
                    'mx.x.example AAAA': { status: 'nodata', cnames: ['mx.x.example', 'real.x.example'], canonicalName: 'real.x.example' },
                    '_25._tcp.real.x.example TLSA': { status: 'ok', secure: false, tlsa: [Buffer.from([3, 1, 1, ...Buffer.alloc(32)])] },
                    '_25._tcp.mx.x.example TLSA': { status: 'nodata' },
                },
                asked,
            ),
        )
        assert.equal(d.hosts[0].mode, 'opportunistic')
        assert.deepEqual(
            asked.filter((a) => a.endsWith('TLSA')),
            ['_25._tcp.real.x.example TLSA', '_25._tcp.mx.x.example TLSA'],
        )
    })

    it('C11: a TLSA failure at the expanded name skips the host; the original name is not asked', async () => {
        const asked: string[] = []
        const d = await decide(
            'x.example',
            scripted(
                {
                    'x.example MX': { mx: [{ preference: 10, exchange: 'mx.x.example' }] },
                    'mx.x.example A': { addresses: ['192.0.2.1'], cnames: ['mx.x.example', 'real.x.example'], canonicalName: 'real.x.example' },
                    'mx.x.example AAAA': { status: 'nodata' },
                    '_25._tcp.real.x.example TLSA': { status: 'failed', secure: false, reason: 'timeout' },
                },
                asked,
            ),
        )
        assert.equal(d.action, 'defer')
        assert.ok(!asked.includes('_25._tcp.mx.x.example TLSA'))
    })

    it('C12: garbage TLSA rdata is unusable, so a secure RRset of it means encrypt, never opportunistic', async () => {
        const d = await decide(
            'x.example',
            scripted({
                'x.example MX': { mx: [{ preference: 10, exchange: 'mx.x.example' }] },
                'mx.x.example A': { addresses: ['192.0.2.1'] },
                'mx.x.example AAAA': { status: 'nodata' },
                '_25._tcp.mx.x.example TLSA': { tlsa: [Buffer.from([3]), Buffer.from([3, 1, 1, 0xab])] },
            }),
        )
        assert.equal(d.hosts[0].mode, 'encrypt')
        assert.equal(d.hosts[0].tlsa.usable, 0)
    })

    it('C5: "MX 0 ." beside real MX hosts is not a null MX: the real hosts are used', async () => {
        const d = await decide(
            'x.example',
            scripted({
                'x.example MX': {
                    mx: [
                        { preference: 0, exchange: '' },
                        { preference: 10, exchange: 'mx.x.example' },
                    ],
                },
                'mx.x.example A': { addresses: ['192.0.2.1'], secure: false },
                'mx.x.example AAAA': { status: 'nodata', secure: false },
            }),
        )
        assert.equal(d.action, 'deliver')
        assert.deepEqual(
            d.hosts.map((h) => h.name),
            ['mx.x.example'],
        )
    })

    it('C5: an MX answer with no host names defers rather than guessing', async () => {
        const d = await decide('x.example', scripted({ 'x.example MX': { mx: [] } }))
        assert.equal(d.action, 'defer')
    })
})
