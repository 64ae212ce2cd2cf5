// Issue 14: the TLS report store for several Haraka nodes ([tlsrpt] store=redis) against a real
// redis-server on 127.0.4.28: what two nodes count is one report; a report is claimed by one sender at a
// time and sent once; a Redis that goes away and comes back loses nothing that waited for it; garbage in
// Redis is not reported. Its own redis; nothing else of the test world.
import assert from 'node:assert/strict'
import { RedisStore } from '../../lib/tlsrpt/redis-store'
import { redactedUrl } from '../../lib/redis'
import { buildReport, reportOfTallies, tallyKey, tallyOfKey, type Tally } from '../../lib/tlsrpt/report'
import type { SessionResult } from '../../lib/tlsrpt/result'
import { daneResult, txtAnswer } from '../world/tlsrpt-fixtures'
import { sendDueReports, type SendDeps } from '../../lib/tlsrpt/send'
import { RedisWorld } from '../world/redis'
import { sleep } from '../world/procs'

const ADDRESS = '127.0.4.28'
const URL_ = `redis://${ADDRESS}:6379`
const DAY = '2026-11-20'
const NOON = Date.parse(`${DAY}T12:00:00Z`)
const REPORTER = { organizationName: 'Example Sender', contactInfo: 'tls@sender.example' }

let n = 0
const result = (domain: string, ok: boolean): SessionResult => daneResult({ id: `r${++n}`, at: NOON, domain, ok })

async function until(what: string, ok: () => Promise<boolean>, ms = 10000): Promise<void> {
    const end = Date.now() + ms
    while (!(await ok())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
        await sleep(50)
    }
}

describe('TLS report store in a real Redis ([tlsrpt] store=redis)', function () {
    this.timeout(60000)
    let redis: RedisWorld
    let prefix: string
    const stores: RedisStore[] = []
    const open = (): RedisStore => {
        const s = new RedisStore({ url: URL_, prefix })
        stores.push(s)
        return s
    }
    const total = async (s: RedisStore, domain: string): Promise<number> => (await (await s.day(DAY)).tallies(domain)).reduce((a, t) => a + t.count, 0)

    before(async () => {
        redis = new RedisWorld(ADDRESS)
        await redis.start()
    })
    beforeEach(() => {
        prefix = `test-${Date.now()}-${Math.random().toString(36).slice(2)}`
    })
    afterEach(async () => {
        for (const s of stores.splice(0)) await s.close()
    })
    after(async () => {
        await redis?.stop()
    })

    it('counts kept per policy, outcome and failure details read back exactly (and nothing else)', () => {
        const r = result('a.example', false)
        const t = { policy: r.policy, ok: r.ok, failure: r.failure }
        assert.deepEqual(tallyOfKey(tallyKey(t), 3), { ...t, count: 3 })
        const ok = result('a.example', true)
        assert.deepEqual(tallyOfKey(tallyKey({ policy: ok.policy, ok: true }), 1), { policy: ok.policy, ok: true, count: 1 })
        for (const bad of ['', 'null', '[1,2,3]', JSON.stringify(['smtp', [], 'd', [], true, null]), tallyKey(t).replace('false', 'true')])
            assert.equal(tallyOfKey(bad, 1), undefined, bad)
        assert.equal(tallyOfKey(tallyKey(t), 0), undefined)
        assert.equal(tallyOfKey(tallyKey(t), 1.5), undefined)
    })

    it("two nodes' results make one report, the same as from every result in one journal", async () => {
        const a = open()
        const b = open()
        const all: SessionResult[] = []
        for (let i = 0; i < 30; i++) {
            const r = result(i % 3 ? 'a.example' : 'b.example', i % 4 !== 0)
            all.push(r)
            ;(i % 2 ? a : b).add(r)
        }
        await until('every result in Redis', async () => (await total(a, 'a.example')) + (await total(a, 'b.example')) === 30)
        const day = await b.day(DAY)
        assert.deepEqual(day.domains, ['a.example', 'b.example'])
        for (const domain of day.domains) {
            const tallies: Tally[] = await day.tallies(domain)
            assert.deepEqual(reportOfTallies(DAY, domain, tallies, REPORTER), buildReport(DAY, domain, all, REPORTER))
        }
        assert.deepEqual(await a.days(), [DAY])
        // a day older than the keys live is taken out of the set of days
        redis.cli('SADD', `${prefix}:days`, '2001-01-01')
        assert.deepEqual(await a.days(), [DAY])
        assert.equal(redis.cli('SISMEMBER', `${prefix}:days`, '2001-01-01'), '0')
    })

    it('a claim is held by one node: another cannot take or release it; released by its holder, it can be taken', async () => {
        const a = open()
        const b = open()
        const ta = await a.sent.claim(DAY, 'a.example', Date.now())
        assert.ok(ta)
        assert.equal(await b.sent.claim(DAY, 'a.example', Date.now()), undefined)
        await b.sent.release(DAY, 'a.example', 'not-the-token')
        assert.equal(await b.sent.renew(DAY, 'a.example', 'not-the-token', Date.now()), false)
        assert.equal(await a.sent.renew(DAY, 'a.example', ta!, Date.now()), true)
        assert.equal(await b.sent.claim(DAY, 'a.example', Date.now()), undefined)
        await a.sent.release(DAY, 'a.example', ta!)
        assert.ok(await b.sent.claim(DAY, 'a.example', Date.now()))
        // the claim expires by itself (a sender that died): its key has a time to live
        assert.ok(Number(redis.cli('PTTL', `${prefix}:claim:${DAY}:a.example`)) > 0)
    })

    it('two nodes sending at once: each report goes out once, the deliveries seen by both', async () => {
        const a = open()
        const b = open()
        for (const d of ['a.example', 'b.example', 'c.example']) a.add(result(d, true))
        await until('the results', async () => (await a.day(DAY)).domains.length === 3)
        const mails: string[] = []
        const deps = (): SendDeps => ({
            reporter: REPORTER,
            from: 'tls@sender.example',
            lookupTxt: async (name) => txtAnswer(name, [`v=TLSRPTv1; rua=mailto:r@${name.replace('_smtp._tls.', '')}`]),
            sendMail: async (to) => {
                mails.push(to)
                await sleep(20)
                return { ok: true, detail: 'queued' }
            },
            postHttps: async () => ({ ok: false, detail: 'none' }),
            now: () => Date.now(),
            unique: () => Math.random().toString(36).slice(2),
        })
        await Promise.all([sendDueReports(DAY, await a.day(DAY), deps(), a.sent), sendDueReports(DAY, await b.day(DAY), deps(), b.sent)])
        // a node that lost the race for a claim tries again next round: by then the report is sent
        await sendDueReports(DAY, await b.day(DAY), deps(), b.sent)
        await sendDueReports(DAY, await a.day(DAY), deps(), a.sent)
        assert.deepEqual(mails.sort(), ['r@a.example', 'r@b.example', 'r@c.example'])
        assert.equal((await a.sent.deliveries(DAY, 'b.example')).filter((d) => d.ok).length, 1)
    })

    it('Redis gone and back: results kept meanwhile wait in memory and are counted when it returns; reads fail clearly', async () => {
        const s = open()
        s.add(result('a.example', true))
        await until('the first result', async () => (await total(s, 'a.example')) === 1)
        await redis.stop()
        for (let i = 0; i < 5; i++) s.add(result('a.example', true))
        await assert.rejects(() => s.days(), /Redis redis:\/\/127\.0\.4\.28:6379.* not reachable within 5 s/)
        redis = new RedisWorld(ADDRESS)
        await redis.start()
        // a Redis without persistence came back empty: what waited is what it now holds
        await until('the waiting results', async () => (await total(s, 'a.example')) === 5, 20000)
    })

    it('never shows a password; a server that cannot be reached never makes add throw, and the operator is told', async () => {
        assert.equal(redactedUrl('redis://user:secret@127.0.0.1:6379/2'), 'redis://user:***@127.0.0.1:6379/2')
        const faults: string[] = []
        const s = new RedisStore({ url: 'redis://127.0.4.29:6379', prefix }, (m) => faults.push(m))
        stores.push(s)
        for (let i = 0; i < 3; i++) s.add(result('a.example', true))
        await until('a fault told', async () => faults.length > 0)
        assert.match(faults[0], /haraka-plugin-dane: Redis redis:\/\/127\.0\.4\.29:6379\/? \(prefix test-[^)]+\): .*ECONNREFUSED/)
        // closed (a reload, Haraka's shutdown) while they wait: how many were lost is told, at once
        await s.close()
        assert.match(faults[faults.length - 1], /result\(s\) not kept in Redis .*the store was closed while Redis was unreachable; 3 lost so far/)
    })
})
