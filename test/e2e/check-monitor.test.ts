// Issue 16: `haraka-dane check` as the monitor postmasters reach for, against a world of its own: a signed
// zone mon.test (nsd 127.0.9.52, unbound 127.0.9.53, a second unbound that does not validate on 127.0.9.54)
// and STARTTLS listeners on 127.0.9.x:25 and [::1]:25. Each check runs the real command (its main) and the
// exit code a monitor relies on is asserted with what it printed.
import assert from 'node:assert/strict'
import { DnsWorld, type ZoneSpec } from '../world/dns'
import { makeCertificate, tlsaText } from '../world/certs'
import { Listener } from '../world/smtp'
import { main } from '../../bin/haraka-dane'

const DAY = 86400_000

describe('haraka-dane check as a monitor (issue 16): both families, both certificate types, DNSSEC detail, looking ahead, perfdata', function () {
    this.timeout(60000)
    const dns = new DnsWorld({ nsdAddress: '127.0.9.52', resolverAddress: '127.0.9.53' })
    const PLAIN_RESOLVER = '127.0.9.54'
    const ec = makeCertificate({ cn: 'mx.v6.mon.test' })
    const rsa = makeCertificate({ cn: 'mx.dual.mon.test', keyType: 'rsa' })
    const dualEc = makeCertificate({ cn: 'mx.dual.mon.test' })
    const ca = makeCertificate({ cn: 'Mon Test CA', ca: true })
    const soonLeaf = makeCertificate({ cn: 'mx.soon.mon.test', sans: ['mx.soon.mon.test'], issuer: ca, notAfter: new Date(Date.now() + 3 * DAY + 3600_000) })
    const nextKey = makeCertificate({ cn: 'next key' })
    const plain = makeCertificate({ cn: 'mx.denial.mon.test' })
    const listeners = [
        // AAAA only: [::1]
        new Listener({ address: '::1', certChainPem: ec.pem, keyPem: ec.keyPem }),
        // an RSA and an ECDSA certificate; TLSA for the ECDSA one only
        new Listener({ address: '127.0.9.11', certChainPem: dualEc.pem, keyPem: dualEc.keyPem, also: { certChainPem: rsa.pem, keyPem: rsa.keyPem } }),
        // DANE-TA, the leaf expires in 3 days
        new Listener({ address: '127.0.9.12', certChainPem: soonLeaf.pem + ca.pem, keyPem: soonLeaf.keyPem }),
        new Listener({ address: '127.0.9.13', certChainPem: plain.pem, keyPem: plain.keyPem }),
        // the IPv4 half of a host with both families (the IPv6 half is the [::1] listener)
        new Listener({ address: '127.0.9.14', certChainPem: ec.pem, keyPem: ec.keyPem }),
    ]
    /** `label`.mon.test: one MX host mx.`label` at `addresses`, with these TLSA records and the next key's (none when none) */
    const daneHost = (label: string, addresses: string[], ...tlsa: string[]): string[] => [
        `${label} MX 10 mx.${label}`,
        ...addresses.map((a) => `mx.${label} ${a.includes(':') ? 'AAAA' : 'A'} ${a}`),
        ...(tlsa.length ? [...tlsa, tlsaText(nextKey, 3, 1, 1)] : []).map((t) => `_25._tcp.mx.${label} TLSA ${t}`),
    ]
    const zone: ZoneSpec = {
        name: 'mon.test',
        signing: 'signed',
        records: [
            // each host publishes the key it presents and a next key (no rollover WARNING to hide the one tested)
            ...daneHost('v6', ['::1'], tlsaText(ec, 3, 1, 1)),
            ...daneHost('dual', ['127.0.9.11'], tlsaText(dualEc, 3, 1, 1)),
            ...daneHost('soon', ['127.0.9.12'], tlsaText(ca, 2, 0, 1)),
            ...daneHost('both', ['127.0.9.14', '::1'], tlsaText(ec, 3, 1, 1)),
            // no TLSA records (a secure denial: the name exists), but the A record at the TLSA name is bogus
            ...daneHost('denial', ['127.0.9.13']),
            '_25._tcp.mx.denial A 127.0.0.1',
        ],
        tamper: [{ owner: '_25._tcp.mx.denial.mon.test.', type: 'A', rdata: '127.0.0.2' }],
    }

    const check = async (domain: string, ...more: string[]): Promise<{ code: number; stdout: string; first: string }> => {
        let stdout = ''
        const code = await main(
            ['check', domain, '--resolver', `${dns.resolverAddress}:${dns.port}`, '--timeout', '3000', '-q', '--selftest', 'test.', ...more],
            {
                stdout: (t) => (stdout += t),
                stderr: () => undefined,
            },
        )
        // DANE_SHOW_CHECKS=1: print what each check printed (the README's examples come from here)
        if (process.env.DANE_SHOW_CHECKS) console.log(`$ haraka-dane check ${domain} ${more.join(' ')}\n${stdout}(exit ${code})\n`)
        return { code, stdout, first: stdout.split('\n')[0] }
    }

    before(async () => {
        await dns.start([zone])
        await dns.startNonValidatingResolver(PLAIN_RESOLVER)
        for (const l of listeners) await l.start()
    })
    after(async () => {
        for (const l of listeners) await l.stop()
        await dns.stop()
    })

    it('every address of both families is probed (an AAAA-only host on ::1 included); -4 and -6 restrict the probes to one', async () => {
        const v6 = await check('v6.mon.test')
        assert.equal(v6.code, 0, v6.stdout)
        assert.match(v6.stdout, /^ {2}\[::1\]:25 ECDSA \[OK\]/m)
        assert.match(v6.stdout, /DANE: verified: 3 1 1 /)
        const both = await check('both.mon.test')
        assert.equal(both.code, 0, both.stdout)
        assert.match(both.stdout, /^ {2}127\.0\.9\.14:25 ECDSA \[OK\]/m)
        assert.match(both.stdout, /^ {2}\[::1\]:25 ECDSA \[OK\]/m)
        const only4 = await check('both.mon.test', '-4')
        assert.match(only4.stdout, /127\.0\.9\.14:25/)
        assert.doesNotMatch(only4.stdout, /\[::1\]:25/)
        const only6 = await check('both.mon.test', '-6')
        assert.match(only6.stdout, /\[::1\]:25/)
        assert.doesNotMatch(only6.stdout, /127\.0\.9\.14:25/)
        const neither = await check('v6.mon.test', '-4', '-6')
        assert.equal(neither.code, 3)
        // -4 where the only host has no IPv4 address: nothing was checked, and the monitor is told so (UNKNOWN)
        const none = await check('v6.mon.test', '-4')
        assert.equal(none.code, 3, none.stdout)
        assert.match(none.first, /nothing was probed: no MX host has an IPv4 address/)
    })

    it('both certificate types: an RSA chain that matches no TLSA record beside a matching ECDSA one is CRITICAL, each type named', async () => {
        const r = await check('dual.mon.test')
        assert.equal(r.code, 2, r.stdout)
        assert.match(r.first, /^DANE CRITICAL - dual\.mon\.test: mx\.dual\.mon\.test \[127\.0\.9\.11\] \(RSA\) fails DANE verification: no-match/)
        assert.match(r.stdout, /^ {2}127\.0\.9\.11:25 ECDSA \[OK\]/m)
        assert.match(r.stdout, /^ {2}127\.0\.9\.11:25 RSA \[CRITICAL\]/m)
        // a host that serves one type only: the other is a note, not a failure
        const v6 = await check('v6.mon.test')
        assert.match(v6.stdout, /note: ::1 serves no RSA certificate/)
    })

    it('looking ahead: a DANE-TA leaf that expires in 3 days is a WARNING within --days 14 (the default), not within --days 2; perfdata says so', async () => {
        const r = await check('soon.mon.test')
        assert.equal(r.code, 1, r.stdout)
        assert.match(
            r.first,
            /mx\.soon\.mon\.test \[127\.0\.9\.12\] would fail DANE verification in 3 day\(s\), within 14: expired: CN=mx\.soon\.mon\.test at depth 0/,
        )
        assert.match(r.stdout, /depth 0: CN=mx\.soon\.mon\.test .*expires in 3 day\(s\)/)
        // Nagios perfdata after the "|": days to the nearest expiry that matters, the WARNING level, DNS and handshake times
        assert.match(r.first, / \| 'dns_ms'=\d+ms;;;0 'handshake_ms'=\d+ms;;;0 'expiry_days'=3;14:;0:$/)
        const later = await check('soon.mon.test', '--days', '2')
        assert.equal(later.code, 0, later.stdout)
        assert.match(later.first, /'expiry_days'=3;2:;0:$/)
    })

    it('DNSSEC detail: the AD bit of every answer, and a secure TLSA denial whose name fails for another type is a WARNING', async () => {
        const r = await check('denial.mon.test')
        assert.equal(r.code, 1, r.stdout)
        assert.match(r.stdout, /the denial of TLSA records at _25\._tcp\.mx\.denial\.mon\.test looks broken: A at the same name fails/)
        assert.match(r.stdout, /^ {2}TLSA _25\._tcp\.mx\.denial\.mon\.test: nodata, AD=1$/m)
        assert.match(r.stdout, /^ {2}A _25\._tcp\.mx\.denial\.mon\.test: failed, AD=0 .*\(denial check/m)
        assert.match(r.stdout, /^ {2}MX denial\.mon\.test: ok, AD=1$/m)
        assert.match(r.stdout, /resolver self-test: validates/)
    })

    it('the resolver self-test: a resolver that does not validate is CRITICAL (DANE would silently never apply), AD=0 on every answer', async () => {
        let stdout = ''
        const code = await main(['check', 'v6.mon.test', '--resolver', `${PLAIN_RESOLVER}:${dns.port}`, '--timeout', '3000', '-q', '--selftest', 'test.'], {
            stdout: (t) => (stdout += t),
            stderr: () => undefined,
        })
        if (process.env.DANE_SHOW_CHECKS) console.log(`$ haraka-dane check v6.mon.test --resolver ${PLAIN_RESOLVER}\n${stdout}(exit ${code})\n`)
        assert.equal(code, 2, stdout)
        assert.match(
            stdout.split('\n')[0],
            /^DANE CRITICAL - v6\.mon\.test: the resolver does not validate: A test nodata, AD not set; every answer would look insecure/,
        )
        assert.match(stdout, /^ {2}MX v6\.mon\.test: ok, AD=0$/m)
        assert.match(stdout, /resolver self-test: DOES NOT VALIDATE/)
    })

    it('the self-test by default asks the root: a resolver that cannot answer it (this world has no root) is UNKNOWN, never CRITICAL', async () => {
        let stdout = ''
        const code = await main(['check', 'v6.mon.test', '--resolver', `${dns.resolverAddress}:${dns.port}`, '--timeout', '3000', '-q'], {
            stdout: (t) => (stdout += t),
            stderr: () => undefined,
        })
        assert.equal(code, 3, stdout)
        assert.match(stdout.split('\n')[0], /^DANE UNKNOWN - v6\.mon\.test: the resolver self-test got no answer: A \. failed/)
        assert.match(stdout, /^ {2}A \.: failed, AD=0/m)
    })
})
