// Issue 14 (TLSRPT) with several Haraka nodes: two real Harakas, each with the plugin and
// `[tlsrpt] store=redis`, share the test world's real redis-server. Yesterday's results are in Redis
// (the clock moved: nothing waits for midnight); both nodes start, both look for due reports, and each
// domain's report reaches each of its destinations once (mail through one node's outbound, HTTPS POST to
// a loopback endpoint with a test CA). Today's deliveries through both nodes are counted together.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { gunzipSync } from 'node:zlib'
import { Haraka } from '../world/haraka'
import { daneResult, startReportEndpoint, type ReportEndpoint } from '../world/tlsrpt-fixtures'
import { sleep } from '../world/procs'
import { readDaneLog } from '../world/dane-log'
import { ScenarioWorld, startScenarioWorld, worldDaneIni } from '../world/scenarios'
import { RedisStore } from '../../lib/tlsrpt/redis-store'
import { buildReport, utcDay, type TlsrptReport } from '../../lib/tlsrpt/report'
import type { SessionResult } from '../../lib/tlsrpt/result'

const REPORTER = { organizationName: 'Test World Sender', contactInfo: 'tls-reports@haraka.world.test' }
const NODES = ['127.0.0.25', '127.0.0.125']

describe('end to end: two Haraka nodes sharing a real Redis send one TLS report per domain and day', function () {
    this.timeout(180000)
    let world: ScenarioWorld
    const nodes: Haraka[] = []
    const logs: string[] = []
    let endpoint: ReportEndpoint
    const posts = (): Buffer[] => endpoint.posts.map((p) => p.body)
    const prefix = `nodes-${Date.now()}`
    const yesterday = utcDay(Date.now() - 86400000)
    const noon = Date.parse(`${yesterday}T12:00:00Z`)
    let seeded: SessionResult[]
    const redisUrl = () => `redis://${world.redis.address}:${world.redis.port}`
    const reportsTo = (listener: string, rcpt: string) => world.listeners.get(listener)!.received.filter((r) => r.to.some((t) => t.includes(rcpt)))
    const firstRoundDone = (log: string) => readDaneLog(log).some((l) => l.event === 'tlsrpt' && l.domain === '*')

    async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 30000): Promise<void> {
        const end = Date.now() + ms
        while (!(await ok())) {
            if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${nodes.map((h) => h.logTail()).join('\n')}`)
            await sleep(100)
        }
    }

    before(async () => {
        world = await startScenarioWorld()
        endpoint = await startReportEndpoint('127.0.0.42')
        // yesterday's results, as the two nodes kept them
        seeded = ['ee.dane.test', 'ee.dane.test', 'fallback.dane.test'].map((domain, i) => daneResult({ id: `y${i}`, at: noon + i, domain, ok: true }))
        const seed = new RedisStore({ url: redisUrl(), prefix })
        for (const r of seeded) seed.add(r)
        await until('the seeded results', async () => (await seed.day(yesterday)).domains.length === 2)
        await seed.close()
        for (const address of NODES) {
            const h = new Haraka({ withDane: true, address })
            const log = path.join(h.dir, 'dane.jsonl')
            const caFile = path.join(h.dir, 'report-ca.pem')
            fs.writeFileSync(caFile, endpoint.caPem)
            h.writeConfigFile(
                'dane.ini',
                worldDaneIni(
                    world,
                    log,
                    `[tlsrpt]\nenabled=true\norganization_name=${REPORTER.organizationName}\ncontact_info=${REPORTER.contactInfo}\n` +
                        `send_after_minutes=0\nspread_minutes=0\nhttps_ca_file=${caFile}\nstore=redis\nredis_url=${redisUrl()}\nredis_prefix=${prefix}\n`,
                ),
            )
            h.writeConfigFile('tls.ini', `[outbound]\n${world.redis.tlsIni()}`)
            nodes.push(h)
            logs.push(log)
        }
        await Promise.all(nodes.map((h) => h.start()))
        await until('both nodes to have looked for due reports', () => logs.every(firstRoundDone))
        await until(
            'the reports',
            () => reportsTo('ee', 'tlsrpt@ee.dane.test').length >= 1 && reportsTo('fallback1', 'tlsrpt@fallback.dane.test').length >= 1 && posts().length >= 1,
        )
        await sleep(1000)
    })

    after(async () => {
        for (const h of nodes) {
            await h.stop()
            h.cleanup()
        }
        await world?.stop()
        endpoint?.server.close()
    })

    it('each destination got its report once, from whichever node claimed it', () => {
        assert.equal(reportsTo('ee', 'tlsrpt@ee.dane.test').length, 1)
        assert.equal(reportsTo('fallback1', 'tlsrpt@fallback.dane.test').length, 1)
        assert.equal(posts().length, 1)
        // what each node says it sent: three deliveries between them (ee by mail; fallback by mail and https)
        const sent = logs.flatMap((log) =>
            readDaneLog(log)
                .filter((l) => l.event === 'tlsrpt' && l.domain !== '*')
                .flatMap((l) => ((l as unknown as { sent?: { uri: string; ok: boolean }[] }).sent ?? []).map((d) => `${l.domain} ${d.uri} ${d.ok}`)),
        )
        assert.deepEqual(sent.sort(), [
            'ee.dane.test mailto:tlsrpt@ee.dane.test true',
            'fallback.dane.test https://127.0.0.42/tlsrpt true',
            'fallback.dane.test mailto:tlsrpt@fallback.dane.test true',
        ])
    })

    it('the report counts what both nodes kept', () => {
        assert.deepEqual(JSON.parse(gunzipSync(posts()[0]).toString()), buildReport(yesterday, 'fallback.dane.test', seeded, REPORTER))
        const [mail] = reportsTo('ee', 'tlsrpt@ee.dane.test')
        const b64 = mail.body
            .split(/Content-Type: application\/tlsrpt\+gzip/)[1]
            .split(/\r?\n\r?\n/)[1]
            .split('--')[0]
            .replace(/\s/g, '')
        const report = JSON.parse(gunzipSync(Buffer.from(b64, 'base64')).toString()) as TlsrptReport | null
        assert.deepEqual(report, buildReport(yesterday, 'ee.dane.test', seeded, REPORTER))
        assert.equal(report?.policies[0].summary['total-successful-session-count'], 2)
    })

    it("today's deliveries through both nodes are counted together, one result per attempt the logs show", async () => {
        const ids: [Haraka, string][] = []
        for (const h of nodes) for (let i = 0; i < 2; i++) ids.push([h, await h.send(`postmaster@ee.dane.test`, { subject: `node ${h.address} ${i}` })])
        for (const [h, id] of ids) await h.waitFor(id, ['delivered', 'deferred', 'bounce'], 60000)
        const verified = logs.map(
            (log) => readDaneLog(log).filter((l) => l.event === 'attempt' && l.domain === 'ee.dane.test' && l.outcome === 'verified').length,
        )
        assert.deepEqual(verified, [2, 2])
        const store = new RedisStore({ url: redisUrl(), prefix })
        try {
            const today = utcDay(Date.now())
            const count = async () => (await (await store.day(today)).tallies('ee.dane.test')).reduce((a, t) => a + (t.ok ? t.count : 0), 0)
            await until('both nodes to have counted', async () => (await count()) >= 4, 10000)
            await sleep(300)
            assert.equal(await count(), 4)
        } finally {
            await store.close()
        }
    })
})
