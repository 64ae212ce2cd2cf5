// Issue 15 (MTA-STS, RFC 8461 5, 10.2): a destination's policy from real parts: its `_mta-sts` TXT record
// in a signed zone served by nsd and validated by unbound (127.0.7.52/53), asked through the plugin's own
// resolver; the policy from a real HTTPS server at the address of mta-sts.sts.test (127.0.7.81:443, a
// test CA given as the CA; the system store is never changed); kept in the file store across a restart.
// The clock is moved by the test, never waited for.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'
import { DnsWorld, type ZoneSpec } from '../world/dns'
import { makeCertificate } from '../world/certs'
import { Resolver } from '../../lib/resolver'
import { resolverSettingsOrThrow } from '../../lib/config'
import { FileStsStore, StsPolicies } from '../../lib/mtasts/service'
import { policyHostAddresses } from '../../lib/mtasts/open'
import { main } from '../../bin/haraka-dane'

const POLICY_ADDRESS = '127.0.7.81'
const PORT = 443
const H = 3600_000

describe('MTA-STS: the policy in force, from real DNS and a real policy server (RFC 8461 5)', function () {
    this.timeout(60000)
    const dns = new DnsWorld({ nsdAddress: '127.0.7.52', resolverAddress: '127.0.7.53' })
    const ca = makeCertificate({ cn: 'STS Test CA', ca: true })
    // two MX hosts (nothing listens on them: the check's probes fail fast), the policy allows the first
    const zone = (txt: string[]): ZoneSpec => ({
        name: 'sts.test',
        signing: 'signed',
        records: [
            ...txt.map((t) => `_mta-sts TXT "${t}"`),
            `mta-sts A ${POLICY_ADDRESS}`,
            '@ MX 10 mx',
            '@ MX 20 backup',
            'mx A 127.0.7.91',
            'backup A 127.0.7.92',
            '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@sts.test"',
        ],
    })
    let served = 'version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 604800\n'
    let requests = 0
    let server: https.Server | undefined
    let resolver: Resolver
    let dir: string
    let now = Date.parse('2026-11-24T00:00:00Z')
    const faults: string[] = []
    const service = () =>
        new StsPolicies({
            lookupTxt: (name) => resolver.lookup(name, 'TXT'),
            addresses: (host) => policyHostAddresses(resolver, host),
            store: new FileStsStore(dir),
            ca: ca.pem,
            port: PORT,
            timeoutMs: 3000,
            now: () => now,
            fault: (m) => faults.push(m),
        })
    const startServer = async (): Promise<void> => {
        const cert = makeCertificate({ cn: 'mta-sts.sts.test', sans: ['mta-sts.sts.test'], issuer: ca })
        server = https.createServer({ cert: cert.pem, key: cert.keyPem }, (_req, res) => {
            requests++
            res.writeHead(200, { 'Content-Type': 'text/plain' }).end(served)
        })
        await new Promise<void>((r) => server!.listen(PORT, POLICY_ADDRESS, r))
    }
    const stopServer = async (): Promise<void> => {
        await new Promise<void>((r) => (server ? server.close(() => r()) : r()))
        server = undefined
    }

    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-sts-'))
        await dns.start([zone(['v=STSv1; id=one'])])
        // no cache of the plugin's own: each step sees the zone as it is now
        resolver = new Resolver(
            resolverSettingsOrThrow({
                address: dns.resolverAddress,
                port: dns.port,
                timeoutMs: 2000,
                retries: 1,
                cacheSize: 0,
                cacheMaxBytes: 1 << 20,
                trustNonLoopback: false,
            }),
        )
        await startServer()
    })
    after(async () => {
        await stopServer()
        resolver?.close()
        await dns.stop()
        fs.rmSync(dir, { recursive: true, force: true })
    })

    it('haraka-dane check shows the TLSRPT record and the MTA-STS policy as published, which MX hosts it allows, and that it applies (no DANE here)', async () => {
        const caFile = path.join(dir, 'sts-ca.pem')
        fs.writeFileSync(caFile, ca.pem)
        let stdout = ''
        await main(
            ['check', 'sts.test', '--resolver', `${dns.resolverAddress}:${dns.port}`, '--timeout', '2000', '-q', '--selftest', 'test.', '--sts-ca', caFile],
            {
                stdout: (t) => (stdout += t),
                stderr: () => undefined,
            },
        )
        assert.match(stdout, /^TLSRPT: reports go to mailto:tlsrpt@sts\.test$/m)
        assert.match(stdout, /^MTA-STS: policy id one, mode enforce, max_age 604800 s, mx mx\.sts\.test$/m)
        assert.match(stdout, /^ {2}mx\.sts\.test: allowed \(mx\.sts\.test\)$/m)
        assert.match(stdout, /^ {2}backup\.sts\.test: not allowed by the policy$/m)
        assert.match(stdout, /^MTA-STS applies: the DNS shows no DANE for mx\.sts\.test, backup\.sts\.test$/m)
        // the check keeps nothing: the service's own first fetch is still to come
        requests = 0
        assert.equal(fs.readdirSync(dir).filter((f) => /^sts-[0-9a-f]{64}\.json$/.test(f)).length, 0)
    })

    it('C36: first asked, the policy is fetched once however many deliveries ask at once, and kept on disk', async () => {
        const s = service()
        const all = await Promise.all([s.policyFor('sts.test'), s.policyFor('sts.test'), s.policyFor('STS.test.')])
        assert.equal(requests, 1)
        for (const o of all) assert.deepEqual(o.inForce, { mode: 'enforce', mx: ['mx.sts.test'], maxAge: 604800 })
        assert.equal(all[0].plan.fetch, true)
        const kept = JSON.parse(fs.readFileSync(new FileStsStore(dir).file('sts.test'), 'utf8'))
        assert.deepEqual([kept.id, kept.policy.mode, kept.expires - kept.fetchedAt], ['one', 'enforce', 604800_000])
    })

    it('C36: after a restart the kept policy is used without a fetch while the id is unchanged', async () => {
        now += H
        const o = await service().policyFor('sts.test')
        assert.equal(requests, 1)
        assert.deepEqual([o.plan.fetch, o.inForce?.mode], [false, 'enforce'])
        assert.match(o.reason, /kept policy \(id one\) is in force/)
    })

    it('C36: the TXT record removed (or blocked) after the policy was kept: the policy is still enforced', async () => {
        await dns.updateZone(zone([]))
        now += H
        const o = await service().policyFor('sts.test')
        assert.deepEqual([o.plan.fetch, o.inForce?.mode, requests], [false, 'enforce', 1])
        assert.match(o.plan.why, /no usable record .*stays until it expires/)
    })

    it('C36: a changed id is fetched again, and the new policy replaces the kept one', async () => {
        served = 'version: STSv1\nmode: testing\nmx: *.sts.test\nmax_age: 86400\n'
        await dns.updateZone(zone(['v=STSv1; id=two']))
        now += H
        const o = await service().policyFor('sts.test')
        assert.deepEqual([o.plan.fetch, o.inForce?.mode, requests], [true, 'testing', 2])
        assert.equal(JSON.parse(fs.readFileSync(new FileStsStore(dir).file('sts.test'), 'utf8')).id, 'two')
    })

    it('C36: the policy server down at the refresh: the kept policy stays in force until it expires, then none', async () => {
        await stopServer()
        now += 23.5 * H // within the last day of its max_age (a day): refreshed, the server refuses
        const refresh = await service().policyFor('sts.test')
        assert.deepEqual([refresh.plan.fetch, refresh.inForce?.mode, refresh.resultType], [true, 'testing', 'sts-policy-fetch-error'])
        assert.match(refresh.reason, /the fetch failed .*ECONNREFUSED.*stays in force until it expires/)
        // RFC 8461 3.3: the failed fetch is not made again for five minutes (not once a delivery)
        now += 60_000
        const soon = await service().policyFor('sts.test')
        assert.equal(soon.plan.fetch, true, 'a new service (a restart) remembers no failure: it tries once')
        const s = service()
        await s.policyFor('sts.test')
        now += 60_000
        const again = await s.policyFor('sts.test')
        assert.deepEqual([again.plan.fetch, again.inForce?.mode, again.resultType], [false, 'testing', 'sts-policy-fetch-error'])
        assert.match(again.plan.why, /the last fetch failed 60 s ago, tried again after 5 min/)
        now += 5 * 60_000
        assert.equal((await s.policyFor('sts.test')).plan.fetch, true)
        now += H // expired
        const expired = await service().policyFor('sts.test')
        assert.deepEqual([expired.inForce, expired.resultType], [undefined, 'sts-policy-fetch-error'])
        // an expired policy lapses where it is kept, never deleted (another node may have just kept a newer one)
        assert.ok(JSON.parse(fs.readFileSync(new FileStsStore(dir).file('sts.test'), 'utf8')).expires <= now)
        assert.deepEqual(faults, [])
    })
})
