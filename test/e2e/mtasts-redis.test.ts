// Issue 15: kept MTA-STS policies in a real Redis ([mtasts] store=redis, C40), on 127.0.8.28: what one node
// fetched the other uses without a fetch of its own; a key expires with its policy; garbage or another
// domain's policy in a key is no policy; a Redis that is down or paused costs a delivery at most about a second,
// is never read as "nothing kept", and is said in Haraka's log. The `_mta-sts` record and the fetch are given here (the real DNS and HTTPS server
// are lib/mtasts's other tests): this file is about the store.
import assert from 'node:assert/strict'
import { createClient } from 'redis'
import { RedisWorld } from '../world/redis'
import { sleep } from '../world/procs'
import { StsPolicies } from '../../lib/mtasts/service'
import { RedisStsStore } from '../../lib/mtasts/redis-store'
import type { FetchResult } from '../../lib/mtasts/fetch'
import type { Answer } from '../../lib/dns/answer'
import { txtAnswer } from '../world/tlsrpt-fixtures'

const ADDRESS = '127.0.8.28'
const URL_ = `redis://${ADDRESS}:6379`

const txt = (name: string, id: string): Answer => txtAnswer(name, [`v=STSv1; id=${id}`])

describe('MTA-STS policies kept in a real Redis ([mtasts] store=redis)', function () {
    this.timeout(60000)
    let redis = new RedisWorld(ADDRESS)
    const stores: RedisStsStore[] = []
    const faults: string[] = []
    let fetches = 0
    let fetchFails = false
    let prefix = ''
    const node = (): { policies: StsPolicies; store: RedisStsStore } => {
        const store = new RedisStsStore({ url: URL_, prefix }, (m) => faults.push(m))
        stores.push(store)
        const policies = new StsPolicies({
            lookupTxt: async (name) => txt(name, 'r1'),
            addresses: async () => ['127.0.8.80'],
            store,
            fault: (m) => faults.push(m),
            fetch: async (domain): Promise<FetchResult> => {
                if (fetchFails) return { ok: false, host: `mta-sts.${domain}`, error: 'ECONNREFUSED' }
                fetches++
                return { ok: true, host: `mta-sts.${domain}`, text: 'version: STSv1\nmode: enforce\nmx: mx.shared.example\nmax_age: 86400\n' }
            },
        })
        return { policies, store }
    }

    before(async () => {
        await redis.start()
    })
    beforeEach(() => {
        prefix = `sts-${Date.now()}-${Math.random().toString(36).slice(2)}`
        fetches = 0
        fetchFails = false
        faults.length = 0
    })
    afterEach(async () => {
        for (const s of stores.splice(0)) await s.close()
    })
    after(async () => {
        await redis.stop()
    })

    it("C40: a policy one node fetched is the other nodes' (and a restarted node's) without a fetch; its key expires with it", async () => {
        const a = node()
        const first = await a.policies.policyFor('shared.example')
        assert.deepEqual([first.plan.fetch, first.inForce?.mode, fetches], [true, 'enforce', 1])
        const b = node()
        const second = await b.policies.policyFor('shared.example')
        assert.deepEqual([second.plan.fetch, second.inForce?.mode, fetches], [false, 'enforce', 1])
        assert.match(second.reason, /kept policy \(id r1\) is in force/)
        const c = createClient({ url: URL_ })
        await c.connect()
        try {
            const ttl = Number(await c.sendCommand(['PTTL', a.store.key('shared.example')]))
            assert.ok(ttl > 86_300_000 && ttl <= 86_400_000, `PTTL ${ttl}`)
            // the key is a hash of the domain, never the domain: a hostile domain string names no other key
            assert.match(a.store.key('x:*'), new RegExp(`^${prefix}:[0-9a-f]{64}$`))
            // another domain's policy copied under this domain's key is no policy
            const value = String(await c.sendCommand(['GET', a.store.key('shared.example')]))
            await c.sendCommand(['SET', a.store.key('other.example'), value])
            await c.sendCommand(['SET', a.store.key('junk.example'), '{not json'])
        } finally {
            await c.close()
        }
        assert.equal(await b.store.get('other.example'), undefined)
        assert.equal(await b.store.get('junk.example'), undefined)
        // newer wins: a write of an older policy (one that reached Redis late) leaves the newer one; a drop of an older one too
        const newer = (await b.store.get('shared.example'))!
        const older = { ...newer, id: 'old', fetchedAt: newer.fetchedAt - 60_000 }
        assert.equal(await b.store.set('shared.example', older), undefined)
        assert.equal((await a.store.get('shared.example'))?.id, 'r1')
        assert.equal(await b.store.drop('shared.example', older), undefined)
        assert.equal((await a.store.get('shared.example'))?.id, 'r1')
        assert.equal(await b.store.drop('shared.example', newer), undefined)
        assert.equal(await a.store.get('shared.example'), undefined)
        assert.deepEqual(faults, [])
    })

    it('C40: a store that cannot be read is not "nothing kept": the node uses what it holds, defers what it does not know, reads again later', async () => {
        const a = node()
        await a.policies.policyFor('paused.example')
        const b = node()
        fetchFails = true
        await b.store.get('warm.example') // b's connection is up
        // Redis stops answering (CLIENT PAUSE): b, which holds nothing for the domain, cannot read it
        redis.cli('CLIENT', 'PAUSE', '2500', 'ALL')
        const t0 = Date.now()
        // whether a policy is kept is unknown, and the fetch fails: an error (the message defers), never "no policy"
        await assert.rejects(b.policies.policyFor('paused.example'), /the kept policies cannot be read and this process holds nothing for paused\.example/)
        assert.ok(Date.now() - t0 < 2400, `a delivery waited ${Date.now() - t0} ms`)
        assert.ok(
            faults.some((m) =>
                /the kept MTA-STS policies cannot be read \(Redis redis:\/\/127\.0\.8\.28:6379\/? \(prefix sts-.*no answer within 1 s\)/.test(m),
            ),
            faults.join('\n'),
        )
        // a node that holds the policy goes on enforcing it meanwhile, without a read or a fetch
        const held = await a.policies.policyFor('paused.example')
        assert.equal(held.inForce?.mode, 'enforce')
        await sleep(2600)
        // Redis answers again: b reads the policy a kept (its failed read was not remembered as "nothing kept")
        const seen = await b.policies.policyFor('paused.example')
        assert.deepEqual([seen.inForce?.mode, seen.plan.fetch], ['enforce', false])
        assert.equal(fetches, 1)
    })

    it('C40: Redis down: a read rejects within about a second, a write says why at once; a new node fetches and keeps again once it is back', async () => {
        const made = Date.now()
        const a = node()
        await a.policies.policyFor('down.example')
        const kept = await a.store.get('down.example')
        await redis.stop()
        const b = node()
        const t0 = Date.now()
        await assert.rejects(b.store.get('down.example'), /Redis redis:\/\/127\.0\.8\.28:6379.*no answer within 1 s/)
        assert.ok(Date.now() - t0 < 2500, `a read waited ${Date.now() - t0} ms`)
        // a, past its first seconds, fails at once
        await sleep(Math.max(0, made + 2100 - Date.now()))
        const t1 = Date.now()
        assert.match((await a.store.set('down.example', kept!)) ?? '', /Redis redis:\/\/127\.0\.8\.28:6379.*not reachable/)
        assert.ok(Date.now() - t1 < 200, `a write waited ${Date.now() - t1} ms`)
        // and its kept policy stays in force from memory
        assert.equal((await a.policies.policyFor('down.example')).inForce?.mode, 'enforce')
        redis = new RedisWorld(ADDRESS)
        await redis.start()
        // save "" in the test Redis: nothing survived its restart, so a new node fetches the policy and keeps it again
        const c = node()
        const again = await c.policies.policyFor('down.example')
        assert.equal(again.inForce?.mode, 'enforce')
        assert.deepEqual(await c.store.get('down.example').then((k) => k?.id), 'r1')
    })
})
