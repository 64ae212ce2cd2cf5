// Issue 14 (TLSRPT, RFC 8460), recording and reports: a real Haraka with the plugin delivers to a
// verified DANE domain, a domain whose first MX fails DANE, a domain whose TLSA lookup is bogus
// (SERVFAIL), an insecure domain and a domain with only unusable TLSA records, each publishing a
// _smtp._tls record in the real signed world; Haraka is ended in the middle of the day by SIGTERM (which
// Haraka 3.3 does not handle unless it is PID 1: as abrupt as a crash) and started again; then
// `haraka-dane tlsrpt show` builds the day's reports from what was kept. Each report must count
// exactly the attempts the delivery log shows, nothing lost or counted twice across the restart.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Haraka } from '../world/haraka'
import { readDaneLog } from '../world/dane-log'
import { ScenarioWorld, worldWithHaraka } from '../world/scenarios'
import { main } from '../../bin/haraka-dane'
import { JournalStore } from '../../lib/tlsrpt/journal'
import { utcDay, type TlsrptReport } from '../../lib/tlsrpt/report'

interface Shown {
    domain: string
    destinations?: string[]
    not_sent?: string
    filename: string
    report: TlsrptReport
}

const DOMAINS = ['ee.dane.test', 'fallback.dane.test', 'servfail.dane.test', 'insecure.test', 'unusable.dane.test']

describe('end to end: TLS reporting (RFC 8460): results kept per attempt, reports built from them', function () {
    this.timeout(120000)
    let world: ScenarioWorld
    let haraka: Haraka
    let daneLog: string
    let shown: Shown[]
    const day = utcDay(Date.now())

    const attemptsFor = (domain: string) => readDaneLog(daneLog).filter((l) => l.domain === domain && l.event === 'attempt')
    const reportOf = (domain: string): Shown => shown.find((s) => s.domain === domain)!

    before(async () => {
        ;({ world, haraka, daneLog } = await worldWithHaraka(
            '[main]\npolicy=dane\n[tlsrpt]\nenabled=true\norganization_name=Test World Sender\ncontact_info=tls-reports@haraka.world.test\n',
        ))
        haraka.writeConfigFile('tls.ini', `[outbound]\n${world.redis.tlsIni()}`)
        await haraka.start()
        const ids = new Map<string, string>()
        for (const d of DOMAINS) ids.set(d, await haraka.send(`postmaster@${d}`, { subject: `tlsrpt ${d}` }))
        await Promise.all(DOMAINS.map((d) => haraka.waitFor(ids.get(d)!, ['delivered', 'deferred', 'bounce'], 60000)))
        // a restart in the middle of the day, then one more delivery to the DANE domain
        await haraka.stop()
        await haraka.start()
        const again = await haraka.send('postmaster@ee.dane.test', { subject: 'tlsrpt after restart' })
        await haraka.waitFor(again, ['delivered', 'deferred', 'bounce'], 60000)
        let out = ''
        const code = await main(['tlsrpt', 'show', '--haraka', haraka.dir, '--date', 'today', '--json', '-q'], {
            stdout: (s: string) => (out += s),
            stderr: () => undefined,
        })
        assert.equal(code, 0)
        shown = JSON.parse(out) as Shown[]
    })

    after(async () => {
        await haraka?.stop()
        await world?.stop()
        haraka?.cleanup()
    })

    it('every report has the RFC 8460 4.4 head: one UTC day, who reports, a msg-id report id; the file name of 5.1', () => {
        assert.deepEqual(shown.map((s) => s.domain).sort(), [...DOMAINS].sort())
        for (const s of shown) {
            assert.equal(s.report['organization-name'], 'Test World Sender')
            assert.equal(s.report['contact-info'], 'tls-reports@haraka.world.test')
            assert.deepEqual(s.report['date-range'], { 'start-datetime': `${day}T00:00:00Z`, 'end-datetime': `${day}T23:59:59Z` })
            assert.equal(s.report['report-id'], `${day}.${s.domain}@haraka.world.test`)
            const start = Date.parse(`${day}T00:00:00Z`) / 1000
            assert.equal(s.filename, `haraka.world.test!${s.domain}!${start}!${start + 86399}.json.gz`)
        }
    })

    it('a verified DANE domain: its successes under the tlsa policy of the MX host, across the restart, each once', () => {
        const r = reportOf('ee.dane.test')
        assert.deepEqual(r.destinations, ['mailto:tlsrpt@ee.dane.test'])
        const delivered = attemptsFor('ee.dane.test').filter((l) => l.outcome === 'verified')
        assert.equal(delivered.length, 2)
        assert.equal(r.report.policies.length, 1)
        const p = r.report.policies[0]
        assert.equal(p.policy['policy-type'], 'tlsa')
        assert.deepEqual(p.policy['policy-string'], [delivered[0].matched])
        assert.equal(p.policy['policy-domain'], 'mx.ee.dane.test')
        assert.deepEqual(p.policy['mx-host'], ['mx.ee.dane.test'])
        assert.deepEqual(p.summary, { 'total-successful-session-count': 2, 'total-failure-session-count': 0 })
        assert.equal(p['failure-details'], undefined)
    })

    it('the first MX failing DANE: a failure with its details at that host, a success at the second; both rua joined from two strings', () => {
        const r = reportOf('fallback.dane.test')
        assert.deepEqual(r.destinations, ['https://127.0.0.42/tlsrpt', 'mailto:tlsrpt@fallback.dane.test'])
        const byHost = new Map(r.report.policies.map((p) => [p.policy['mx-host'][0], p]))
        assert.deepEqual(byHost.get('mx2.fallback.dane.test')!.summary, { 'total-successful-session-count': 1, 'total-failure-session-count': 0 })
        const first = byHost.get('mx1.fallback.dane.test')!
        assert.deepEqual(first.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': 1 })
        const [f] = first['failure-details']!
        assert.equal(f['result-type'], 'validation-failure')
        assert.equal(f['receiving-mx-hostname'], 'mx1.fallback.dane.test')
        assert.equal(f['receiving-ip'], '127.0.0.13')
        assert.match(String(f['sending-mta-ip']), /^127\.\d+\.\d+\.\d+$/)
        assert.equal(typeof f['receiving-mx-helo'], 'string')
        assert.equal(f['failure-reason-code'], 'no-match')
        assert.equal(f['failed-session-count'], 1)
    })

    it('a bogus TLSA answer: dnssec-invalid for the skipped host, once per attempt the log shows', () => {
        const r = reportOf('servfail.dane.test')
        assert.deepEqual(r.destinations, ['mailto:tlsrpt@servfail.dane.test'])
        const skipped = attemptsFor('servfail.dane.test').filter((l) => l.outcome === 'skipped')
        assert.ok(skipped.length >= 1)
        const [p] = r.report.policies
        assert.equal(p.policy['policy-type'], 'tlsa')
        assert.deepEqual(p.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': skipped.length })
        assert.equal(p['failure-details']![0]['result-type'], 'dnssec-invalid')
        assert.equal(p['failure-details']![0]['receiving-mx-hostname'], 'mx.servfail.dane.test')
    })

    it('an insecure domain: a no-policy-found success with the recipient domain as policy domain', () => {
        const r = reportOf('insecure.test')
        assert.deepEqual(r.destinations, ['mailto:tlsrpt@insecure.test'])
        assert.deepEqual(r.report.policies, [
            {
                policy: { 'policy-type': 'no-policy-found', 'policy-string': [], 'policy-domain': 'insecure.test', 'mx-host': [] },
                summary: { 'total-successful-session-count': 1, 'total-failure-session-count': 0 },
            },
        ])
    })

    it('only unusable TLSA records: tlsa-invalid although the message went out over TLS; two TLSRPT records mean no report is sent', () => {
        const r = reportOf('unusable.dane.test')
        assert.equal(r.destinations, undefined)
        assert.match(r.not_sent ?? '', /2 records begin with "v=TLSRPTv1;"/)
        const [p] = r.report.policies
        assert.equal(p.policy['policy-type'], 'tlsa')
        assert.deepEqual(p.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': 1 })
        assert.equal(p['failure-details']![0]['result-type'], 'tlsa-invalid')
        assert.equal(p['failure-details']![0]['failure-reason-code'], 'all-TLSA-records-unusable')
    })

    it('the journal holds one result per attempt the log shows, each id once (nothing lost or doubled by the restart)', () => {
        const journal = new JournalStore(path.join(haraka.dir, 'dane-tlsrpt'))
        const results = journal.results(day)
        // as written, before the reader's own de-duplication: no attempt wrote twice
        const raw = fs
            .readFileSync(journal.fileOf(day), 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => (JSON.parse(l) as { id: string }).id)
        assert.equal(raw.length, results.length)
        assert.equal(new Set(raw).size, raw.length)
        for (const d of DOMAINS) {
            const tls = attemptsFor(d).filter((l) => ['verified', 'unauthenticated-tls', 'opportunistic-tls', 'failed', 'skipped'].includes(l.outcome ?? ''))
            // connection failures without a TLS result type are not TLS results (RFC 8460 4.3.4)
            const counted = tls.filter((l) => l.outcome !== 'failed' || l.result_type)
            assert.equal(results.filter((r) => r.recipientDomain === d).length, counted.length, d)
        }
    })
})
