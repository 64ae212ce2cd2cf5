// Sending a day's TLS reports (RFC 8460 5): every destination once, failures tried again with backoff
// for a day (5.5), nothing sent twice across a restart or by a second process on the same store. The
// transports and the TXT lookup are stand-ins here (the HTTPS transport is tested against a real
// endpoint in test/e2e/tlsrpt-https.test.ts); the store is the real one, on disk.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { gunzipSync } from 'node:zlib'
import { sessionResult, type SessionResult } from '../../lib/tlsrpt/result'
import { buildReport } from '../../lib/tlsrpt/report'
import { backoffMs, destinationState, sendDueReports, RETRY_FOR_MS, type SendDeps } from '../../lib/tlsrpt/send'
import { FileSentStore } from '../../lib/tlsrpt/journal'
import { txtAnswer } from '../world/tlsrpt-fixtures'
import { CLAIM_MS, dayResultsOf } from '../../lib/tlsrpt/store'

const DAY = '2026-11-24'
const AFTER = Date.parse('2026-11-25T03:00:00Z')
const REPORTER = { organizationName: 'Example Sender', contactInfo: 'tls-reports@sender.example' }

function result(id: string, domain: string, ok = true): SessionResult {
    return sessionResult({
        id,
        at: Date.parse(`${DAY}T12:00:00Z`),
        recipientDomain: domain,
        host: `mx.${domain}`,
        mode: 'dane',
        tlsaBase: `mx.${domain}`,
        tlsaRecords: ['3 1 1 aabb'],
        usableRecords: 1,
        outcome: ok ? 'verified' : 'failed',
        resultType: ok ? undefined : 'validation-failure',
    })!
}

const txt = txtAnswer

describe('TLSRPT sending (RFC 8460 5)', () => {
    let dir: string
    let now: number
    let mails: { to: string; message: string }[]
    let posts: { url: string; gz: Buffer }[]
    let httpsOk: boolean
    const records: Record<string, string[] | 'failed' | 'nxdomain'> = {
        '_smtp._tls.a.example': ['v=TLSRPTv1; rua=mailto:tlsrpt@a.example,https://r.a.example/tlsrpt'],
        '_smtp._tls.b.example': 'nxdomain',
        '_smtp._tls.c.example': 'failed',
    }
    let n = 0
    const deps = (): SendDeps => ({
        reporter: REPORTER,
        from: 'tls-reports@sender.example',
        lookupTxt: async (name) => txt(name, records[name] ?? 'nxdomain'),
        sendMail: async (to, message) => {
            mails.push({ to, message })
            return { ok: true, detail: '250 queued' }
        },
        postHttps: async (url, gz) => {
            posts.push({ url, gz })
            return httpsOk ? { ok: true, detail: 'HTTP 200' } : { ok: false, detail: 'HTTP 503 Service Unavailable' }
        },
        now: () => now,
        unique: () => `u${++n}`,
    })
    const results = [result('1', 'a.example'), result('2', 'a.example', false), result('3', 'b.example'), result('4', 'c.example')]

    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-tlsrpt-send-'))
        now = AFTER
        mails = []
        posts = []
        httpsOk = true
    })
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

    it('sends each report to every destination of its record, the same report by mail and by HTTPS; none where there is no record', async () => {
        const out = await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), new FileSentStore(dir))
        assert.deepEqual(
            out.map((o) => [o.domain, o.sent.map((s) => [s.uri, s.ok]), o.skipped]),
            [
                [
                    'a.example',
                    [
                        ['mailto:tlsrpt@a.example', true],
                        ['https://r.a.example/tlsrpt', true],
                    ],
                    undefined,
                ],
                ['b.example', [], 'no TXT record'],
                ['c.example', [], 'TXT lookup for _smtp._tls.c.example failed (servfail); tried again later'],
            ],
        )
        const expected = buildReport(DAY, 'a.example', results, REPORTER)
        assert.deepEqual(JSON.parse(gunzipSync(posts[0].gz).toString()), expected)
        assert.equal(mails.length, 1)
        assert.equal(mails[0].to, 'tlsrpt@a.example')
        assert.match(mails[0].message, /\r\nTLS-Report-Domain: a\.example\r\n/)
        assert.match(
            mails[0].message,
            /\r\nSubject: Report Domain: a\.example Submitter: sender\.example Report-ID: <2026-11-24\.a\.example@sender\.example>\r\n/,
        )
    })

    it('never sends a delivered report again, also after a restart (a new store on the same directory)', async () => {
        await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), new FileSentStore(dir))
        now += 86400000
        const again = await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), new FileSentStore(dir))
        assert.deepEqual(again.find((o) => o.domain === 'a.example')!.sent, [])
        assert.equal(mails.length + posts.length, 2)
    })

    it('a failed destination is tried again after its backoff, doubling, and given up 24 hours after the first try; the others are not resent', async () => {
        httpsOk = false
        const store = new FileSentStore(dir)
        await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), store)
        assert.equal(posts.length, 1)
        now += backoffMs(1) - 1000
        await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), store)
        assert.equal(posts.length, 1, 'not before its backoff')
        now += 1000
        await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), store)
        assert.equal(posts.length, 2)
        assert.equal(mails.length, 1, 'the delivered mail is not sent again')
        assert.equal(backoffMs(2), 2 * backoffMs(1))
        assert.equal(backoffMs(20), 4 * 3600_000)
        now = AFTER + RETRY_FOR_MS + 1
        assert.equal(destinationState(await store.deliveries(DAY, 'a.example'), 'https://r.a.example/tlsrpt', now), 'expired')
        await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), store)
        assert.equal(posts.length, 2, 'given up')
    })

    it('a report another process holds is left to it; a claim older than its time is taken over', async () => {
        const other = new FileSentStore(dir)
        assert.ok(await other.claim(DAY, 'a.example', now))
        const held = await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), new FileSentStore(dir), 'a.example')
        assert.deepEqual(held, [{ domain: 'a.example', sent: [], skipped: 'another process is sending this report', pending: true }])
        now += CLAIM_MS + 1
        const taken = await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), new FileSentStore(dir), 'a.example')
        assert.equal(taken[0].sent.length, 2)
        // released after sending
        assert.ok(await new FileSentStore(dir).claim(DAY, 'a.example', now))
    })

    it('a claim is released only by its holder: a slow first sender cannot free the claim of the one that took over', async () => {
        const a = new FileSentStore(dir)
        const b = new FileSentStore(dir)
        const ta = (await a.claim(DAY, 'a.example', now))!
        const tb = (await b.claim(DAY, 'a.example', now + CLAIM_MS + 1))!
        assert.ok(tb && tb !== ta)
        await a.release(DAY, 'a.example', ta)
        assert.equal(await new FileSentStore(dir).claim(DAY, 'a.example', now + CLAIM_MS + 2), undefined, "b's claim still holds")
        await b.release(DAY, 'a.example', tb)
        assert.ok(await new FileSentStore(dir).claim(DAY, 'a.example', now + CLAIM_MS + 3))
    })

    it('a delivery that cannot be written is not sent again: the claim stays held meanwhile, and the delivery is written once the disk takes it', async () => {
        const store = new FileSentStore(dir)
        // a dangling link into a directory that does not exist: reads find nothing, appends fail (as on a full disk)
        const link = path.join(dir, `sent-${DAY}.jsonl`)
        fs.symlinkSync(path.join(dir, 'gone', 'sent'), link)
        const first = await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), store, 'a.example')
        assert.match(first[0].sent[0].detail, /not recorded in the store/)
        assert.equal(first[0].pending, true)
        assert.deepEqual([mails.length, posts.length], [1, 0], 'stopped after the delivery it could not write')
        assert.equal(await new FileSentStore(dir).claim(DAY, 'a.example', now), undefined, 'no other process may send it meanwhile')
        // this process takes its claim up again and goes on with the next destination (not written either)
        const second = await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), store, 'a.example')
        assert.deepEqual(
            second[0].sent.map((d) => d.uri),
            ['https://r.a.example/tlsrpt'],
        )
        assert.deepEqual([mails.length, posts.length], [1, 1])
        // the disk takes writes again: both are written, nothing is sent again, the claim is given up
        fs.rmSync(link)
        const third = await sendDueReports(DAY, dayResultsOf(DAY, results), deps(), store, 'a.example')
        assert.deepEqual(third, [{ domain: 'a.example', sent: [], pending: false }])
        const other = new FileSentStore(dir)
        assert.deepEqual(
            (await other.deliveries(DAY, 'a.example')).map((d) => [d.uri, d.ok]),
            [
                ['mailto:tlsrpt@a.example', true],
                ['https://r.a.example/tlsrpt', true],
            ],
        )
        assert.ok(await other.claim(DAY, 'a.example', now))
        assert.deepEqual([mails.length, posts.length], [1, 1])
    })

    it('a transport that throws is a failed delivery, kept and tried again later', async () => {
        const d = { ...deps(), sendMail: async () => Promise.reject(new Error('outbound queue unavailable')) }
        const out = await sendDueReports(DAY, dayResultsOf(DAY, results), d, new FileSentStore(dir), 'a.example')
        assert.deepEqual(
            out[0].sent.map((s) => [s.ok, s.detail]),
            [
                [false, 'outbound queue unavailable'],
                [true, 'HTTP 200'],
            ],
        )
    })
})
