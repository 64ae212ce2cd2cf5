// The sender's rounds (lib/tlsrpt/scheduler): which days it looks at, a `tlsrpt send` request taken by one
// round and answered, an unreadable CA file failing the https destinations only, a finished day left alone.
// Transports and the TXT lookup are stand-ins; the journal and the sent state are the real files.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { txtAnswer } from '../world/tlsrpt-fixtures'
import { DEFAULTS } from '../../lib/config'
import { FileStore } from '../../lib/tlsrpt/journal'
import { sessionResult } from '../../lib/tlsrpt/result'
import { sendNowFile, TlsrptScheduler } from '../../lib/tlsrpt/scheduler'
import type { DomainOutcome } from '../../lib/tlsrpt/send'

const NOW = Date.parse('2026-11-24T12:00:00Z')
const day = (offset: number) => new Date(NOW + offset * 86400000).toISOString().slice(0, 10)

describe('TLSRPT sender rounds', () => {
    let dir: string
    let journal: FileStore
    let mails: string[]
    let logs: { day: string; o: DomainOutcome }[]
    let faults: string[]
    let lookups: number
    let record: string
    const settings = (over: Partial<typeof DEFAULTS.tlsrpt> = {}) => ({
        ...DEFAULTS.tlsrpt,
        enabled: true,
        organizationName: 'Example',
        contactInfo: 'tls@sender.example',
        sendAfterMinutes: 0,
        spreadMinutes: 0,
        ...over,
    })
    const scheduler = (over: Partial<typeof DEFAULTS.tlsrpt> = {}) =>
        new TlsrptScheduler({
            settings: () => settings(over),
            store: () => journal,
            requestDir: () => dir,
            lookupTxt: async (name) => {
                lookups++
                return txtAnswer(name, [record])
            },
            queueMail: async (_from, to) => {
                mails.push(to)
                return { ok: true, detail: 'queued' }
            },
            log: (o, d) => logs.push({ day: d, o }),
            fault: (m) => faults.push(m),
            now: () => NOW,
        })
    const add = (id: string, offsetDays: number) =>
        journal.add(
            sessionResult({
                id,
                at: NOW + offsetDays * 86400000,
                recipientDomain: 'dest.example',
                host: 'mx.dest.example',
                mode: 'opportunistic',
                tlsaRecords: [],
                usableRecords: 0,
                outcome: 'opportunistic-tls',
            })!,
        )

    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-tlsrpt-sched-'))
        journal = new FileStore(dir)
        mails = []
        logs = []
        faults = []
        lookups = 0
        record = 'v=TLSRPTv1;rua=mailto:r@dest.example,https://127.0.0.1:1/r'
    })
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

    it('sends the past days within four calendar days, never today, never older; an unreadable CA fails https only', async () => {
        add('today', 0)
        add('yesterday', -1)
        add('old', -6)
        await scheduler({ httpsCaFile: path.join(dir, 'no-such-ca.pem') }).tick()
        assert.deepEqual(mails, ['r@dest.example'])
        const sent = logs.filter((l) => l.o.domain === 'dest.example')
        assert.deepEqual(
            sent.map((l) => [l.day, l.o.sent.map((d) => [d.uri, d.ok])]),
            [
                [
                    day(-1),
                    [
                        ['mailto:r@dest.example', true],
                        ['https://127.0.0.1:1/r', false],
                    ],
                ],
            ],
        )
        assert.match(sent[0].o.sent[1].detail, /ENOENT|no such file/)
        assert.deepEqual(faults, [])
        assert.ok(
            logs.some((l) => l.o.domain === '*'),
            'the first round is logged',
        )
    })

    it('a tlsrpt send request is taken once and answered; a day with a retry pending is still looked at', async () => {
        add('y', -1)
        const s = scheduler({ sendAfterMinutes: 2880 }) // not due by the hour
        await s.tick()
        assert.equal(mails.length, 0)
        fs.writeFileSync(sendNowFile(dir, day(-1)), 'dest.example\n')
        await s.tick()
        assert.deepEqual(mails, ['r@dest.example'])
        assert.equal(fs.existsSync(sendNowFile(dir, day(-1))), false)
        const done = JSON.parse(fs.readFileSync(`${sendNowFile(dir, day(-1))}.done`, 'utf8')) as DomainOutcome[]
        assert.deepEqual(
            done.map((o) => [o.domain, o.sent.length]),
            [['dest.example', 2]],
        )
        // due by the hour and everything tried: finished (the https failure waits for its retry, so not yet)
        const due = scheduler()
        await due.tick()
        const before = lookups
        await due.tick()
        assert.ok(lookups > before, 'a retry is pending: the day is still looked at')
    })

    it('a day whose every report went out is not looked at again by that process', async () => {
        record = 'v=TLSRPTv1;rua=mailto:r@dest.example'
        add('y', -1)
        const s = scheduler()
        await s.tick()
        assert.deepEqual(mails, ['r@dest.example'])
        const before = lookups
        await s.tick()
        assert.equal(lookups, before)
        // another process (or a restart) looks once, finds it sent, sends nothing
        await scheduler().tick()
        assert.equal(lookups, before + 1)
        assert.deepEqual(mails, ['r@dest.example'])
    })

    it('a request is answered also when the store cannot be read now; a store closed on reload waits for the round using it', async () => {
        add('y', -1)
        const failing = Object.create(journal) as FileStore
        failing.day = async () => Promise.reject(new Error('Redis not reachable within 5 s'))
        const s = scheduler()
        ;(s as unknown as { deps: { store: () => FileStore } }).deps.store = () => failing
        fs.writeFileSync(sendNowFile(dir, day(-1)), '\n')
        await s.tick()
        const done = JSON.parse(fs.readFileSync(`${sendNowFile(dir, day(-1))}.done`, 'utf8')) as DomainOutcome[]
        assert.deepEqual(done, [{ domain: '*', sent: [], skipped: 'not sent: Redis not reachable within 5 s', pending: true }])
        assert.deepEqual(
            fs.readdirSync(dir).filter((f) => f.startsWith('send-now')),
            [`send-now-${day(-1)}.done`],
            'the request taken is gone',
        )
        // afterRound: at once when idle; after the round when one is running
        const order: string[] = []
        s.afterRound(() => order.push('idle'))
        const round = s.tick()
        s.afterRound(() => order.push('after the round'))
        order.push('during')
        await round
        assert.deepEqual(order, ['idle', 'during', 'after the round'])
    })
})
