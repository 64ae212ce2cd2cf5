// Issue 4: the pure parts of the policy engine, with a scripted lookup (no network).
import assert from 'node:assert/strict'
import { decide, orderMxHosts, tlsaCandidates, referenceIdentifiers, Lookup } from '../../lib/policy'
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
        assert.deepEqual(orderMxHosts(mx, seq([0.9, 0.1])).map((h) => h.name), ['b', 'a'])
        assert.deepEqual(orderMxHosts(mx, seq([0.1, 0.9])).map((h) => h.name), ['a', 'b'])
    })

    it('C8: TLSA candidates: expanded name first only when the CNAME chain is secure', () => {
        assert.deepEqual(tlsaCandidates('mx.example', 'real.example', true), ['real.example', 'mx.example'])
        assert.deepEqual(tlsaCandidates('mx.example', 'real.example', false), ['mx.example'])
        assert.deepEqual(tlsaCandidates('mx.example', undefined, true), ['mx.example'])
    })

    it('C16: reference identifiers are the TLSA base domain, plus the MX name when CNAME expansion changed it', () => {
        assert.deepEqual(referenceIdentifiers('mx.example', 'mx.example'), ['mx.example'])
        assert.deepEqual(referenceIdentifiers('mx.example', 'real.example'), ['real.example', 'mx.example'])
    })

    it('C4: a lookup that throws is a failure, and the decision defers', async () => {
        const d = await decide('x.example', async () => {
            throw new Error('socket exploded')
        })
        assert.equal(d.action, 'defer')
        assert.match(d.reason, /socket exploded/)
    })

    it('C7: an address lookup failure on one family skips the host (no half-validated address set)', async () => {
        const d = await decide(
            'x.example',
            scripted({
                'x.example MX': { mx: [{ preference: 10, exchange: 'mx.x.example' }] },
                'mx.x.example A': { addresses: ['192.0.2.1'] },
                'mx.x.example AAAA': { status: 'failed', secure: false, reason: 'servfail' },
            }),
        )
        assert.equal(d.action, 'defer')
        assert.equal(d.hosts[0].mode, 'skip')
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
                'x.example MX': { mx: [{ preference: 0, exchange: '' }, { preference: 10, exchange: 'mx.x.example' }] },
                'mx.x.example A': { addresses: ['192.0.2.1'], secure: false },
                'mx.x.example AAAA': { status: 'nodata', secure: false },
            }),
        )
        assert.equal(d.action, 'deliver')
        assert.deepEqual(d.hosts.map((h) => h.name), ['mx.x.example'])
    })

    it('C5: an MX answer with no host names defers rather than guessing', async () => {
        const d = await decide('x.example', scripted({ 'x.example MX': { mx: [] } }))
        assert.equal(d.action, 'defer')
    })
})
