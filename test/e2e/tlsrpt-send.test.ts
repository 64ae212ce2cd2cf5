// Issue 14 (TLSRPT, RFC 8460 5): the day's reports sent by a real Haraka with the plugin. Yesterday's
// results are in the journal (the clock moved: nothing waits for midnight); at start-up the plugin
// looks up each domain's _smtp._tls record through the validating resolver and sends its report: by
// mail through Haraka's own outbound to a real receiver, and by HTTPS POST to a real endpoint on
// loopback with a test CA. The report mail is delivered even to an MX that fails DANE (RFC 8460 5.3:
// despite TLS failures), is not itself reported on, and nothing is sent twice after a restart.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { gunzipSync } from 'node:zlib'
import { Resolver } from 'node:dns/promises'
// an independent DKIM verifier (not the Haraka plugin that signs)
import { dkimVerify } from 'mailauth/lib/dkim/verify'
import { Haraka } from '../world/haraka'
import { daneResult, startReportEndpoint, type ReportEndpoint } from '../world/tlsrpt-fixtures'
import { sleep } from '../world/procs'
import { readDaneLog } from '../world/dane-log'
import { ScenarioWorld, worldWithHaraka } from '../world/scenarios'
import { JournalStore } from '../../lib/tlsrpt/journal'
import { main } from '../../bin/haraka-dane'
import { buildReport, utcDay } from '../../lib/tlsrpt/report'
import { sessionResult, type SessionResult } from '../../lib/tlsrpt/result'

const REPORTER = { organizationName: 'Test World Sender', contactInfo: 'tls-reports@haraka.world.test' }

describe('end to end: TLS reports sent (RFC 8460 5) by mail through Haraka and by HTTPS', function () {
    this.timeout(120000)
    let world: ScenarioWorld
    let haraka: Haraka
    let daneLog: string
    let endpoint: ReportEndpoint
    const posts = (): ReportEndpoint['posts'] => endpoint.posts
    const yesterday = utcDay(Date.now() - 86400000)
    const noon = Date.parse(`${yesterday}T12:00:00Z`)
    let results: SessionResult[]

    const fact = (id: string, domain: string, host: string, ok: boolean) => daneResult({ id, at: noon, domain, host, ok })
    const reportsTo = (listener: string, rcpt: string) => world.listeners.get(listener)!.received.filter((r) => r.to.some((t) => t.includes(rcpt)))

    async function until(what: string, ok: () => boolean, ms = 30000): Promise<void> {
        const end = Date.now() + ms
        while (!ok()) {
            if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${haraka.logTail()}`)
            await sleep(100)
        }
    }

    before(async () => {
        endpoint = await startReportEndpoint('127.0.0.42')
        ;({ world, haraka, daneLog } = await worldWithHaraka(''))
        const caFile = path.join(haraka.dir, 'report-ca.pem')
        fs.writeFileSync(caFile, endpoint.caPem)
        haraka.writeConfigFile(
            'dane.ini',
            fs.readFileSync(path.join(haraka.dir, 'config', 'dane.ini'), 'utf8') +
                `[tlsrpt]\nenabled=true\norganization_name=${REPORTER.organizationName}\ncontact_info=${REPORTER.contactInfo}\nsend_after_minutes=0\nspread_minutes=0\nhttps_ca_file=${caFile}\n`,
        )
        haraka.writeConfigFile('tls.ini', `[outbound]\n${world.redis.tlsIni()}`)
        // the operator signs outbound mail with Haraka's DKIM plugin: a key for the From domain (RFC 8460 5.3)
        haraka.writeConfigFile('plugins', fs.readFileSync(path.join(haraka.dir, 'config', 'plugins'), 'utf8') + 'dkim\n')
        haraka.writeConfigFile('dkim.ini', '[sign]\nenabled=true\n[verify]\nenabled=false\n')
        fs.mkdirSync(path.join(haraka.dir, 'config', 'dkim', world.dkim.domain), { recursive: true })
        haraka.writeConfigFile(`dkim/${world.dkim.domain}/private`, world.dkim.privateKeyPem)
        haraka.writeConfigFile(`dkim/${world.dkim.domain}/selector`, `${world.dkim.selector}\n`)
        results = [
            fact('y1', 'ee.dane.test', 'mx.ee.dane.test', true),
            fact('y2', 'fallback.dane.test', 'mx1.fallback.dane.test', false),
            fact('y3', 'fallback.dane.test', 'mx2.fallback.dane.test', true),
        ]
        const journal = new JournalStore(path.join(haraka.dir, 'dane-tlsrpt'))
        for (const r of results) journal.add(r)
        journal.close()
        await haraka.start()
        await until(
            'the reports',
            () => reportsTo('ee', 'tlsrpt@ee.dane.test').length >= 1 && reportsTo('fallback1', 'tlsrpt@fallback.dane.test').length >= 1 && posts().length >= 1,
        )
    })

    after(async () => {
        await haraka?.stop()
        await world?.stop()
        haraka?.cleanup()
        endpoint?.server.close()
    })

    it('by mail: the RFC 8460 5.3 message through Haraka, its attachment the report of the kept results', () => {
        const [mail] = reportsTo('ee', 'tlsrpt@ee.dane.test')
        assert.ok(mail.secure, 'over TLS (opportunistic)')
        const [head] = mail.body.split(/\r?\n\r?\n/)
        assert.match(head, /^Subject: Report Domain: ee\.dane\.test Submitter: haraka\.world\.test Report-ID: <[^>]+@haraka\.world\.test>$/m)
        assert.match(head, /^TLS-Report-Domain: ee\.dane\.test$/m)
        assert.match(head, /^TLS-Report-Submitter: haraka\.world\.test$/m)
        assert.match(head, /^TLS-Required: No$/m)
        assert.match(head, /^Content-Type: multipart\/report; report-type="tlsrpt"/m)
        const part = mail.body.split(/Content-Type: application\/tlsrpt\+gzip/)[1]
        assert.match(part, new RegExp(`filename="haraka\\.world\\.test!ee\\.dane\\.test!${noon / 1000 - 43200}!${noon / 1000 + 43199}\\.json\\.gz"`))
        const b64 = part
            .split(/\r?\n\r?\n/)[1]
            .split('--')[0]
            .replace(/\s/g, '')
        assert.deepEqual(JSON.parse(gunzipSync(Buffer.from(b64, 'base64')).toString()), buildReport(yesterday, 'ee.dane.test', results, REPORTER))
    })

    it("DKIM (RFC 8460 5.3): signed by the operator's DKIM plugin for the From domain; the signature verifies with the key in DNS", async () => {
        const [mail] = reportsTo('ee', 'tlsrpt@ee.dane.test')
        const resolver = new Resolver()
        resolver.setServers([`${world.dns.resolverAddress}:${world.dns.port}`])
        const verified = await dkimVerify(Buffer.from(mail.body), {
            resolver: (name: string, type: string) => resolver.resolve(name, type) as Promise<string[][]>,
        })
        assert.equal(verified.results.length, 1, JSON.stringify(verified.results))
        const [sig] = verified.results
        assert.equal(sig.status.result, 'pass', JSON.stringify(sig.status))
        assert.equal(sig.signingDomain, world.dkim.domain)
        assert.equal(sig.selector, world.dkim.selector)
        // the plugin saw at start-up that the reports would be signed: no warning
        assert.doesNotMatch(fs.readFileSync(haraka.logFile, 'utf8'), /will not be DKIM-signed/)
    })

    it('despite TLS failures (RFC 8460 5.3): the report reached the first MX of a domain whose first MX fails DANE', () => {
        assert.equal(reportsTo('fallback1', 'tlsrpt@fallback.dane.test').length, 1)
    })

    it('by HTTPS: POSTed as application/tlsrpt+gzip to the endpoint the record names, PKIX-validated against the given CA', () => {
        assert.equal(posts().length, 1)
        assert.equal(posts()[0].type, 'application/tlsrpt+gzip')
        assert.deepEqual(JSON.parse(gunzipSync(posts()[0].body).toString()), buildReport(yesterday, 'fallback.dane.test', results, REPORTER))
    })

    it("the reports' own deliveries are not reported on, and nothing is sent twice after a restart", async () => {
        const today = new JournalStore(path.join(haraka.dir, 'dane-tlsrpt')).results(utcDay(Date.now()))
        assert.deepEqual(
            today.filter((r) => r.recipientDomain === 'ee.dane.test' || r.recipientDomain === 'fallback.dane.test'),
            [],
        )
        // the restarted plugin's first round has run to its end (it logs that once)
        const firstRounds = () => readDaneLog(daneLog).filter((l) => l.event === 'tlsrpt' && l.domain === '*').length
        const before = firstRounds()
        await haraka.stop()
        await haraka.start()
        await until('the first round of the restarted plugin', () => firstRounds() > before)
        await sleep(500)
        assert.equal(reportsTo('ee', 'tlsrpt@ee.dane.test').length, 1)
        assert.equal(reportsTo('fallback1', 'tlsrpt@fallback.dane.test').length, 1)
        assert.equal(posts().length, 1)
    })
})

describe('end to end: haraka-dane tlsrpt send asks the running Haraka to send a past day now', function () {
    this.timeout(120000)
    let world: ScenarioWorld
    let haraka: Haraka
    let daneLog: string
    const yesterday = utcDay(Date.now() - 86400000)
    const received = (listener: string, rcpt: string) => world.listeners.get(listener)!.received.filter((r) => r.to.some((t) => t.includes(rcpt)))
    const send = async (...args: string[]): Promise<{ code: number; out: string }> => {
        let out = ''
        const code = await main(['tlsrpt', 'send', '--haraka', haraka.dir, '--wait', '30', ...args], { stdout: (s) => (out += s), stderr: (s) => (out += s) })
        return { code, out }
    }

    before(async () => {
        ;({ world, haraka, daneLog } = await worldWithHaraka(
            // not due until two days after the day ends: only a request sends it; the sender looks every second
            `[tlsrpt]\nenabled=true\norganization_name=${REPORTER.organizationName}\ncontact_info=${REPORTER.contactInfo}\nsend_after_minutes=2880\nspread_minutes=0\ncheck_seconds=1\n`,
        ))
        const journal = new JournalStore(path.join(haraka.dir, 'dane-tlsrpt'))
        for (const [id, domain] of [
            ['s1', 'ee.dane.test'],
            ['s2', 'insecure.test'],
        ])
            journal.add(
                sessionResult({
                    id,
                    at: Date.parse(`${yesterday}T08:00:00Z`),
                    recipientDomain: domain,
                    host: `mx.${domain}`,
                    mode: 'opportunistic',
                    tlsaRecords: [],
                    usableRecords: 0,
                    outcome: 'opportunistic-tls',
                })!,
            )
        journal.close()
        await haraka.start()
    })

    after(async () => {
        await haraka?.stop()
        await world?.stop()
        haraka?.cleanup()
    })

    it('a Haraka without DKIM signing is told at start-up that report mail will go out unsigned', () => {
        assert.match(
            fs.readFileSync(haraka.logFile, 'utf8'),
            /TLS report mail from tls-reports@haraka\.world\.test will not be DKIM-signed: Haraka's DKIM plugin \(dkim\) is not in config\/plugins/,
        )
    })

    it('sends nothing before the hour; on request, one domain now, then the rest; never twice; today refused', async () => {
        // the first round (a second after start-up) has run to its end and found nothing due
        const end = Date.now() + 30000
        while (!readDaneLog(daneLog).some((l) => l.event === 'tlsrpt' && l.domain === '*') && Date.now() < end) await sleep(100)
        assert.ok(
            readDaneLog(daneLog).some((l) => l.event === 'tlsrpt' && l.domain === '*'),
            'the sender ran',
        )
        assert.equal(received('ee', 'tlsrpt@ee.dane.test').length, 0)
        const one = await send('--domain', 'ee.dane.test')
        assert.equal(one.code, 0, one.out)
        assert.match(one.out, new RegExp(`^${yesterday} ee\\.dane\\.test → mailto:tlsrpt@ee\\.dane\\.test: sent \\(queued in Haraka`, 'm'))
        const until = Date.now() + 30000
        while (received('ee', 'tlsrpt@ee.dane.test').length === 0 && Date.now() < until) await sleep(100)
        assert.equal(received('ee', 'tlsrpt@ee.dane.test').length, 1)
        assert.equal(received('insecure', 'tlsrpt@insecure.test').length, 0, 'only the domain asked for')
        const rest = await send()
        assert.equal(rest.code, 0, rest.out)
        assert.match(rest.out, /insecure\.test → mailto:tlsrpt@insecure\.test: sent/)
        assert.doesNotMatch(rest.out, /ee\.dane\.test/)
        const again = await send()
        assert.match(again.out, /nothing to send now \(every destination already has its report\)/)
        const today = await send('--date', 'today')
        assert.equal(today.code, 3)
        assert.match(today.out, /not over yet/)
    })
})
