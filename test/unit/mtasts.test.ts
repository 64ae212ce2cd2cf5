// Issue 15 (MTA-STS, RFC 8461): the record, the policy file and the mx patterns, as the RFC reads.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { FileStsStore, MAX_KNOWN, StsPolicies, type StsStore } from '../../lib/mtasts/service'
import type { CachedPolicy } from '../../lib/mtasts/cache-rules'
import { txtAnswer } from '../world/tlsrpt-fixtures'
import { openStsService } from '../../lib/mtasts/open'
import { DEFAULTS } from '../../lib/config'
import { allowedBy, MAX_AGE_S, mxMatches, parseStsPolicy, parseStsRecords } from '../../lib/mtasts/policy'
import { planFetch, REFRESH_BEFORE_MS, stsState } from '../../lib/mtasts/cache-rules'
import { applySts, stsAsked } from '../../lib/mtasts/apply'
import type { StsOutcome } from '../../lib/mtasts/service'
import type { Decision, HostDecision, HostMode, TlsaState } from '../../lib/policy'

describe('MTA-STS record and policy (RFC 8461 3, 4.1)', () => {
    it('C31: exactly one "v=STSv1;" record with an id of 1-32 letters and digits; anything else is no policy', () => {
        assert.deepEqual(parseStsRecords(['v=STSv1; id=20261124T1;']), { kind: 'record', record: { id: '20261124T1', record: 'v=STSv1; id=20261124T1;' } })
        assert.deepEqual(parseStsRecords(['v=spf1 -all', 'v=STSv1;id=abc']), { kind: 'record', record: { id: 'abc', record: 'v=STSv1;id=abc' } })
        // unknown fields are ignored
        assert.equal(parseStsRecords(['v=STSv1; id=1; ext=value']).kind, 'record')
        for (const [txts, why] of [
            [[], /no TXT record/],
            [['v=spf1 -all'], /no record begins/],
            [['v=STSv1; id=1', 'v=STSv1; id=2'], /2 records .* exactly one/],
            [['v=STSv1;'], /no id/],
            [['v=STSv1; id=has-dash'], /not 1 to 32 letters and digits/],
            [[`v=STSv1; id=${'a'.repeat(33)}`], /not 1 to 32/],
            [['v=STSv1; id=1; id=2'], /id given twice/],
            [['v=STSv1; id=1; junk'], /not name=value/],
            [['V=STSv1; id=1'], /no record begins/],
        ] as [string[], RegExp][]) {
            const r = parseStsRecords(txts)
            assert.equal(r.kind, 'none', JSON.stringify(txts))
            assert.match((r as { reason: string }).reason, why)
        }
    })

    it('C32: a policy has version STSv1, a mode, max_age (held to a year) and, unless mode none, mx patterns; an invalid one is no policy', () => {
        const p = parseStsPolicy('version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Backup.Example.COM.\r\nmax_age: 604800\r\n')
        assert.deepEqual(p, { kind: 'policy', policy: { mode: 'enforce', mx: ['mail.example.com', '*.backup.example.com'], maxAge: 604800 } })
        // LF line ends, unknown keys, a max_age over a year
        assert.deepEqual(parseStsPolicy('version: STSv1\nmode: testing\nmx: mx.example.net\nmax_age: 9999999999\nextension: x\n'), {
            kind: 'policy',
            policy: { mode: 'testing', mx: ['mx.example.net'], maxAge: MAX_AGE_S },
        })
        assert.deepEqual(parseStsPolicy('version: STSv1\nmode: none\nmax_age: 86400\n'), { kind: 'policy', policy: { mode: 'none', mx: [], maxAge: 86400 } })
        // a byte-order mark and blank lines do not make a policy invalid
        assert.equal(parseStsPolicy('\uFEFFversion: STSv1\r\n\r\nmode: enforce\nmx: a.example\nmax_age: 1\n\n\n').kind, 'policy')
        // a non-ASCII letter that folds to ASCII (KELVIN SIGN → k) is no host name
        assert.equal(parseStsPolicy('version: STSv1\nmode: enforce\nmx: \u212Aey.example.com\nmax_age: 1\n').kind, 'invalid')
        for (const [text, why] of [
            ['mode: enforce\nmx: a.example\nmax_age: 1\n', /no version/],
            ['version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n', /not STSv1/],
            ['version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n', /not enforce, testing or none/],
            ['version: STSv1\nmode: enforce\nmax_age: 1\n', /without any mx/],
            ['version: STSv1\nmode: enforce\nmx: a.example\n', /no max_age/],
            ['version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n', /not a number/],
            ['version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n', /not a number/],
            ['version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n', /not a host name/],
            ['version: STSv1\nmode: enforce\nmx: mail.*.example\nmax_age: 1\n', /not a host name/],
            ['version: STSv1\nmode: enforce\nmx: example\nmax_age: 1\n', /not a host name/],
            ['version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n', /mode given twice/],
            ['<html>not a policy</html>\n', /not "key: value"/],
        ] as [string, RegExp][]) {
            const r = parseStsPolicy(text)
            assert.equal(r.kind, 'invalid', text)
            assert.match((r as { reason: string }).reason, why)
        }
    })

    it('C33: a wildcard covers exactly one left-most label; names compare without case or a trailing dot', () => {
        assert.ok(mxMatches('mail.example.com', 'mail.example.com'))
        assert.ok(mxMatches('MAIL.Example.com.', 'mail.example.com'))
        assert.ok(mxMatches('a.example.com', '*.example.com'))
        assert.ok(!mxMatches('example.com', '*.example.com'), 'the wildcard is a whole label: not the domain itself')
        assert.ok(!mxMatches('a.b.example.com', '*.example.com'), 'one label only (mailauth matches this; the RFC does not)')
        assert.ok(!mxMatches('aexample.com', '*.example.com'))
        assert.ok(!mxMatches('mail.example.com.evil.test', 'mail.example.com'))
        const policy = { mode: 'enforce' as const, mx: ['mx1.example.com', '*.backup.example.com'], maxAge: 86400 }
        assert.equal(allowedBy('x.backup.example.com', policy), '*.backup.example.com')
        assert.equal(allowedBy('mx2.example.com', policy), undefined)
    })
})

describe('MTA-STS: the policy in force and when to fetch (RFC 8461 5, 10.2)', () => {
    const T0 = Date.parse('2026-11-24T00:00:00Z')
    const H = 3600_000
    const enforce = { mode: 'enforce' as const, mx: ['mx.example.com'], maxAge: 7 * 24 * 3600 }
    const kept = { policy: enforce, id: 'a1', fetchedAt: T0, expires: T0 + 7 * 24 * H }
    const record = (id: string) => ({ kind: 'record' as const, record: { id, record: `v=STSv1; id=${id}` } })

    it('C35: fetched when new, when the id changes, and within its last day; not for an unchanged id with a fresh policy', () => {
        assert.equal(planFetch(T0, undefined, record('a1')).fetch, true)
        assert.deepEqual(planFetch(T0 + H, kept, record('a1')), { fetch: false, why: "the kept policy has the record's id a1" })
        assert.deepEqual(planFetch(T0 + H, kept, record('b2')), { fetch: true, why: "the record's id changed (a1 → b2)" })
        // one fetch per max_age in steady state: not on day 2, but within the last day before it expires
        assert.equal(planFetch(T0 + 30 * H, kept, record('a1')).fetch, false)
        assert.equal(planFetch(kept.expires - REFRESH_BEFORE_MS, kept, record('a1')).fetch, true, 'refreshed before it expires')
        assert.equal(planFetch(kept.expires - H, kept, { kind: 'failed', reason: 'timeout' }).fetch, true, 'also when the record cannot be had')
        // a policy of an hour is refreshed in its last half hour
        const short = { ...kept, expires: T0 + H }
        assert.deepEqual([planFetch(T0 + H / 4, short, record('a1')).fetch, planFetch(T0 + (3 * H) / 4, short, record('a1')).fetch], [false, true])
        assert.equal(planFetch(T0 + 8 * 24 * H, kept, record('a1')).fetch, true, 'expired')
        assert.equal(planFetch(T0 + H, undefined, { kind: 'none', reason: 'no TXT record' }).fetch, false)
    })

    it('C35: a vanished or blocked TXT record, a failed fetch or an invalid policy never erases a policy that has not expired', () => {
        // the TXT record removed (or an attacker blocking it): the kept enforce policy stays in force
        const gone = stsState(T0 + H, kept, { kind: 'none', reason: 'no TXT record' })
        assert.deepEqual([gone.inForce, gone.keep], [enforce, kept])
        const blocked = stsState(T0 + H, kept, { kind: 'failed', reason: 'timeout' })
        assert.deepEqual([blocked.inForce, blocked.keep], [enforce, kept])
        // the policy server down at the refresh: kept until it expires, and the failure named for TLSRPT
        const down = stsState(kept.expires - H, kept, record('a1'), { kind: 'fetch-error', reason: 'ECONNREFUSED' })
        assert.deepEqual([down.inForce, down.keep, down.resultType], [enforce, kept, 'sts-policy-fetch-error'])
        const invalid = stsState(kept.expires - H, kept, record('b2'), { kind: 'invalid', reason: 'mode "strict" is not enforce, testing or none' })
        assert.deepEqual([invalid.inForce, invalid.keep, invalid.resultType], [enforce, kept, 'sts-policy-invalid'])
        // once expired, nothing is left to enforce
        const expired = stsState(T0 + 8 * 24 * H, kept, record('a1'), { kind: 'fetch-error', reason: 'timeout' })
        assert.deepEqual([expired.inForce, expired.keep, expired.resultType], [undefined, undefined, 'sts-policy-fetch-error'])
    })

    it("C35: a policy fetched replaces the kept one under the record's id; max_age 0 applies once and is not kept", () => {
        const testing = { mode: 'testing' as const, mx: ['*.example.com'], maxAge: 86400 }
        const s = stsState(T0 + H, kept, record('b2'), { kind: 'policy', policy: testing })
        assert.deepEqual(s.inForce, testing)
        assert.deepEqual(s.keep, { policy: testing, id: 'b2', fetchedAt: T0 + H, expires: T0 + H + 86400_000 })
        const once = stsState(T0, undefined, record('c3'), { kind: 'policy', policy: { ...testing, maxAge: 0 } })
        assert.deepEqual([once.inForce?.mode, once.keep], ['testing', undefined])
    })
})

describe('MTA-STS only where DANE does not apply (RFC 8461 2)', () => {
    const host = (mode: HostMode, tlsaState: TlsaState): HostDecision => ({
        name: `mx-${mode}.example`,
        preference: 10,
        addresses: ['192.0.2.1'],
        addressSecure: true,
        referenceNames: [],
        tlsa: { state: tlsaState, records: [], usable: 0 },
        mode,
        reason: 'test',
    })
    const decision = (action: 'deliver' | 'defer', ...hosts: HostDecision[]): Decision => ({
        domain: 'example',
        policy: 'dane',
        exception: false,
        mxSecure: true,
        implicitMx: false,
        action,
        reason: 'test',
        hosts,
    })

    const outcome = (mode: 'enforce' | 'testing' | 'none', mx: string[]): StsOutcome => ({
        domain: 'example',
        id: 'abc',
        plan: { fetch: false, why: 'test' },
        inForce: { mode, mx, maxAge: 86400 },
        reason: 'the kept policy (id abc) is in force',
    })

    it('C37: MTA-STS is asked only for a decision to deliver under policy dane with a host the DNS proved has no DANE', () => {
        assert.equal(stsAsked(decision('deliver', host('opportunistic', 'none'), host('opportunistic', 'insecure'))).ask, true)
        assert.equal(stsAsked(decision('deliver', host('dane', 'secure'), host('opportunistic', 'none'))).ask, true)
        // DANE, unusable TLSA (encrypt) or a failed lookup decide every host: not asked
        assert.equal(stsAsked(decision('deliver', host('dane', 'secure'), host('encrypt', 'secure'), host('skip', 'failed'))).ask, false)
        assert.equal(stsAsked(decision('defer', host('skip', 'failed'))).ask, false)
        for (const policy of ['may', 'encrypt', 'none', 'dane-only'] as const)
            assert.equal(stsAsked({ ...decision('deliver', host('opportunistic', 'none')), policy }).ask, false, policy)
    })

    it('C37: a DANE host keeps DANE and a host skipped for a DNSSEC failure stays skipped, whatever the policy allows', () => {
        const dane = { ...host('dane', 'secure'), name: 'mx.example' }
        const failed = { ...host('skip', 'failed'), name: 'mx2.example', resultType: 'dnssec-invalid' as const }
        const open = { ...host('opportunistic', 'none'), name: 'mx3.example' }
        const d = applySts(decision('deliver', dane, failed, open), outcome('enforce', ['*.example']))
        assert.deepEqual(
            d.hosts.map((h) => h.mode),
            ['dane', 'skip', 'sts'],
        )
        assert.equal(d.hosts[0], dane)
        assert.equal(d.hosts[1], failed)
        assert.equal(d.action, 'deliver')
    })

    it('C38: enforce: hosts the mx patterns do not allow are not used; allowed ones need PKIX; none left defers', () => {
        const a = { ...host('opportunistic', 'none'), name: 'mx.example' }
        const b = { ...host('opportunistic', 'insecure'), name: 'backup.other' }
        const d = applySts(decision('deliver', a, b), outcome('enforce', ['mx.example']))
        assert.deepEqual(
            d.hosts.map((h) => [h.name, h.mode, h.sts?.allowedBy, h.resultType]),
            [
                ['mx.example', 'sts', 'mx.example', undefined],
                ['backup.other', 'skip', undefined, 'validation-failure'],
            ],
        )
        assert.equal(d.action, 'deliver')
        assert.match(d.reason, /mx\.example=sts/)
        assert.equal(d.sts?.policy?.mode, 'enforce')
        const none = applySts(decision('deliver', b), outcome('enforce', ['mx.example']))
        assert.equal(none.action, 'defer')
        assert.equal(none.resultType, 'validation-failure')
        assert.match(none.reason, /every MX host was skipped .*not among the policy's mx \(mx\.example\)/)
    })

    it('C39: testing and none change no host mode; testing marks each host for checking and reporting; no policy changes nothing', () => {
        const a = { ...host('opportunistic', 'none'), name: 'mx.example' }
        const b = { ...host('opportunistic', 'none'), name: 'backup.other' }
        const t = applySts(decision('deliver', a, b), outcome('testing', ['mx.example']))
        assert.deepEqual(
            t.hosts.map((h) => [h.mode, h.sts]),
            [
                ['opportunistic', { mode: 'testing', allowedBy: 'mx.example' }],
                ['opportunistic', { mode: 'testing', allowedBy: undefined }],
            ],
        )
        const n = applySts(decision('deliver', a, b), outcome('none', []))
        assert.deepEqual(n.hosts, [a, b])
        const failed = applySts(decision('deliver', a), {
            domain: 'example',
            plan: { fetch: true, why: 'no policy kept' },
            reason: 'no policy: the fetch failed (ECONNREFUSED)',
            resultType: 'sts-policy-fetch-error',
        })
        assert.deepEqual(failed.hosts, [a])
        assert.deepEqual(failed.sts, {
            policy: undefined,
            id: undefined,
            reason: 'no policy: the fetch failed (ECONNREFUSED)',
            resultType: 'sts-policy-fetch-error',
        })
    })
})

describe('MTA-STS faults never read as "no policy"', () => {
    const answer = (id: string) => txtAnswer('_mta-sts.example', [`v=STSv1; id=${id}`])
    const service = (store: StsStore, txt: () => Promise<ReturnType<typeof answer>>, fetchOk = true) =>
        new StsPolicies({
            lookupTxt: txt,
            addresses: async () => [],
            store,
            fetch: async (domain) =>
                fetchOk
                    ? { ok: true, host: `mta-sts.${domain}`, text: 'version: STSv1\nmode: enforce\nmx: mx.example\nmax_age: 86400\n' }
                    : { ok: false, host: `mta-sts.${domain}`, error: 'ECONNREFUSED' },
        })
    const memoryStore = (): StsStore & { kept: Map<string, CachedPolicy>; failing: boolean; reads: number } => {
        const s = {
            kept: new Map<string, CachedPolicy>(),
            failing: false,
            reads: 0,
            async get(d: string) {
                s.reads++
                if (s.failing) throw new Error('EIO: the disk')
                return s.kept.get(d)
            },
            async set(d: string, c: CachedPolicy) {
                if (s.failing) return 'EIO: the disk'
                s.kept.set(d, c)
                return undefined
            },
            async drop(d: string) {
                s.kept.delete(d)
                return undefined
            },
        }
        return s
    }

    it('C36: an internal error keeps the policy the process holds; with none held the ask rejects (the delivery defers)', async () => {
        let broken = false
        const txt = async () => {
            if (broken) throw new Error('resolver exploded')
            return answer('a1')
        }
        const s = service(memoryStore(), txt)
        assert.equal((await s.policyFor('example')).inForce?.mode, 'enforce')
        broken = true
        const held = await s.policyFor('example')
        assert.equal(held.inForce?.mode, 'enforce')
        assert.match(held.reason, /internal error \(resolver exploded\); the policy this process holds \(id a1\) stays in force/)
        await assert.rejects(service(memoryStore(), txt).policyFor('example'), /MTA-STS for example: resolver exploded/)
    })

    it('C36: a store that cannot be read is not "nothing kept": unknown is an error, nothing is erased, no absence remembered, read again next time', async () => {
        const store = memoryStore()
        store.kept.set('example', {
            policy: { mode: 'enforce', mx: ['mx.example'], maxAge: 86400 },
            id: 'a1',
            fetchedAt: Date.now(),
            expires: Date.now() + 86400_000,
        })
        store.failing = true
        // the fetch fails too: whether a policy is kept is unknown: an error (the message defers), and nothing is erased
        const s = service(store, async () => answer('a1'), false)
        await assert.rejects(s.policyFor('example'), /the kept policies cannot be read and this process holds nothing for example/)
        assert.equal(store.kept.has('example'), true)
        store.failing = false
        const reads = store.reads
        const seen = await s.policyFor('example')
        assert.equal(seen.inForce?.mode, 'enforce')
        assert.equal(store.reads, reads + 1, 'read again, not remembered as nothing kept')
        // held now: a third ask reads nothing
        await s.policyFor('example')
        assert.equal(store.reads, reads + 1)
    })

    it('C30, C36: memory is bounded, and a full memory forgets absences before a live policy (hostile domains cannot push it out)', async () => {
        const store = memoryStore()
        let txtFor = (name: string) => (name === '_mta-sts.victim.example' ? answer('v1') : txtAnswer(name, 'nxdomain'))
        // the victim's policy, held first (the oldest entry)
        const s2 = new StsPolicies({
            lookupTxt: async (name) => txtFor(name),
            addresses: async () => [],
            store,
            fetch: async (domain) => ({ ok: true, host: `mta-sts.${domain}`, text: 'version: STSv1\nmode: enforce\nmx: mx.victim.example\nmax_age: 86400\n' }),
        })
        assert.equal((await s2.policyFor('victim.example')).inForce?.mode, 'enforce')
        for (let i = 0; i < MAX_KNOWN + 50; i++) await s2.policyFor(`d${i}.hostile.example`)
        assert.equal(s2.memory.known.size, MAX_KNOWN)
        // the store now fails and the record is blocked: the victim's policy is still held
        store.failing = true
        txtFor = (name) => txtAnswer(name, 'failed')
        assert.equal((await s2.policyFor('victim.example')).inForce?.mode, 'enforce')
    })

    it('C36: an ask that hangs (a store that never answers) fails after its deadline: the message defers, the ask is not stuck', async () => {
        const hanging: StsStore = { get: () => new Promise(() => undefined), set: async () => undefined, drop: async () => undefined }
        const s = new StsPolicies({ lookupTxt: async () => answer('h1'), addresses: async () => [], store: hanging, timeoutMs: 100, askSlackMs: 200 })
        const t0 = Date.now()
        await assert.rejects(s.policyFor('example'), /MTA-STS for example: no answer within 0\.3 s/)
        assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`)
        // a later ask starts afresh (the hung one is not joined)
        await assert.rejects(s.policyFor('example'), /no answer within/)
    })

    it('C36: a file store that cannot be read rejects (not "nothing kept"); a missing file is nothing kept', async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-sts-eio-'))
        try {
            const store = new FileStsStore(dir)
            assert.equal(await store.get('example'), undefined)
            fs.mkdirSync(store.file('example')) // a directory where the file should be: EISDIR
            await assert.rejects(store.get('example'), /EISDIR/)
        } finally {
            fs.rmSync(dir, { recursive: true, force: true })
        }
    })
})

describe('MTA-STS as [mtasts] sets it up', () => {
    it('C23, C36: a CA file without a certificate, or a policy directory that cannot be used, stops the set-up with the reason', () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-sts-open-'))
        try {
            const settings = { ...DEFAULTS.mtasts }
            const resolver = () => ({ lookup: async (name: string) => txtAnswer(name, 'nxdomain') })
            const notCa = path.join(dir, 'not-a-ca.pem')
            fs.writeFileSync(notCa, 'hello\n')
            assert.throws(
                () => openStsService(settings, { dir, caFile: notCa, resolver, fault: () => undefined }),
                /mtasts\.ca_file .*not-a-ca\.pem holds no PEM certificate/,
            )
            const aFile = path.join(dir, 'a-file')
            fs.writeFileSync(aFile, '')
            assert.throws(
                () => openStsService(settings, { dir: path.join(aFile, 'sts'), caFile: '', resolver, fault: () => undefined }),
                /mtasts\.directory .* cannot be used: .*ENOTDIR/,
            )
            const ready = openStsService(settings, { dir: path.join(dir, 'sts'), caFile: '', resolver, fault: () => undefined })
            assert.equal(fs.statSync(path.join(dir, 'sts')).isDirectory(), true)
            // a reload keeps the memory, whatever the store
            const again = openStsService(
                { ...settings, store: 'file' },
                { dir: path.join(dir, 'other'), caFile: '', resolver, fault: () => undefined, previous: ready },
            )
            assert.equal(again.policies.memory, ready.policies.memory)
            assert.notEqual(again.store, ready.store)
        } finally {
            fs.rmSync(dir, { recursive: true, force: true })
        }
    })
})

describe('MTA-STS kept policies on disk', () => {
    it("C36: a file a domain named by its hash: a hostile domain string never becomes a path; another domain's file is not taken; no temporary file is left", async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-sts-store-'))
        try {
            const store = new FileStsStore(dir)
            const kept = { policy: { mode: 'enforce' as const, mx: ['mx.example'], maxAge: 60 }, id: 'a1', fetchedAt: 1, expires: 60_001 }
            assert.equal(await store.set('x/../../escaped', kept), undefined)
            assert.deepEqual(
                fs.readdirSync(path.dirname(dir)).filter((f) => f.startsWith('escaped')),
                [],
            )
            assert.deepEqual(await store.get('x/../../escaped'), kept)
            assert.equal(path.dirname(store.file('x/../../escaped')), dir)
            // a file copied under another domain's name is not that domain's policy
            fs.copyFileSync(store.file('x/../../escaped'), store.file('other.example'))
            assert.equal(await store.get('other.example'), undefined)
            // a write that fails (the target is a directory) leaves no temporary file
            fs.rmSync(store.file('busy.example'), { force: true })
            fs.mkdirSync(store.file('busy.example'))
            assert.match((await store.set('busy.example', kept))!, /EISDIR|directory/)
            assert.deepEqual(
                fs.readdirSync(dir).filter((f) => f.includes('.json.')),
                [],
            )
        } finally {
            fs.rmSync(dir, { recursive: true, force: true })
        }
    })
})
