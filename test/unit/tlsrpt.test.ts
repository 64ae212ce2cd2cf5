// TLS reporting (RFC 8460), the pure parts and the journal: which TXT record is a policy (section 3),
// what an attempt counts as (section 4.3, Postfix's rule of one result per TLS session), the report's
// JSON (section 4.4) and file name (5.1), and results kept across a restart, counted once.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseTlsrptRecords, reportUri, type TlsrptPolicy } from '../../lib/tlsrpt/policy-record'
import { sessionResult, type AttemptFacts, type SessionResult } from '../../lib/tlsrpt/result'
import { buildReport, dayRange, reportFilename, reportId, utcDay } from '../../lib/tlsrpt/report'
import { JournalStore } from '../../lib/tlsrpt/journal'
import { resultOfAttempt, resultOfSkippedHost, type AttemptLike } from '../../lib/tlsrpt/from-attempt'
import { tlsaFromText } from '../../lib/tlsa'
import { unsignedReason, type DkimSetup } from '../../lib/tlsrpt/dkim-check'
import type { HostDecision } from '../../lib/policy'
import { gzipReport, reportMessage } from '../../lib/tlsrpt/message'
import { gunzipSync } from 'node:zlib'

const EE = '3 1 1 aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899'
const EE2 = '3 1 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff'
const REPORTER = { organizationName: 'Example Sender', contactInfo: 'tls-reports@sender.example' }
const NOON = Date.parse('2026-11-24T12:00:00Z')

function facts(f: Partial<AttemptFacts>): AttemptFacts {
    return {
        id: 'id-1',
        at: NOON,
        recipientDomain: 'dest.example',
        host: 'mx.dest.example',
        mode: 'dane',
        tlsaBase: 'mx.dest.example',
        tlsaRecords: [EE],
        usableRecords: 1,
        address: '192.0.2.25',
        localAddress: '198.51.100.1',
        outcome: 'verified',
        ...f,
    }
}

/** the policy the records give, failing the test when they give none */
function policyOf(txts: string[]): TlsrptPolicy {
    const r = parseTlsrptRecords(txts)
    assert.equal(r.kind, 'policy', r.kind === 'none' ? r.reason : '')
    return (r as { policy: TlsrptPolicy }).policy
}

describe('TLSRPT (RFC 8460)', () => {
    describe('the _smtp._tls record (section 3)', () => {
        it('reads one record with several destinations, spaces around the delimiters, and unknown fields ignored', () => {
            const p = policyOf(['v=TLSRPTv1 ; rua=mailto:tls@dest.example , https://report.dest.example/v1/tlsrpt ; ext_1=x;'])
            assert.deepEqual(
                p.rua.map((u) => u.uri),
                ['mailto:tls@dest.example', 'https://report.dest.example/v1/tlsrpt'],
            )
            assert.equal(p.rua[0].scheme === 'mailto' && p.rua[0].address, 'tls@dest.example')
        })
        it('discards records that do not begin with v=TLSRPTv1; and needs exactly one left', () => {
            assert.equal(parseTlsrptRecords(['v=spf1 -all', 'v=TLSRPTv1;rua=mailto:a@b.example']).kind, 'policy')
            const two = parseTlsrptRecords(['v=TLSRPTv1;rua=mailto:a@b.example', 'v=TLSRPTv1;rua=mailto:c@d.example'])
            assert.equal(two.kind, 'none')
            assert.match(two.kind === 'none' ? two.reason : '', /2 records/)
            // the version is case-sensitive and needs its delimiter
            assert.equal(parseTlsrptRecords(['v=tlsrptv1;rua=mailto:a@b.example']).kind, 'none')
            assert.equal(parseTlsrptRecords(['v=TLSRPTv1rua=mailto:a@b.example']).kind, 'none')
            assert.equal(parseTlsrptRecords([]).kind, 'none')
        })
        it('treats a malformed record as no policy, and a record with no usable destination too', () => {
            for (const bad of ['v=TLSRPTv1;', 'v=TLSRPTv1;rua=', 'v=TLSRPTv1;rua=mailto:a@b.example;junk', 'v=TLSRPTv1;rua=mailto:a@b.example;x=a b'])
                assert.equal(parseTlsrptRecords([bad]).kind, 'none', bad)
            // the record sys4's reporter crashed on: an address without a scheme
            const noScheme = parseTlsrptRecords(['v=TLSRPTv1; rua=postmaster@dest.example'])
            assert.equal(noScheme.kind, 'none')
            assert.match(noScheme.kind === 'none' ? noScheme.reason : '', /no destination/)
        })
        it('keeps the usable destinations beside one it cannot use', () => {
            const p = policyOf(['v=TLSRPTv1;rua=ftp://x.example/r,mailto:tls@dest.example'])
            assert.deepEqual(
                p.rua.map((u) => u.uri),
                ['mailto:tls@dest.example'],
            )
            assert.match(p.ignored[0], /ftp/)
        })
        it('takes a percent-encoded mailto address and refuses one that is not a single address', () => {
            const u = reportUri('mailto:tls%2Breports@dest.example')
            assert.ok(typeof u !== 'string' && u.scheme === 'mailto' && u.address === 'tls+reports@dest.example')
            assert.equal(typeof reportUri('mailto:a@b.example%0ABcc:c@d.example'), 'string')
            assert.equal(typeof reportUri('mailto:a@b.example%2Cc@d.example'), 'string')
            assert.equal(typeof reportUri('https://user:pw@r.example/'), 'string')
            assert.equal(typeof reportUri('https:r.example'), 'string')
        })
    })

    describe('what an attempt counts as (section 4.3)', () => {
        it('a verified DANE session is a success under the tlsa policy of its TLSA base domain', () => {
            const r = sessionResult(facts({ tlsaRecords: [EE2, EE], usableRecords: 2 }))!
            assert.equal(r.ok, true)
            assert.deepEqual(r.policy, { type: 'tlsa', strings: [EE2, EE].sort(), domain: 'mx.dest.example', mxHosts: ['mx.dest.example'] })
        })
        it('a usable record beside an unusable one is recoverable: a success, not a failure', () => {
            const r = sessionResult(facts({ tlsaRecords: [EE, '4 1 1 00'], usableRecords: 1 }))!
            assert.equal(r.ok, true)
        })
        it('every record unusable is tlsa-invalid, even when the message went out over TLS', () => {
            const r = sessionResult(facts({ mode: 'encrypt', tlsaRecords: ['4 1 1 00'], usableRecords: 0, outcome: 'unauthenticated-tls' }))!
            assert.equal(r.ok, false)
            assert.equal(r.failure?.resultType, 'tlsa-invalid')
            assert.equal(r.failure?.failureReasonCode, 'all-TLSA-records-unusable')
            assert.equal(r.policy.type, 'tlsa')
        })
        it('all records unusable and no STARTTLS offered: the missing STARTTLS is the failure reported', () => {
            const r = sessionResult(
                facts({ mode: 'encrypt', tlsaRecords: ['4 1 1 00'], usableRecords: 0, outcome: 'failed', resultType: 'starttls-not-supported' }),
            )!
            assert.equal(r.failure?.resultType, 'starttls-not-supported')
            assert.equal(r.policy.type, 'tlsa')
        })
        it('a failed DANE session carries the failure details', () => {
            const r = sessionResult(facts({ outcome: 'failed', resultType: 'validation-failure', reasonCode: 'no-match', helo: 'mx.dest.example' }))!
            assert.equal(r.ok, false)
            assert.deepEqual(r.failure, {
                resultType: 'validation-failure',
                sendingMtaIp: '198.51.100.1',
                receivingMxHostname: 'mx.dest.example',
                receivingMxHelo: 'mx.dest.example',
                receivingIp: '192.0.2.25',
                failureReasonCode: 'no-match',
            })
        })
        it('a host skipped for a bogus TLSA lookup is dnssec-invalid; dane-only without TLSA is dane-required', () => {
            const bogus = sessionResult(
                facts({ outcome: 'skipped', mode: 'skip', resultType: 'dnssec-invalid', tlsaRecords: [], usableRecords: 0, address: undefined }),
            )!
            assert.equal(bogus.failure?.resultType, 'dnssec-invalid')
            assert.equal(bogus.policy.type, 'tlsa')
            const required = sessionResult(facts({ outcome: 'skipped', mode: 'skip', resultType: 'dane-required', tlsaRecords: [], usableRecords: 0 }))!
            assert.equal(required.failure?.resultType, 'dane-required')
            assert.deepEqual(required.policy, { type: 'no-policy-found', strings: [], domain: 'dest.example', mxHosts: [] })
        })
        it('no TLS session, no result: plaintext without a policy, a connection lost with no TLS reason, other skips', () => {
            assert.equal(sessionResult(facts({ mode: 'opportunistic', tlsaRecords: [], usableRecords: 0, outcome: 'opportunistic-plaintext' })), null)
            assert.equal(sessionResult(facts({ outcome: 'failed' })), null)
            assert.equal(sessionResult(facts({ outcome: 'skipped', mode: 'skip' })), null)
        })
        it('opportunistic TLS without a policy is a no-policy-found success for the recipient domain', () => {
            const r = sessionResult(facts({ mode: 'opportunistic', tlsaRecords: [], usableRecords: 0, outcome: 'opportunistic-tls' }))!
            assert.equal(r.ok, true)
            assert.deepEqual(r.policy, { type: 'no-policy-found', strings: [], domain: 'dest.example', mxHosts: [] })
        })
    })

    describe("from the plugin's own records", () => {
        const attempt = (over: Partial<AttemptLike> = {}): AttemptLike => ({
            id: 'attempt-1',
            ctx: {
                domain: 'dest.example',
                host: 'mx.dest.example',
                mode: 'dane',
                tlsaBase: 'mx.dest.example',
                records: [tlsaFromText(EE), tlsaFromText('4 1 1 00')],
            },
            address: '192.0.2.25',
            localAddress: '',
            guard: { helo: 'mx.dest.example' },
            ...over,
        })
        it("an attempt keeps its id, the verifier's failure code, the usable count; an unknown local address is left out", () => {
            const r = resultOfAttempt(
                attempt({ verify: { authenticated: false, failure: { code: 'no-match' } }, failure: { resultType: 'validation-failure' } }),
                'failed',
                NOON,
            )!
            assert.equal(r.id, 'attempt-1')
            assert.equal(r.failure?.failureReasonCode, 'no-match')
            assert.equal(r.failure?.sendingMtaIp, undefined)
            assert.equal(r.failure?.receivingMxHelo, 'mx.dest.example')
            assert.deepEqual(r.policy.strings, ['3 1 1 aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899', '4 1 1 00'].sort())
            // one usable record of two: a verified session is a success
            assert.equal(resultOfAttempt(attempt({ verify: { authenticated: true } }), 'verified', NOON)!.ok, true)
        })
        it('a host skipped for a bogus TLSA answer is dnssec-invalid; one skipped for a bogus address answer is not a TLS result', () => {
            const host = (state: 'failed' | 'not-looked-up'): HostDecision => ({
                name: 'mx.dest.example',
                preference: 10,
                addresses: [],
                addressSecure: state === 'failed',
                referenceNames: [],
                tlsa: { state, records: [], usable: 0 },
                mode: 'skip',
                reason: 'x',
                resultType: 'dnssec-invalid',
            })
            assert.equal(resultOfSkippedHost('dest.example', host('failed'), undefined, NOON)!.failure?.resultType, 'dnssec-invalid')
            assert.equal(resultOfSkippedHost('dest.example', host('not-looked-up'), undefined, NOON), null)
        })
    })

    describe('the report (sections 4.4 and 5.1)', () => {
        const results: SessionResult[] = [
            sessionResult(facts({ id: 'a' }))!,
            sessionResult(facts({ id: 'b' }))!,
            sessionResult(facts({ id: 'c', outcome: 'failed', resultType: 'validation-failure', reasonCode: 'no-match' }))!,
            sessionResult(facts({ id: 'd', outcome: 'failed', resultType: 'validation-failure', reasonCode: 'no-match' }))!,
            sessionResult(
                facts({ id: 'e', mode: 'opportunistic', host: 'mx2.dest.example', tlsaRecords: [], usableRecords: 0, outcome: 'opportunistic-tls' }),
            )!,
            // the same result again, another domain, another day: not counted
            sessionResult(facts({ id: 'a' }))!,
            sessionResult(facts({ id: 'f', recipientDomain: 'other.example' }))!,
            sessionResult(facts({ id: 'g', at: NOON + 86400000 }))!,
        ]
        it('has exactly the RFC 8460 4.4 fields and counts, whatever order the results came in', () => {
            const report = buildReport('2026-11-24', 'dest.example', results, REPORTER)
            assert.deepEqual(report, {
                'organization-name': 'Example Sender',
                'date-range': { 'start-datetime': '2026-11-24T00:00:00Z', 'end-datetime': '2026-11-24T23:59:59Z' },
                'contact-info': 'tls-reports@sender.example',
                'report-id': '2026-11-24.dest.example@sender.example',
                policies: [
                    {
                        policy: { 'policy-type': 'no-policy-found', 'policy-string': [], 'policy-domain': 'dest.example', 'mx-host': [] },
                        summary: { 'total-successful-session-count': 1, 'total-failure-session-count': 0 },
                    },
                    {
                        policy: { 'policy-type': 'tlsa', 'policy-string': [EE], 'policy-domain': 'mx.dest.example', 'mx-host': ['mx.dest.example'] },
                        summary: { 'total-successful-session-count': 2, 'total-failure-session-count': 2 },
                        'failure-details': [
                            {
                                'result-type': 'validation-failure',
                                'sending-mta-ip': '198.51.100.1',
                                'receiving-mx-hostname': 'mx.dest.example',
                                'receiving-ip': '192.0.2.25',
                                'failed-session-count': 2,
                                'failure-reason-code': 'no-match',
                            },
                        ],
                    },
                ],
            })
            assert.deepEqual(buildReport('2026-11-24', 'dest.example', [...results].reverse(), REPORTER), report)
        })
        it('is null for a domain with nothing that day', () => {
            assert.equal(buildReport('2026-11-23', 'dest.example', results, REPORTER), null)
        })
        it('names the file sender!policy-domain!begin!end.json.gz over one full UTC day, and has a msg-id report-id', () => {
            assert.equal(reportFilename('2026-11-24', 'dest.example', REPORTER), 'sender.example!dest.example!1795478400!1795564799.json.gz')
            assert.equal(dayRange('2026-11-24').endS - dayRange('2026-11-24').startS, 86399)
            assert.match(`<${reportId('2026-11-24', 'dest.example', REPORTER)}>`, /^<[^<>@\s]+@[^<>@\s]+>$/)
            assert.throws(() => dayRange('2026-13-45'), /not a day/)
            assert.equal(utcDay(Date.parse('2026-11-24T23:59:59.999Z')), '2026-11-24')
        })
    })

    describe('the journal', () => {
        let dir: string
        beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-tlsrpt-'))))
        afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

        it('keeps results across a restart, counts a result written twice once, and skips a torn last line', () => {
            const a = new JournalStore(dir)
            const r1 = sessionResult(facts({ id: 'one' }))!
            const r2 = sessionResult(facts({ id: 'two', outcome: 'failed', resultType: 'certificate-expired' }))!
            a.add(r1)
            a.add(r2)
            a.close()
            // another process (a restarted Haraka, a second node) appends to the same day
            // a line torn by a crash, then another process appends: the torn line does not swallow the next one
            fs.appendFileSync(a.fileOf('2026-11-24'), '{"id":"torn","at":17')
            const b = new JournalStore(dir)
            b.add(r1)
            b.add(sessionResult(facts({ id: 'three' }))!)
            // lines no result is made of: a bad time, an unknown policy type
            fs.appendFileSync(
                b.fileOf('2026-11-24'),
                `\n${JSON.stringify({ ...r1, id: 'bad-at', at: 1e20 })}\n${JSON.stringify({ ...r1, id: 'bad-type', policy: { ...r1.policy, type: 'x' } })}\n`,
            )
            assert.deepEqual(
                b.results('2026-11-24').map((r) => r.id),
                ['one', 'two', 'three'],
            )
            assert.deepEqual(b.days(), ['2026-11-24'])
            const report = buildReport('2026-11-24', 'dest.example', b.results('2026-11-24'), REPORTER)!
            assert.equal(report.policies[0].summary['total-successful-session-count'], 2)
            assert.equal(report.policies[0].summary['total-failure-session-count'], 1)
            b.close()
        })
        it('never throws when it cannot write (nor on a result with no valid time), and says so at most once a minute', () => {
            const blocker = path.join(dir, 'file')
            fs.writeFileSync(blocker, '')
            const faults: string[] = []
            const j = new JournalStore(path.join(blocker, 'sub'), (m) => faults.push(m))
            j.add(sessionResult(facts({}))!)
            j.add(sessionResult(facts({ id: 'x2' }))!)
            j.add({ ...sessionResult(facts({ id: 'x3' }))!, at: NaN })
            assert.equal(faults.length, 1)
            assert.match(faults[0], /not kept.*1 result\(s\) lost/)
        })
    })
})

describe('TLSRPT report mail (RFC 8460 5.3)', () => {
    const report = buildReport('2026-11-24', 'dest.example', [sessionResult(facts({ id: 'm1' }))!], REPORTER)!
    const mail = {
        from: 'tls-reports@sender.example',
        to: 'tlsrpt@dest.example',
        domain: 'dest.example',
        submitter: 'sender.example',
        reportId: reportId('2026-11-24', 'dest.example', REPORTER),
        filename: reportFilename('2026-11-24', 'dest.example', REPORTER),
        gz: gzipReport(report),
        date: new Date(Date.UTC(2026, 10, 25, 3, 7, 9)),
        messageId: 'r1.2026-11-24.dest.example@sender.example',
        boundary: 'tlsrpt-b1',
    }

    it('has the headers of 5.3, TLS-Required: No (RFC 8689), and a multipart/report of report-type tlsrpt', () => {
        const text = reportMessage(mail)
        const [head] = text.split('\r\n\r\n')
        const h = new Map(head.split('\r\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 2)]))
        assert.equal(h.get('subject'), 'Report Domain: dest.example Submitter: sender.example Report-ID: <2026-11-24.dest.example@sender.example>')
        assert.equal(h.get('tls-report-domain'), 'dest.example')
        assert.equal(h.get('tls-report-submitter'), 'sender.example')
        assert.equal(h.get('tls-required'), 'No')
        assert.equal(h.get('date'), 'Wed, 25 Nov 2026 03:07:09 +0000')
        assert.equal(h.get('content-type'), 'multipart/report; report-type="tlsrpt"; boundary="tlsrpt-b1"')
        assert.ok(!/[^\r]\n/.test(text), 'every line ends in CRLF')
    })

    it('carries the report gzipped as application/tlsrpt+gzip under its 5.1 file name, and it decodes to the same JSON', () => {
        const text = reportMessage(mail)
        const parts = text.split('--tlsrpt-b1')
        assert.equal(parts.length, 4) // preamble, text, report, the closing "--"
        assert.match(parts[1], /Content-Type: text\/plain/)
        const [phead, pbody] = parts[2].split('\r\n\r\n')
        assert.match(phead, /Content-Type: application\/tlsrpt\+gzip/)
        assert.match(phead, /Content-Transfer-Encoding: base64/)
        assert.match(phead, /Content-Disposition: attachment; filename="sender\.example!dest\.example!1795478400!1795564799\.json\.gz"/)
        assert.ok(pbody.split('\r\n').every((l) => l.length <= 76))
        assert.deepEqual(JSON.parse(gunzipSync(Buffer.from(pbody.replace(/\r\n/g, ''), 'base64')).toString()), report)
        assert.equal(parts[3], '--\r\n')
    })

    it('refuses a value that would break a header', () => {
        assert.throws(() => reportMessage({ ...mail, to: 'a@dest.example\r\nBcc: x@evil.example' }), /line break/)
    })
})

describe('TLS report mail and DKIM (RFC 8460 5.3)', () => {
    const setup = (over: Partial<DkimSetup> = {}): DkimSetup => ({
        plugins: ['relay', 'dkim', 'dane'],
        sign: { enabled: true },
        defaultKey: false,
        keyDir: (d) => d === 'example.net',
        ...over,
    })
    it("says why report mail would go out unsigned, as Haraka's DKIM plugin would look for its key", () => {
        assert.equal(unsignedReason('tls@example.net', setup()), undefined)
        assert.equal(unsignedReason('tls@mail.example.net', setup()), undefined, "a parent domain's key serves, as the DKIM plugin walks up")
        assert.match(unsignedReason('tls@example.net', setup({ plugins: ['relay', 'dane'] }))!, /not in config\/plugins/)
        assert.match(unsignedReason('tls@example.net', setup({ sign: { enabled: false } }))!, /\[sign\] enabled is not true/)
        assert.match(unsignedReason('tls@other.org', setup())!, /no DKIM key for other\.org/)
        assert.equal(unsignedReason('tls@other.org', setup({ sign: { enabled: true, domain: 'other.org', selector: 's1' }, defaultKey: true })), undefined)
        // as the DKIM plugin, never a single-label key directory (config/dkim/com)
        assert.match(unsignedReason('tls@example.com', setup({ keyDir: (d) => d === 'com' }))!, /no DKIM key for example\.com/)
    })
})
