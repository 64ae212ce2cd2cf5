// The haraka-dane command against the real test world: nsd + unbound on
// 127.0.0.52/53 and STARTTLS listeners on 127.0.0.x:25. The compiled command
// runs as a child process, as an operator or a Nagios-style monitor runs it.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { makeCertificate, tlsaText, TestCert } from '../world/certs'
import { startScenarioWorld, ScenarioWorld } from '../world/scenarios'

const BIN = path.resolve(__dirname, '../../bin/haraka-dane.js')

interface Run {
    code: number | null
    stdout: string
    stderr: string
}

// asynchronous on purpose: the world's listeners live in this process and must keep answering
function run(args: string[], timeoutMs = 15000): Promise<Run> {
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
        let stdout = ''
        let stderr = ''
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')))
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')))
        const timer = setTimeout(() => {
            child.kill('SIGKILL')
            reject(new Error(`haraka-dane ${args.join(' ')} did not finish within ${timeoutMs} ms`))
        }, timeoutMs)
        child.on('error', reject)
        child.on('close', (code) => {
            clearTimeout(timer)
            resolve({ code, stdout, stderr })
        })
    })
}

describe('haraka-dane command line, against the test world', function () {
    this.timeout(30000)
    let world: ScenarioWorld
    let resolver: string
    let dir: string
    const check = (domain: string, ...more: string[]) =>
        run(['check', domain, '--resolver', resolver, '--timeout', '3000', '-q', '--selftest', 'test.', ...more])
    const firstLine = (r: Run) => r.stdout.split('\n')[0]

    before(async () => {
        world = await startScenarioWorld()
        resolver = `${world.dns.resolverAddress}:${world.dns.port}`
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-cli-'))
    })

    after(async () => {
        await world?.stop()
        if (dir) fs.rmSync(dir, { recursive: true, force: true })
    })

    function writePem(name: string, ...certs: TestCert[]): string {
        const file = path.join(dir, name)
        fs.writeFileSync(file, certs.map((c) => c.pem).join(''))
        return file
    }

    it('C14, C18, C19: check ee.dane.test: verified, names the matched record and depth, warns that no next key is published', async () => {
        const sniBefore = world.listeners.get('ee')!.sniSeen.length
        const r = await check('ee.dane.test')
        assert.equal(r.code, 1, r.stdout + r.stderr)
        assert.match(firstLine(r), /^DANE WARNING - ee\.dane\.test: mx\.ee\.dane\.test \[127\.0\.0\.11\] verified by 3 1 1 [0-9a-f]{16}… at depth 0/)
        assert.match(firstLine(r), /only TLSA record: no next key is published \(rollover trap/)
        // C18: the full matching record and its depth in the details
        assert.ok(r.stdout.includes(`DANE: verified: ${tlsaText(world.certs.ee, 3, 1, 1)} at depth 0`), r.stdout)
        // C14: the leaf is expired and misnamed, and that does not matter for DANE-EE
        assert.match(r.stdout, /the leaf expired .*ignored by DANE-EE/)
        // C19: SNI is the TLSA base domain
        // one probe a certificate type (ECDSA, RSA), each with the same SNI
        assert.deepEqual(world.listeners.get('ee')!.sniSeen.slice(sniBefore), ['mx.ee.dane.test', 'mx.ee.dane.test'])
    })

    it('check ee.dane.test also shows where its TLS reports go, and that MTA-STS does not apply where DANE does', async () => {
        const r = await check('ee.dane.test')
        assert.match(r.stdout, /^TLSRPT: reports go to mailto:tlsrpt@ee\.dane\.test$/m)
        assert.match(r.stdout, /^MTA-STS: no policy \(_mta-sts\.ee\.dane\.test: nxdomain\)$/m)
        assert.match(r.stdout, /^MTA-STS does not apply: DANE \(or a failed lookup\) decides every MX host this destination uses \(RFC 8461 2\)$/m)
        const j = JSON.parse((await check('unusable.dane.test', '--json')).stdout)
        assert.match(j.reporting.tlsrpt.none, /2 records begin with "v=TLSRPTv1;"; exactly one is required/)
        // only unusable TLSA records: DANE still decides (C12: TLS without authentication), MTA-STS does not
        assert.equal(j.reporting.mtasts.applies, false)
        assert.match(j.reporting.mtasts.why, /DANE \(or a failed lookup\) decides every MX host/)
        // the operator's word decides for itself
        const may = JSON.parse((await check('insecure.test', '--json')).stdout)
        assert.equal(may.reporting.mtasts.applies, true, 'an unsigned domain: no DANE, MTA-STS would apply')
    })

    it('C8, C19: check cu.dane.test: a secure CNAME into an unsigned zone is probed with SNI the original name and verified by its TLSA', async () => {
        const sniBefore = world.listeners.get('cu')!.sniSeen.length
        const r = await check('cu.dane.test')
        assert.match(r.stdout, /CNAME → smtp\.insecure\.test/)
        assert.match(r.stdout, /addresses: 127\.0\.0\.32 \(insecure\)/)
        assert.match(r.stdout, /TLSA _25\._tcp\.smtp\.cu\.dane\.test: secure, 1 record\(s\), 1 usable/)
        assert.ok(r.stdout.includes(`DANE: verified: ${tlsaText(world.certs.good, 3, 1, 1)} at depth 0`), r.stdout)
        // one probe a certificate type (ECDSA, RSA), each with the same SNI
        assert.deepEqual(world.listeners.get('cu')!.sniSeen.slice(sniBefore), ['smtp.cu.dane.test', 'smtp.cu.dane.test'])
    })

    it('C7: check v4.dane.test: a failed AAAA lookup is a WARNING; the host is still verified over IPv4', async () => {
        const r = await check('v4.dane.test')
        assert.equal(r.code, 1, r.stdout + r.stderr)
        assert.match(firstLine(r), /mx\.v4\.dane\.test: AAAA lookup failed; only the other address family is used/)
        assert.match(r.stdout, /addresses: 127\.0\.0\.34 \(secure; AAAA lookup failed, not used\)/)
        assert.match(r.stdout, /DANE: verified: 3 1 1 /)
    })

    it('C16: check nh.dane.test: the next-hop domain is listed among the reference names, and the leaf matched it', async () => {
        const r = await check('nh.dane.test')
        assert.match(r.stdout, /reference names \(DANE-TA\): mx\.nh\.dane\.test, nh\.dane\.test/)
        assert.match(r.stdout, /DANE: verified: 2 0 1 [0-9a-f]{64} at depth 2 \(anchor presented\); leaf name nh\.dane\.test/)
    })

    it('C9, C25: check allbad.dane.test: CRITICAL, both hosts fail verification (validation-failure)', async () => {
        const r = await check('allbad.dane.test')
        assert.equal(r.code, 2, r.stdout + r.stderr)
        assert.match(firstLine(r), /^DANE CRITICAL - allbad\.dane\.test: /)
        assert.match(firstLine(r), /mx1\.allbad\.dane\.test \[127\.0\.0\.15\] fails DANE verification: no-match: .*\(validation-failure\)/)
        assert.match(firstLine(r), /mx2\.allbad\.dane\.test \[127\.0\.0\.16\] fails DANE verification: no-match: .*\(validation-failure\)/)
        assert.match(r.stdout, /DANE: FAILED: no-match \(validation-failure\)/)
    })

    it('C11: check servfail.dane.test: CRITICAL (deferred, dnssec-invalid) without connecting to the host', async () => {
        const before = world.listeners.get('servfail')!.connections.length
        const r = await check('servfail.dane.test')
        assert.equal(r.code, 2, r.stdout + r.stderr)
        assert.match(firstLine(r), /^DANE CRITICAL - servfail\.dane\.test: mail would be deferred: .*servfail.*\(dnssec-invalid\)/)
        assert.equal(world.listeners.get('servfail')!.connections.length, before, 'a host whose TLSA lookup failed is not contacted')
    })

    it('C4: check bogusmx.dane.test: CRITICAL, a bogus MX RRset defers', async () => {
        const r = await check('bogusmx.dane.test')
        assert.equal(r.code, 2, r.stdout + r.stderr)
        assert.match(firstLine(r), /mail would be deferred: MX lookup for bogusmx\.dane\.test failed \(servfail\)/)
    })

    it('C10: check insecure.test: OK, DANE does not apply', async () => {
        const r = await check('insecure.test')
        assert.equal(r.code, 0, r.stdout + r.stderr)
        assert.match(firstLine(r), /^DANE OK - insecure\.test: DANE does not apply: .*insecure.*opportunistic TLS/)
    })

    it('C9, C25: check nostarttls.dane.test: CRITICAL, starttls-not-supported', async () => {
        const r = await check('nostarttls.dane.test')
        assert.equal(r.code, 2, r.stdout + r.stderr)
        assert.match(
            firstLine(r),
            /^DANE CRITICAL - nostarttls\.dane\.test: mx\.nostarttls\.dane\.test \[127\.0\.0\.17\] does not offer STARTTLS.*\(starttls-not-supported\)/,
        )
        assert.match(r.stdout, /STARTTLS: NOT offered/)
    })

    it('C9: check fallback.dane.test: CRITICAL when one DANE host fails, even though the other verifies', async () => {
        const r = await check('fallback.dane.test')
        assert.equal(r.code, 2, r.stdout + r.stderr)
        assert.match(firstLine(r), /^DANE CRITICAL - fallback\.dane\.test: mx1\.fallback\.dane\.test \[127\.0\.0\.13\] fails DANE verification/)
        assert.ok(r.stdout.includes(`DANE: verified: ${tlsaText(world.certs.good, 3, 1, 1)} at depth 0`), 'mx2 verified in the details')
    })

    it('C8, C16, C19: check cname.dane.test: TLSA at the expanded name, its name as SNI, DANE-TA name check passes', async () => {
        const sniBefore = world.listeners.get('cname')!.sniSeen.length
        const r = await check('cname.dane.test')
        assert.equal(r.code, 1, r.stdout + r.stderr) // one record only: the rollover warning
        assert.match(r.stdout, /TLSA _25\._tcp\.real\.hosting\.dane\.test: secure/)
        assert.match(r.stdout, /DANE: verified: 2 1 1 [0-9a-f]{64} at depth 1 \(anchor presented\); leaf name real\.hosting\.dane\.test/)
        // one probe a certificate type (ECDSA, RSA), each with the same SNI
        assert.deepEqual(world.listeners.get('cname')!.sniSeen.slice(sniBefore), ['real.hosting.dane.test', 'real.hosting.dane.test'])
    })

    it('C12, C25: check unusable.dane.test: WARNING, encrypt only (tlsa-invalid)', async () => {
        const r = await check('unusable.dane.test')
        assert.equal(r.code, 1, r.stdout + r.stderr)
        assert.match(firstLine(r), /^DANE WARNING - unusable\.dane\.test: mx\.unusable\.dane\.test: encrypt only: .*\(tlsa-invalid\)/)
    })

    it('cli: check --json prints one JSON object carrying decision, probes, verdict and the exit code', async () => {
        const r = await check('allbad.dane.test', '--json')
        assert.equal(r.code, 2)
        const j = JSON.parse(r.stdout) as {
            exitCode: number
            decision: { action: string; hosts: { name: string; mode: string; tlsa: { records: { text: string; usable: boolean }[] } }[] }
            probes: {
                host: string
                address: string
                startTlsOffered: boolean
                verify: { authenticated: boolean; failure: { code: string; resultType: string } }
            }[]
            verdict: { status: string; summary: string }
        }
        assert.equal(j.exitCode, 2)
        assert.equal(j.verdict.status, 'CRITICAL')
        assert.match(j.verdict.summary, /^DANE CRITICAL - allbad\.dane\.test/)
        assert.equal(j.decision.action, 'deliver')
        assert.deepEqual(
            j.decision.hosts.map((h) => h.mode),
            ['dane', 'dane'],
        )
        assert.equal(j.decision.hosts[0].tlsa.records[0].text, tlsaText(world.certs.wrong, 3, 1, 1))
        assert.equal(j.probes.length, 2)
        for (const p of j.probes) {
            assert.equal(p.startTlsOffered, true)
            assert.equal(p.verify.authenticated, false)
            assert.equal(p.verify.failure.code, 'no-match')
            assert.equal(p.verify.failure.resultType, 'validation-failure')
        }
        const ok = await check('insecure.test', '--json')
        assert.equal(ok.code, 0)
        assert.equal((JSON.parse(ok.stdout) as { exitCode: number }).exitCode, 0)
    })

    it('C1: a resolver the AD bit cannot be trusted from is refused (UNKNOWN); an unreachable one is UNKNOWN too', async () => {
        const far = await run(['check', 'ee.dane.test', '--resolver', '192.0.2.53'])
        assert.equal(far.code, 3)
        assert.match(far.stderr, /not loopback.*--trust-resolver/)
        assert.equal(far.stdout, '')
        const down = await run(['check', 'ee.dane.test', '--resolver', '127.0.0.99', '--timeout', '500', '-q'])
        assert.equal(down.code, 3, down.stdout + down.stderr)
        assert.match(firstLine(down), /^DANE UNKNOWN - ee\.dane\.test: cannot check: the resolver is unreachable/)
    })

    it('cli: tlsa prints 3 1 1 for the leaf and 2 1 1 for its issuer, stdout pasteable, comments on stderr', async () => {
        const root = makeCertificate({ cn: 'CLI Root', ca: true })
        const leaf = makeCertificate({ cn: 'mx.cli.test', sans: ['mx.cli.test'], issuer: root })
        const single = await run(['tlsa', writePem('leaf.pem', leaf)])
        assert.equal(single.code, 0, single.stderr)
        assert.equal(single.stdout, `${tlsaText(leaf, 3, 1, 1)}\n`)
        assert.match(single.stderr, /^; 3 1 1 for the leaf: CN=mx\.cli\.test/m)

        const chain = writePem('chain.pem', leaf, root)
        const both = await run(['tlsa', chain])
        assert.equal(both.stdout, `${tlsaText(leaf, 3, 1, 1)}\n${tlsaText(root, 2, 1, 1)}\n`)
        assert.match(both.stderr, /; 2 1 1 for the leaf's issuer: CN=CLI Root/)

        const zone = await run(['tlsa', chain, '--host', 'mx.cli.test', '--usage', '2', '--selector', '0', '--mtype', '2'])
        assert.equal(zone.stdout, `_25._tcp.mx.cli.test. IN TLSA ${tlsaText(root, 2, 0, 2)}\n`)
        const ee = await run(['tlsa', chain, '--usage', 'dane-ee', '--selector', 'cert', '--mtype', 'full'])
        assert.equal(ee.stdout, `${tlsaText(leaf, 3, 0, 0)}\n`)
    })

    it('cli: rollover ee.dane.test --next <the live certificate>: OK (0) with the TTL and the 2×TTL advice', async () => {
        const r = await run(['rollover', 'ee.dane.test', '--next', writePem('ee.pem', world.certs.ee), '--resolver', resolver, '-q'])
        assert.equal(r.code, 0, r.stdout + r.stderr)
        assert.match(firstLine(r), /^DANE ROLLOVER OK - ee\.dane\.test: all 1 DANE host\(s\) would authenticate the new chain/)
        assert.ok(r.stdout.includes(`authenticated by ${tlsaText(world.certs.ee, 3, 1, 1)} at depth 0`))
        const ttl = /TLSA TTL (\d+) s/.exec(r.stdout)
        assert.ok(ttl && Number(ttl[1]) > 0 && Number(ttl[1]) <= 60, r.stdout)
        assert.match(r.stdout, new RegExp(`at least 2×TTL = ${2 * Number(ttl![1])} s`))
    })

    it('cli: rollover ee.dane.test --next <a new certificate>: CRITICAL (2), prints the record to publish', async () => {
        const fresh = makeCertificate({ cn: 'mx.ee.dane.test' })
        const r = await run(['rollover', 'ee.dane.test', '--next', writePem('fresh.pem', fresh), '--resolver', resolver, '-q'])
        assert.equal(r.code, 2, r.stdout + r.stderr)
        assert.match(firstLine(r), /^DANE ROLLOVER CRITICAL - ee\.dane\.test: mx\.ee\.dane\.test would not authenticate/)
        assert.ok(r.stdout.includes(`_25._tcp.mx.ee.dane.test. IN TLSA ${tlsaText(fresh, 3, 1, 1)}\n`), r.stdout)
    })

    it('cli: rollover of a domain without DANE hosts: nothing to check (1)', async () => {
        const r = await run(['rollover', 'insecure.test', '--next', writePem('ee2.pem', world.certs.ee), '--resolver', resolver, '-q'])
        assert.equal(r.code, 1, r.stdout + r.stderr)
        assert.match(firstLine(r), /no DANE host: nothing to check/)
    })

    it('cli: bad usage exits 3 with the usage text on stderr', async () => {
        const cases: string[][] = [
            [],
            ['frobnicate'],
            ['check'],
            ['check', 'ee.dane.test', '--no-such-option'],
            ['check', 'ee.dane.test', 'extra'],
            ['check', 'ee.dane.test', '--timeout', 'soon'],
            ['check', 'ee.dane.test', '--resolver', 'not-an-ip'],
            ['tlsa'],
            ['tlsa', path.join(dir, 'missing.pem')],
            ['tlsa', writePem('u.pem', world.certs.ee), '--usage', '1'],
            ['rollover', 'ee.dane.test'],
        ]
        const runs = await Promise.all(cases.map((c) => run(c)))
        runs.forEach((r, i) => {
            assert.equal(r.code, 3, `${cases[i].join(' ')}: ${r.stdout}${r.stderr}`)
            assert.equal(r.stdout, '', cases[i].join(' '))
            assert.notEqual(r.stderr, '')
        })
        assert.match(runs[3].stderr, /Unknown option '--no-such-option'[\s\S]*Usage: haraka-dane check/)
        const help = await run(['check', '--help'])
        assert.equal(help.code, 0)
        assert.match(help.stdout, /^Usage: haraka-dane check <domain>/)
    })
})
