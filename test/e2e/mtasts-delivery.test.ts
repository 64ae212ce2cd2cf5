// Issue 15 (MTA-STS, RFC 8461) end to end: a real Haraka with the plugin delivers to receivers on
// 127.0.8.x:25 whose domains publish `_mta-sts` records in real zones (nsd 127.0.8.52, unbound
// 127.0.8.53); the policies come from a real HTTPS server at mta-sts.<domain> (127.0.8.80:443) whose
// certificate, like the PKIX-valid receivers', is issued by a test CA given to the plugin as
// [mtasts] ca_file (the system store is never changed). What arrived where, what stayed queued, the
// delivery log's lines and the TLS report's results are what the tests assert.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import type http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import { DnsWorld, type ZoneSpec } from '../world/dns'
import { makeCertificate, tlsaText, type TestCert } from '../world/certs'
import { Listener } from '../world/smtp'
import { Haraka } from '../world/haraka'
import { readDaneLog, type DaneLogLine } from '../world/dane-log'
import { sleep } from '../world/procs'
import { main } from '../../bin/haraka-dane'
import type { TlsrptReport } from '../../lib/tlsrpt/report'

const POLICY = '127.0.8.80'
const BAD_POLICY = '127.0.8.81' // a policy host whose certificate no CA vouches for
const A = {
    mx: '127.0.8.11', // mx.sts.test: PKIX-valid for its name
    rogue: '127.0.8.13', // rogue.sts.test: PKIX-valid for its own name, never in an enforced policy
    selfsigned: '127.0.8.14', // selfsigned.sts.test: its name, but signed by no CA
    wrongname: '127.0.8.15', // wrongname.sts.test: the test CA's, for another name
    dane: '127.0.8.16', // mx.dsts.test: DANE-EE, self-signed
}

describe('end to end: MTA-STS (RFC 8461) where DANE does not apply, with a real Haraka', function () {
    this.timeout(180000)
    const dns = new DnsWorld({ nsdAddress: '127.0.8.52', resolverAddress: '127.0.8.53' })
    const ca = makeCertificate({ cn: 'STS World CA', ca: true })
    const issued = (name: string): TestCert => makeCertificate({ cn: name, sans: [name], issuer: ca })
    const certs = {
        mx: issued('mx.sts.test'),
        rogue: issued('rogue.sts.test'),
        selfsigned: makeCertificate({ cn: 'selfsigned.sts.test', sans: ['selfsigned.sts.test'] }),
        wrongname: issued('somewhere-else.example'),
        dane: makeCertificate({ cn: 'not-the-mx.example' }),
    }
    const listeners = Object.fromEntries(
        Object.entries(A).map(([k, address]) => {
            const c = certs[k as keyof typeof certs]
            return [k, new Listener({ address, certChainPem: c.pem, keyPem: c.keyPem })]
        }),
    ) as Record<keyof typeof A, Listener>

    // the policies served, by policy host; a host missing here answers 404
    const policies = new Map<string, string>()
    const requests: string[] = []
    const servers: https.Server[] = []
    const policyText = (mode: string, ...mx: string[]): string => `version: STSv1\nmode: ${mode}\n${mx.map((m) => `mx: ${m}\n`).join('')}max_age: 604800\n`

    /** a recipient domain under sts.test: its MX hosts (in preference order), `_mta-sts` record, policy host, TLSRPT record */
    const stsDomain = (label: string, mx: string[], txts: string[], policyAddress = POLICY, tlsrpt = false): string[] => [
        ...mx.map((host, i) => `${label} MX ${(i + 1) * 10} ${host}.sts.test.`),
        ...txts.map((t) => `_mta-sts.${label} TXT "${t}"`),
        `mta-sts.${label} A ${policyAddress}`,
        ...(tlsrpt ? [`_smtp._tls.${label} TXT "v=TLSRPTv1; rua=mailto:tlsrpt@sts.test"`] : []),
    ]
    // the kept.sts.test record, changed by the tests
    let keptTxt: string[] = ['v=STSv1; id=k1']
    const stsZone = (): ZoneSpec => ({
        name: 'sts.test',
        signing: 'unsigned',
        ttl: 1,
        records: [
            `mx A ${A.mx}`,
            `rogue A ${A.rogue}`,
            `selfsigned A ${A.selfsigned}`,
            `wrongname A ${A.wrongname}`,
            // enforce: the policy names mx only; rogue is preferred by the MX RRset
            ...stsDomain('enforce', ['rogue', 'mx'], ['v=STSv1; id=e1']),
            // enforce, both hosts allowed, neither PKIX-valid: the next MX, then defer
            ...stsDomain('badcert', ['selfsigned', 'wrongname'], ['v=STSv1; id=b1']),
            // testing: delivered whatever the certificate, the failure reported
            ...stsDomain('testing', ['selfsigned'], ['v=STSv1; id=t1'], POLICY, true),
            // a policy kept, then its record removed, the server failing, the id changed
            ...stsDomain('kept', ['rogue', 'mx'], keptTxt),
            // a short-lived policy: refreshed while its server fails, then expired
            ...stsDomain('expiry', ['rogue', 'mx'], ['v=STSv1; id=x1']),
            // a record, but no policy to be had: opportunistic, and the failure reported
            ...stsDomain('nofetch', ['selfsigned'], ['v=STSv1; id=n1'], POLICY, true),
            ...stsDomain('webpki', ['selfsigned'], ['v=STSv1; id=w1'], BAD_POLICY, true),
        ],
    })
    // DANE and MTA-STS both: the policy allows no MX host this domain has, DANE authenticates its one MX
    const dstsZone = (): ZoneSpec => ({
        name: 'dsts.test',
        signing: 'signed',
        records: ['@ MX 10 mx', `mx A ${A.dane}`, `_25._tcp.mx TLSA ${tlsaText(certs.dane, 3, 1, 1)}`, '_mta-sts TXT "v=STSv1; id=d1"', `mta-sts A ${POLICY}`],
    })

    const haraka = new Haraka({ withDane: true, address: '127.0.8.25' })
    const daneLog = path.join(haraka.dir, 'dane.jsonl')
    const caFile = path.join(haraka.dir, 'sts-ca.pem')
    const log = (domain: string): DaneLogLine[] => readDaneLog(daneLog).filter((l) => l.domain === domain)
    const arrived = (l: Listener, subject: string): number => l.received.filter((r) => r.body.includes(`Subject: ${subject}`)).length
    const deliver = async (to: string, subject: string, events: ('delivered' | 'deferred' | 'bounce')[] = ['delivered', 'deferred', 'bounce']) => {
        const id = await haraka.send(to, { subject })
        return haraka.waitFor(id, events, 60000)
    }

    before(async () => {
        await dns.start([stsZone(), dstsZone()])
        for (const l of Object.values(listeners)) await l.start()
        const policyCert = makeCertificate({
            cn: 'mta-sts.enforce.sts.test',
            sans: ['enforce', 'badcert', 'testing', 'kept', 'nofetch', 'expiry'].map((d) => `mta-sts.${d}.sts.test`).concat('mta-sts.dsts.test'),
            issuer: ca,
        })
        const handler = (req: { headers: { host?: string } }, res: http.ServerResponse): void => {
            const host = String(req.headers.host ?? '').replace(/:\d+$/, '')
            requests.push(host)
            const text = policies.get(host)
            if (text === undefined) res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no policy here\n')
            else res.writeHead(200, { 'Content-Type': 'text/plain' }).end(text)
        }
        const good = https.createServer({ cert: policyCert.pem, key: policyCert.keyPem }, handler)
        const selfSigned = makeCertificate({ cn: 'mta-sts.webpki.sts.test', sans: ['mta-sts.webpki.sts.test'] })
        const bad = https.createServer({ cert: selfSigned.pem, key: selfSigned.keyPem }, handler)
        await new Promise<void>((r) => good.listen(443, POLICY, r))
        await new Promise<void>((r) => bad.listen(443, BAD_POLICY, r))
        servers.push(good, bad)
        policies.set('mta-sts.enforce.sts.test', policyText('enforce', 'mx.sts.test'))
        policies.set('mta-sts.badcert.sts.test', policyText('enforce', '*.sts.test'))
        policies.set('mta-sts.testing.sts.test', policyText('testing', '*.sts.test'))
        policies.set('mta-sts.kept.sts.test', policyText('enforce', 'mx.sts.test'))
        policies.set('mta-sts.expiry.sts.test', policyText('enforce', 'mx.sts.test').replace('max_age: 604800', 'max_age: 4'))
        policies.set('mta-sts.dsts.test', policyText('enforce', 'mx.elsewhere.example'))
        policies.set('mta-sts.webpki.sts.test', policyText('enforce', 'nothing.example'))

        fs.writeFileSync(caFile, ca.pem)
        haraka.writeConfigFile(
            'dane.ini',
            [
                `[resolver]\naddress=${dns.resolverAddress}\nport=${dns.port}\ntimeout_ms=1000\nretries=1`,
                `[log]\ndestination=${daneLog}`,
                '[tlsrpt]\nenabled=true\norganization_name=STS World Sender\ncontact_info=tls-reports@haraka.world.test',
                `[mtasts]\nca_file=${caFile}\ntimeout_seconds=5`,
            ].join('\n') + '\n',
        )
        await haraka.start()
    })

    after(async () => {
        await haraka.stop()
        for (const s of servers) await new Promise<void>((r) => s.close(() => r()))
        for (const l of Object.values(listeners)) await l.stop()
        await dns.stop()
        haraka.cleanup()
    })

    it('C38: enforce: the MX host the policy does not name is never connected to; the one it names, PKIX-valid, gets the message', async () => {
        const ev = await deliver('user@enforce.sts.test', 'enforce one')
        assert.equal(ev.event, 'delivered', JSON.stringify(ev))
        assert.equal(arrived(listeners.mx, 'enforce one'), 1)
        assert.equal(arrived(listeners.rogue, 'enforce one'), 0)
        assert.equal(listeners.mx.sniSeen.at(-1), 'mx.sts.test', 'SNI is the MX host name')
        const lines = log('enforce.sts.test')
        const decision = lines.find((l) => l.event === 'decision')!
        assert.equal((decision.sts as { mode: string }).mode, 'enforce')
        const skipped = lines.find((l) => l.event === 'attempt' && l.mx_host === 'rogue.sts.test')!
        assert.deepEqual([skipped.outcome, skipped.result_type], ['skipped', 'validation-failure'])
        assert.match(String(skipped.reason), /MTA-STS enforce: not among the policy's mx \(mx\.sts\.test\): host not used/)
        const used = lines.find((l) => l.event === 'attempt' && l.mx_host === 'mx.sts.test')!
        assert.deepEqual([used.outcome, used.mode, used.pkix], ['pkix-verified', 'sts', 'valid'])
    })

    it('C38: enforce: a certificate no CA vouches for, then one for another name: each MX tried in turn, then the message stays queued', async () => {
        const ev = await deliver('user@badcert.sts.test', 'badcert one')
        assert.equal(ev.event, 'deferred', JSON.stringify(ev))
        assert.equal(arrived(listeners.selfsigned, 'badcert one'), 0)
        assert.equal(arrived(listeners.wrongname, 'badcert one'), 0)
        const failed = log('badcert.sts.test').filter((l) => l.event === 'attempt' && l.outcome === 'failed')
        assert.deepEqual(
            failed.map((l) => [l.mx_host, l.result_type]),
            [
                ['selfsigned.sts.test', 'certificate-not-trusted'],
                ['wrongname.sts.test', 'certificate-host-mismatch'],
            ],
        )
        assert.ok(haraka.queuedIds().length >= 1, 'the message stays queued')
    })

    it('C39: testing: delivered as before (opportunistic TLS to a certificate no CA vouches for), the check logged', async () => {
        const ev = await deliver('user@testing.sts.test', 'testing one')
        assert.equal(ev.event, 'delivered', JSON.stringify(ev))
        assert.equal(arrived(listeners.selfsigned, 'testing one'), 1)
        const used = log('testing.sts.test').find((l) => l.event === 'attempt' && l.outcome === 'opportunistic-tls')!
        assert.deepEqual([used.sts, used.pkix], ['testing', 'DEPTH_ZERO_SELF_SIGNED_CERT'])
        assert.match(String(used.reason), /MTA-STS testing \(allowed by mx \*\.sts\.test\): the certificate chain is not valid.*reported, not enforced/)
    })

    it('C37: DANE and MTA-STS both: DANE decides (the policy names no MX host of the domain; the DANE host gets the message)', async () => {
        const ev = await deliver('user@dsts.test', 'both one')
        assert.equal(ev.event, 'delivered', JSON.stringify(ev))
        assert.equal(arrived(listeners.dane, 'both one'), 1)
        const lines = log('dsts.test')
        assert.equal(lines.find((l) => l.event === 'attempt' && l.outcome === 'verified')?.mx_host, 'mx.dsts.test')
        // not asked at all: no policy fetched for it
        assert.equal(lines.find((l) => l.event === 'decision')?.sts, undefined)
        assert.equal(requests.includes('mta-sts.dsts.test'), false)
    })

    it('C36, C38: a kept policy outlives its removed record and a failing policy server; a changed id is fetched and obeyed', async () => {
        const ttl = async (): Promise<void> => sleep(1500) // the record's TTL is 1 s: the plugin's cache forgets it
        // 1: fetched and enforced
        assert.equal((await deliver('user@kept.sts.test', 'kept 1')).event, 'delivered')
        assert.deepEqual([arrived(listeners.mx, 'kept 1'), arrived(listeners.rogue, 'kept 1')], [1, 0])
        const fetched = () => requests.filter((r) => r === 'mta-sts.kept.sts.test').length
        assert.equal(fetched(), 1)
        // 2: the record removed, the server serving nothing: the kept policy is still enforced, nothing fetched
        keptTxt = []
        policies.delete('mta-sts.kept.sts.test')
        await dns.updateZone(stsZone())
        await ttl()
        assert.equal((await deliver('user@kept.sts.test', 'kept 2')).event, 'delivered')
        assert.deepEqual([arrived(listeners.mx, 'kept 2'), arrived(listeners.rogue, 'kept 2'), fetched()], [1, 0, 1])
        const second = log('kept.sts.test').filter((l) => l.event === 'decision')[1]
        assert.match(String((second.sts as { reason: string }).reason), /kept policy \(id k1\) is in force/)
        // 3: a new id while the policy server fails: tried, the kept policy stays in force
        keptTxt = ['v=STSv1; id=k2']
        await dns.updateZone(stsZone())
        await ttl()
        assert.equal((await deliver('user@kept.sts.test', 'kept 3')).event, 'delivered')
        assert.deepEqual([arrived(listeners.mx, 'kept 3'), arrived(listeners.rogue, 'kept 3'), fetched()], [1, 0, 2])
        const third = log('kept.sts.test').filter((l) => l.event === 'decision')[2].sts as { reason: string; result_type: string; mode: string }
        assert.deepEqual([third.mode, third.result_type], ['enforce', 'sts-policy-fetch-error'])
        assert.match(third.reason, /the fetch failed \(HTTP 404\); the kept policy \(id k1\) stays in force until it expires/)
        // 4: the server back with a policy naming only rogue, under another new id: fetched and obeyed
        policies.set('mta-sts.kept.sts.test', policyText('enforce', 'rogue.sts.test'))
        keptTxt = ['v=STSv1; id=k3']
        await dns.updateZone(stsZone())
        await ttl()
        assert.equal((await deliver('user@kept.sts.test', 'kept 4')).event, 'delivered')
        assert.deepEqual([arrived(listeners.mx, 'kept 4'), arrived(listeners.rogue, 'kept 4'), fetched()], [0, 1, 3])
    })

    it('C35, C38: the policy server down at the refresh: the kept policy is enforced until it expires, then there is none', async () => {
        const fetched = () => requests.filter((r) => r === 'mta-sts.expiry.sts.test').length
        // max_age 4 s: fetched and enforced
        assert.equal((await deliver('user@expiry.sts.test', 'expiry 1')).event, 'delivered')
        assert.deepEqual([arrived(listeners.mx, 'expiry 1'), arrived(listeners.rogue, 'expiry 1'), fetched()], [1, 0, 1])
        const fetchedAt = Date.now()
        policies.delete('mta-sts.expiry.sts.test')
        // past half its max_age: refreshed, the server answers 404, the kept policy stays in force
        await sleep(Math.max(0, fetchedAt + 2500 - Date.now()))
        assert.equal((await deliver('user@expiry.sts.test', 'expiry 2')).event, 'delivered')
        assert.deepEqual([arrived(listeners.mx, 'expiry 2'), arrived(listeners.rogue, 'expiry 2'), fetched()], [1, 0, 2])
        const refresh = log('expiry.sts.test').filter((l) => l.event === 'decision')[1].sts as { reason: string; mode: string }
        assert.equal(refresh.mode, 'enforce')
        assert.match(refresh.reason, /the fetch failed \(HTTP 404\); the kept policy \(id x1\) stays in force until it expires/)
        // expired: no policy (the failed fetch is not made again for five minutes); the MX order decides again
        await sleep(Math.max(0, fetchedAt + 4500 - Date.now()))
        assert.equal((await deliver('user@expiry.sts.test', 'expiry 3')).event, 'delivered')
        assert.deepEqual([arrived(listeners.rogue, 'expiry 3'), fetched()], [1, 2])
        const expired = log('expiry.sts.test').filter((l) => l.event === 'decision')[2].sts as { reason: string; mode?: string }
        assert.equal(expired.mode, undefined)
        assert.match(expired.reason, /no policy: the fetch failed \(HTTP 404\)/)
    })

    it('C39: a record without a policy to be had (404; a policy host no CA vouches for): delivered opportunistically, the reason logged', async () => {
        for (const d of ['nofetch', 'webpki']) {
            const ev = await deliver(`user@${d}.sts.test`, `${d} one`)
            assert.equal(ev.event, 'delivered', JSON.stringify(ev))
            assert.equal(arrived(listeners.selfsigned, `${d} one`), 1)
        }
        const sts = (d: string) => log(`${d}.sts.test`).find((l) => l.event === 'decision')!.sts as { result_type: string; reason: string }
        assert.equal(sts('nofetch').result_type, 'sts-policy-fetch-error')
        assert.equal(sts('webpki').result_type, 'sts-webpki-invalid')
        assert.match(sts('webpki').reason, /DEPTH_ZERO_SELF_SIGNED_CERT/)
    })

    it('haraka-dane check applies MTA-STS as the plugin does: the host not named skipped, PKIX checked per address, the policy Haraka keeps shown', async () => {
        const check = async (domain: string): Promise<{ code: number; stdout: string }> => {
            let stdout = ''
            const code = await main(
                ['check', domain, '--resolver', `${dns.resolverAddress}:${dns.port}`, '--timeout', '3000', '-q', '--selftest', 'test.', '--haraka', haraka.dir],
                {
                    stdout: (t) => (stdout += t),
                    stderr: () => undefined,
                },
            )
            return { code, stdout }
        }
        const enforce = await check('enforce.sts.test')
        // WARNING: a host skipped (the one the policy does not name); the one it names PKIX-valid
        assert.equal(enforce.code, 1, enforce.stdout)
        assert.match(enforce.stdout, /^MX 10 rogue\.sts\.test: skip/m)
        assert.match(
            enforce.stdout,
            /rogue\.sts\.test skipped: .*MTA-STS enforce: not among the policy's mx \(mx\.sts\.test\): host not used \(validation-failure\)/,
        )
        assert.match(enforce.stdout, /^MX 20 mx\.sts\.test: sts/m)
        assert.match(enforce.stdout, /mx\.sts\.test \[127\.0\.8\.11\]: certificate PKIX-valid for mx\.sts\.test \(MTA-STS enforce\)/)
        assert.match(enforce.stdout, /^MTA-STS kept by Haraka \(.*\): id e1, mode enforce, mx mx\.sts\.test, fetched .*, expires /m)
        // CRITICAL: neither host PKIX-valid, each named by its result type
        const bad = await check('badcert.sts.test')
        assert.equal(bad.code, 2, bad.stdout)
        assert.match(bad.stdout, /selfsigned\.sts\.test \[127\.0\.8\.14\] fails MTA-STS: .* \(certificate-not-trusted\)/)
        assert.match(
            bad.stdout,
            /wrongname\.sts\.test \[127\.0\.8\.15\] fails MTA-STS: the certificate is not valid for wrongname\.sts\.test.* \(certificate-host-mismatch\)/,
        )
        // testing: a WARNING, not enforced
        const testing = await check('testing.sts.test')
        assert.equal(testing.code, 1, testing.stdout)
        assert.match(testing.stdout, /would fail MTA-STS if the policy were enforced: .*\(certificate-not-trusted\)/)
    })

    it('TLSRPT (RFC 8460 4.3.2.2): the sessions of each domain under the sts policy, with the failures by their result types', async () => {
        let out = ''
        assert.equal(
            await main(['tlsrpt', 'show', '--haraka', haraka.dir, '--date', 'today', '--json', '-q'], {
                stdout: (s: string) => (out += s),
                stderr: () => undefined,
            }),
            0,
        )
        const reports = JSON.parse(out) as { domain: string; report: TlsrptReport }[]
        const policiesOf = (d: string) => reports.find((r) => r.domain === d)!.report.policies
        // enforce: one success under the policy, the host not named a validation-failure
        const enforce = policiesOf('enforce.sts.test')
        assert.equal(enforce.length, 1)
        assert.deepEqual(enforce[0].policy, {
            'policy-type': 'sts',
            'policy-string': ['version: STSv1', 'mode: enforce', 'mx: mx.sts.test', 'max_age: 604800'],
            'policy-domain': 'enforce.sts.test',
            'mx-host': ['mx.sts.test'],
        })
        assert.deepEqual([enforce[0].summary['total-successful-session-count'], enforce[0].summary['total-failure-session-count']], [1, 1])
        assert.deepEqual(
            enforce[0]['failure-details']!.map((f) => [f['result-type'], f['receiving-mx-hostname'], f['failure-reason-code']]),
            [['validation-failure', 'rogue.sts.test', 'mx-not-in-sts-policy']],
        )
        // enforce, both certificates bad: two failures of their kinds, no success
        const bad = policiesOf('badcert.sts.test')[0]
        assert.equal(bad.summary['total-successful-session-count'], 0)
        assert.deepEqual(bad['failure-details']!.map((f) => f['result-type']).sort(), ['certificate-host-mismatch', 'certificate-not-trusted'])
        // testing: the delivered session a failure (its certificate), reported under the testing policy
        const testing = policiesOf('testing.sts.test')[0]
        assert.equal(testing.policy['policy-string']![1], 'mode: testing')
        assert.deepEqual(
            testing['failure-details']!.map((f) => [f['result-type'], f['failure-reason-code']]),
            [['certificate-not-trusted', 'DEPTH_ZERO_SELF_SIGNED_CERT']],
        )
        // no policy to be had: each session that failure, under the sts policy type without a policy
        for (const [d, type] of [
            ['nofetch.sts.test', 'sts-policy-fetch-error'],
            ['webpki.sts.test', 'sts-webpki-invalid'],
        ]) {
            const p = policiesOf(d)[0]
            assert.deepEqual([p.policy['policy-type'], p['failure-details']![0]['result-type']], ['sts', type])
        }
        // DANE decided: its report is under the tlsa policy
        assert.deepEqual(
            policiesOf('dsts.test').map((p) => p.policy['policy-type']),
            ['tlsa'],
        )
    })
})
