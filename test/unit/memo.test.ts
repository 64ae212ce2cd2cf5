// What is kept between messages so that a warm delivery costs little: host decisions derived from
// cached DNS answers (lib/policy through lib/dns/cache), never staler than the answers (C3) and
// within the cache's bounds (C30). No network: a scripted lookup and the real cache.
import assert from 'node:assert/strict'
import { decide, hostDecisionBytes, possibleOrders, type Decision, type Lookup } from '../../lib/policy'
import { AnswerCache } from '../../lib/dns/cache'
import type { Answer, RRType } from '../../lib/resolver'
import { certificateFact, certificateFactsUsage, pairFact, MAX_BYTES, MAX_CERTIFICATES, MAX_PAIR_FACTS } from '../../lib/cert-facts'

function answer(name: string, type: RRType, a: Partial<Answer>): Answer {
    return { name, type, status: 'ok', secure: true, canonicalName: name, cnames: [], ttl: 300, rcode: 0, ...a }
}
const TLSA = Buffer.concat([Buffer.from([3, 1, 1]), Buffer.alloc(32, 7)])

/** "name TYPE" → partial answer; anything else a secure NXDOMAIN. Records what was asked. */
function scripted(table: Record<string, Partial<Answer>>, asked: string[]): Lookup {
    return async (name, type) => {
        asked.push(`${name} ${type}`)
        const a = table[`${name} ${type}`]
        return a ? answer(name, type, a) : answer(name, type, { status: 'nxdomain' })
    }
}

/** a memo that records what it was asked to keep, backed by the real cache */
function recordingMemo(cache: AnswerCache, kept: { key: string; ttl: number; bytes?: number }[]) {
    return {
        remember: (key: string, value: unknown, ttlS: number, bytes: number) => {
            kept.push({ key, ttl: ttlS, bytes })
            cache.remember(key, value, ttlS, bytes)
        },
        recall: (key: string) => cache.recall(key),
    }
}

const counters = () => ({ cacheHits: 0, derivedHits: 0, inflightShared: 0 })

const WORLD: Record<string, Partial<Answer>> = {
    'x.example MX': {
        mx: [
            { preference: 10, exchange: 'a.x.example' },
            { preference: 10, exchange: 'b.x.example' },
        ],
    },
    'a.x.example A': { addresses: ['192.0.2.1'], ttl: 120 },
    'a.x.example AAAA': { status: 'nodata', ttl: 90 },
    '_25._tcp.a.x.example TLSA': { tlsa: [TLSA], ttl: 600 },
    'b.x.example A': { addresses: ['192.0.2.2'] },
    'b.x.example AAAA': { status: 'nodata' },
    '_25._tcp.b.x.example TLSA': { tlsa: [TLSA] },
}

describe('host decisions kept between messages (C3, C30)', () => {
    it('C3: a second decision asks nothing; it equals a fresh one; each host is kept for the least TTL left of its answers, less a second, and the whole decision for the least of them all', async () => {
        const c = counters()
        const cache = new AnswerCache(100, 1 << 20, c)
        const kept: { key: string; ttl: number }[] = []
        const memo = recordingMemo(cache, kept)
        const asked: string[] = []
        const lookup = scripted(WORLD, asked)
        const first = await decide('x.example', lookup, { memo, random: () => 0.5 })
        assert.equal(first.action, 'deliver')
        // the least TTL (AAAA, 90 s) less a second, less the milliseconds the decision took
        assert.deepEqual(
            kept.map((k) => k.key.split(' ').slice(-2).join(' ')),
            ['a.x.example 10', 'b.x.example 10', 'false x.example'],
        )
        assert.ok(kept[0].ttl >= 88 && kept[0].ttl <= 89, `${kept[0].ttl}`)
        assert.ok(kept[1].ttl >= 298 && kept[1].ttl <= 299, `${kept[1].ttl}`)
        // the decision: no longer than its shortest-lived host (a, 88-89 s), less a second
        assert.match(kept[2].key, /^decision dane false 10 20 false x\.example$/)
        assert.ok(kept[2].ttl >= 87 && kept[2].ttl <= 88, `${kept[2].ttl}`)
        asked.length = 0
        const again = await decide('x.example', lookup, { memo, random: () => 0.5 })
        assert.deepEqual(asked, [])
        assert.equal(c.derivedHits, 1)
        const fresh = await decide('x.example', scripted(WORLD, []), { random: () => 0.5 })
        assert.deepEqual(again, fresh)
        assert.ok(Object.isFrozen(again.hosts[0]) && Object.isFrozen(again.hosts[0].tlsa.records), 'a kept decision is shared, so it cannot be changed')
    })

    it('C3: through the real cache, a host decision never outlives its first answer: a slow later stage shortens it, past the TTL nothing is kept', async () => {
        const cache = new AnswerCache(100, 1 << 20, counters())
        const kept: { key: string; ttl: number }[] = []
        const memo = recordingMemo(cache, kept)
        const world: Record<string, Partial<Answer>> = {
            ...WORLD,
            'x.example MX': { mx: [{ preference: 10, exchange: 'a.x.example' }] },
            'a.x.example A': { addresses: ['192.0.2.1'], ttl: 4 },
        }
        const slow = new Set(['_25._tcp.a.x.example TLSA'])
        const raw = scripted(world, [])
        // every lookup goes through the cache, as the resolver's do; the TLSA answer takes 1.5 s to come
        const lookup: Lookup = (n, t) =>
            cache.answer(`${n}/${t}`, async () => {
                if (slow.has(`${n} ${t}`)) await new Promise((r) => setTimeout(r, 1500))
                return raw(n, t)
            })
        const d = await decide('x.example', lookup, { memo })
        assert.equal(d.hosts[0].mode, 'dane')
        // the A answer (4 s) arrived 1.5 s before the decision was made: kept 4 - 1.5 - 1 = 1.5 s, rounded down
        assert.equal(kept.length, 1)
        assert.equal(kept[0].ttl, 1)
        // the same through answers already cached with 2 s left: under two seconds left after the margin, nothing kept
        await new Promise((r) => setTimeout(r, 2100))
        kept.length = 0
        slow.clear()
        await decide('x.example', lookup, { memo })
        assert.deepEqual(kept, [], 'the A answer had under 2 s left: not kept')
    }).timeout(10000)

    it("C3, C30: a whole decision is kept no longer than its MX answer, counted from that answer's arrival, and counted in bytes with its hosts", async () => {
        const cache = new AnswerCache(100, 1 << 20, counters())
        const kept: { key: string; ttl: number; bytes?: number }[] = []
        const world = { ...WORLD, 'x.example MX': { ...WORLD['x.example MX'], ttl: 4 } }
        const raw = scripted(world, [])
        // the host stages take 1.5 s (a cold resolver): the MX answer has 2.5 s left when the decision is made
        const lookup: Lookup = async (n, t) => {
            if (t !== 'MX') await new Promise((r) => setTimeout(r, 750))
            return raw(n, t)
        }
        const d = await decide('x.example', lookup, { memo: recordingMemo(cache, kept), random: () => 0.5 })
        const decision = kept.find((k) => k.key.startsWith('decision '))!
        assert.equal(decision.ttl, 1, "4 s from the MX answer's arrival, 1.5 s gone, less a second, rounded down")
        const hostBytes = d.hosts.reduce((n, h) => n + hostDecisionBytes(h), 0)
        assert.ok(decision.bytes! >= hostBytes, `${decision.bytes} bytes for hosts of ${hostBytes}`)
    }).timeout(10000)

    it('C3: the MX order is shuffled afresh for every message, kept hosts or not (RFC 5321 5.1)', async () => {
        const cache = new AnswerCache(100, 1 << 20, counters())
        const lookup = scripted(WORLD, [])
        const seq = (vals: number[]) => () => vals.shift() ?? 0.5
        const one = await decide('x.example', lookup, { memo: cache, random: seq([0.1, 0.9]) })
        const two = await decide('x.example', lookup, { memo: cache, random: seq([0.9, 0.1]) })
        assert.deepEqual(
            one.hosts.map((h) => h.name),
            ['a.x.example', 'b.x.example'],
        )
        assert.deepEqual(
            two.hosts.map((h) => h.name),
            ['b.x.example', 'a.x.example'],
        )
    })

    it('C3: a kept decision is assembled once per order of its hosts and shared, frozen, by the messages that draw that order', async () => {
        const cache = new AnswerCache(100, 1 << 20, counters())
        const asked: string[] = []
        const lookup = scripted(WORLD, asked)
        const seq = (vals: number[]) => () => vals.shift() ?? 0.5
        // the address limit cuts the second host down to a copy of its own (skipped): that copy is shared too
        const limits = { mxHosts: 10, addresses: 1 }
        const first = await decide('x.example', lookup, { memo: cache, limits, random: seq([0.1, 0.9]) })
        const n = asked.length
        const ab = await decide('x.example', lookup, { memo: cache, limits, random: seq([0.1, 0.9]) })
        const ba = await decide('x.example', lookup, { memo: cache, limits, random: seq([0.9, 0.1]) })
        const ab2 = await decide('x.example', lookup, { memo: cache, limits, random: seq([0.2, 0.8]) })
        assert.equal(asked.length, n, 'nothing asked again')
        assert.equal(ab, first, "the first message's decision is the one kept for its order")
        assert.equal(ab2, ab, 'the same order: the same decision')
        assert.notEqual(ba, ab)
        assert.deepEqual(
            ba.hosts.map((h) => `${h.name} ${h.mode}`),
            ['b.x.example dane', 'a.x.example skip'],
        )
        for (const d of [ab, ba]) {
            assert.ok(Object.isFrozen(d) && Object.isFrozen(d.hosts), 'the decision and its host list are frozen')
            for (const h of d.hosts) assert.ok(Object.isFrozen(h) && Object.isFrozen(h.addresses), `${h.name} is frozen, copy or not`)
            assert.throws(() => ((d as { action: string }).action = 'bounce'), TypeError)
        }
    })

    it('C30: the orders a kept decision may hold: each preference shared by n hosts allows n! of them, at most 24 in all', () => {
        const prefs = (...p: number[]) => p.map((preference) => ({ preference }))
        assert.equal(possibleOrders(prefs(10)), 1)
        assert.equal(possibleOrders(prefs(10, 20, 30)), 1)
        assert.equal(possibleOrders(prefs(10, 10, 10)), 6)
        assert.equal(possibleOrders(prefs(10, 10, 20, 20, 20)), 12)
        assert.equal(possibleOrders(prefs(20, 10, 20, 10)), 4, 'in any order of the answer')
        assert.equal(possibleOrders(prefs(10, 10, 10, 10, 10)), 24, '5! = 120, bounded')
    })

    it('C30: a kept decision whose hosts share a preference is counted with every order it may come to hold', async () => {
        const cache = new AnswerCache(100, 16 << 20, counters())
        const kept: { key: string; ttl: number; bytes?: number }[] = []
        const long = (i: number) => `${String(i).repeat(60)}.${'m'.repeat(60)}.${'x'.repeat(60)}.x.example`
        const world: Record<string, Partial<Answer>> = { 'x.example MX': { mx: [0, 1, 2].map((i) => ({ preference: 10, exchange: long(i) })) } }
        for (const i of [0, 1, 2]) {
            world[`${long(i)} A`] = { addresses: ['192.0.2.1', '192.0.2.2', '192.0.2.3'] }
            world[`${long(i)} AAAA`] = { status: 'nodata' }
            world[`_25._tcp.${long(i)} TLSA`] = { tlsa: [TLSA] }
        }
        const lookup = scripted(world, [])
        const memo = recordingMemo(cache, kept)
        const limits = { mxHosts: 10, addresses: 4 }
        // draw every order of the three hosts (3! = 6), each assembled and kept
        const orders = [
            [0.1, 0.2, 0.3],
            [0.1, 0.3, 0.2],
            [0.2, 0.1, 0.3],
            [0.3, 0.1, 0.2],
            [0.2, 0.3, 0.1],
            [0.3, 0.2, 0.1],
        ]
        const decisions = new Set<Decision>()
        for (const r of orders) decisions.add(await decide('x.example', lookup, { memo, limits, random: () => r.shift()! }))
        assert.equal(decisions.size, 6)
        assert.equal(await decide('x.example', lookup, { memo, limits, random: () => 0.5 }), [...decisions][0], 'kept, and shared')
        const decision = kept.find((k) => k.key.startsWith('decision '))!
        const hostKeys = kept.filter((k) => k.key.startsWith('host '))
        const hostBytes = hostKeys.reduce((n, k) => n + (k.bytes ?? 0), 0)
        const shared = new Set(hostKeys.map((k) => (cache.recall(k.key) as { host: unknown }).host))
        // what each assembled decision holds of its own (its fields, and the hosts the address limit copied: name,
        // reason, addresses; the rest of a copy is the kept host's), at two bytes a character
        const own = (d: Decision) =>
            2 * JSON.stringify({ ...d, hosts: d.hosts.map((h) => (shared.has(h) ? null : { name: h.name, reason: h.reason, addresses: h.addresses })) }).length
        const held = [...decisions].reduce((n, d) => n + own(d), 0)
        assert.ok(
            [...decisions].every((d) => d.hosts.some((h) => !shared.has(h))),
            'the address limit made copies in every order',
        )
        assert.ok(decision.bytes! - hostBytes >= held, `counted ${decision.bytes! - hostBytes} bytes beyond the hosts for ${held} held`)
    })

    it('C3: a host whose lookups saw a failure, or an answer with a second or less left, is not kept', async () => {
        const cache = new AnswerCache(100, 1 << 20, counters())
        const kept: { key: string; ttl: number }[] = []
        const world = {
            ...WORLD,
            'a.x.example AAAA': { status: 'failed' as const, secure: false, reason: 'servfail' },
            'b.x.example A': { addresses: ['192.0.2.2'], ttl: 1 },
        }
        const d = await decide('x.example', scripted(world, []), { memo: recordingMemo(cache, kept), random: () => 0.5 })
        assert.equal(d.action, 'deliver', 'a failed AAAA leaves the A addresses (C7)')
        assert.deepEqual(kept, [])
    })

    it('C3: the policy word and the next hop are part of what is kept: another domain or policy decides afresh', async () => {
        const cache = new AnswerCache(100, 1 << 20, counters())
        const asked: string[] = []
        const world = { ...WORLD, 'y.example MX': { mx: [{ preference: 10, exchange: 'a.x.example' }], secure: false } }
        const lookup = scripted(world, asked)
        await decide('x.example', lookup, { memo: cache })
        asked.length = 0
        const y = await decide('y.example', lookup, { memo: cache })
        assert.ok(asked.includes('a.x.example A'), 'another next hop: the host is decided again')
        assert.deepEqual(y.hosts[0].referenceNames, ['a.x.example'], 'an insecure MX RRset: the next-hop domain is no reference identifier (C16)')
        asked.length = 0
        const may = await decide('x.example', lookup, { memo: cache, policy: 'may' })
        assert.ok(asked.includes('a.x.example A'))
        assert.equal(may.hosts[0].mode, 'opportunistic')
    })

    it('C30: kept host decisions count in the cache bound in bytes; one with under a second left is not kept', async () => {
        const c = counters()
        const cache = new AnswerCache(1000, 64 * 1024, c)
        for (let i = 0; i < 500; i++) cache.remember(`host k${i}`, { i }, 60, 1024)
        const u = cache.usage()
        assert.ok(u.bytes <= 64 * 1024, `bytes ${u.bytes}`)
        assert.ok(u.entries < 100, `entries ${u.entries}`)
        assert.equal(cache.recall('host k0'), undefined, 'the oldest went first')
        assert.deepEqual(cache.recall('host k499'), { i: 499 })
        assert.throws(() => cache.remember('nospace', 1, 60, 10), RangeError)
        cache.remember('host short', 1, 0.5, 10)
        assert.equal(cache.recall('host short'), undefined, 'under a second: not kept')
        const off = new AnswerCache(0, 1 << 20, counters())
        off.remember('host k', 1, 60, 10)
        assert.equal(off.recall('host k'), undefined, 'a cache that is off keeps nothing')
    })
})

describe('certificate facts kept between connections (C13, C30)', () => {
    it('C13: a fact is computed once per certificate bytes, whatever object carries them, and a failing computation is not kept', () => {
        let runs = 0
        const der = Buffer.from('not really a certificate, but bytes all the same')
        const f = (b: Buffer) => certificateFact(b, 'length', (d) => (runs++, { n: d.length }))
        assert.deepEqual(f(der), { n: der.length })
        assert.deepEqual(f(Buffer.from(der)), { n: der.length })
        assert.equal(runs, 1)
        // kept from a caller's buffer: a caller changing its buffer afterwards changes nothing kept
        const fresh = Buffer.from('other bytes, seen here first')
        const kept = certificateFact(fresh, 'first byte', (d) => ({ b: d[0] }))
        fresh[0] ^= 0xff
        assert.equal(
            certificateFact(Buffer.from('other bytes, seen here first'), 'first byte', () => ({ b: -1 })),
            kept,
        )
        assert.deepEqual(kept, { b: 'o'.charCodeAt(0) })
        assert.notEqual(
            certificateFact(fresh, 'first byte', (d) => ({ b: d[0] })),
            kept,
            'the changed bytes are other bytes',
        )
        assert.throws(
            () =>
                certificateFact(der, 'boom', () => {
                    throw new Error('unreadable')
                }),
            /unreadable/,
        )
        assert.equal(
            certificateFact(der, 'boom', () => 'read after all'),
            'read after all',
        )
    })

    it('C30: at most MAX_CERTIFICATES certificates and MAX_BYTES bytes are kept', () => {
        for (let i = 0; i < MAX_CERTIFICATES + 200; i++) certificateFact(Buffer.from(`certificate ${i}`.padEnd(2000, '.')), 'x', () => i)
        const u = certificateFactsUsage()
        assert.ok(u.certificates <= MAX_CERTIFICATES, `${u.certificates}`)
        assert.ok(u.bytes <= MAX_BYTES, `${u.bytes}`)
        for (let i = 0; i < 300; i++) certificateFact(Buffer.alloc(1024 * 1024, i), 'x', () => i)
        assert.ok(certificateFactsUsage().bytes <= MAX_BYTES)
    })

    it('C30: facts about pairs are bounded on their own: one certificate paired with ever new keys keeps at most MAX_PAIR_FACTS', () => {
        const leaf = Buffer.from('one leaf, always the same')
        let runs = 0
        for (let i = 0; i < MAX_PAIR_FACTS + 500; i++) pairFact('signed-by', leaf, Buffer.from(`key ${i}`), () => (runs++, false))
        assert.equal(runs, MAX_PAIR_FACTS + 500)
        assert.ok(certificateFactsUsage().pairs <= MAX_PAIR_FACTS)
        assert.equal(
            pairFact('signed-by', leaf, Buffer.from(`key ${MAX_PAIR_FACTS + 499}`), () => true),
            false,
            'the most recent pair is still known',
        )
    })
})
