// The command line's pure parts: argument handling (in-process, no network)
// and the verdicts of lib/check.ts on hand-made decisions and probe results.
import assert from 'node:assert/strict'
import { main, parseResolver } from '../../bin/haraka-dane'
import { checkVerdict, rolloverVerdict, briefRecord, renderPerfData } from '../../lib/check'
import type { Decision, HostDecision } from '../../lib/policy'
import type { ProbeResult } from '../../lib/probe'
import { tlsaFromText } from '../../lib/tlsa'
import { parseChain } from '../../lib/verify'
import { makeCertificate, tlsaText, TestCert } from '../world/certs'

function capture(): { out: { stdout: (s: string) => void; stderr: (s: string) => void }; stdout: () => string; stderr: () => string } {
    let o = ''
    let e = ''
    return { out: { stdout: (s) => (o += s), stderr: (s) => (e += s) }, stdout: () => o, stderr: () => e }
}

function host(name: string, mode: HostDecision['mode'], records: string[] = [], extra: Partial<HostDecision> = {}): HostDecision {
    const recs = records.map(tlsaFromText)
    return {
        name,
        preference: 10,
        addresses: ['127.0.0.1'],
        addressSecure: true,
        tlsaBase: name,
        referenceNames: [name],
        tlsa: { state: records.length ? 'secure' : 'none', records: recs, usable: recs.length },
        mode,
        reason: `test host ${mode}`,
        ...extra,
    }
}

function decision(hosts: HostDecision[], extra: Partial<Decision> = {}): Decision {
    return { domain: 'example.test', policy: 'dane', exception: false, mxSecure: true, implicitMx: false, action: 'deliver', reason: 'test', hosts, ...extra }
}

function tlsProbe(chain: TestCert[], address = '127.0.0.1'): ProbeResult {
    return {
        address,
        port: 25,
        connected: true,
        greeting: { code: 220, lines: ['hi'] },
        ehlo: { code: 250, lines: ['hi', 'STARTTLS'] },
        startTlsOffered: true,
        startTlsReply: { code: 220, lines: ['go'] },
        tls: { protocol: 'TLSv1.3', cipher: 'x', servername: 'mx', chain: chain.map((c) => c.der), handshakeMs: 1 },
        ms: 2,
    }
}

function noTlsProbe(address = '127.0.0.1'): ProbeResult {
    return { address, port: 25, connected: true, greeting: { code: 220, lines: ['hi'] }, ehlo: { code: 250, lines: ['hi'] }, startTlsOffered: false, ms: 1 }
}

function deadProbe(address = '127.0.0.1'): ProbeResult {
    return { address, port: 25, connected: false, error: { step: 'connect', message: 'ECONNREFUSED' }, ms: 1 }
}

describe('cli: arguments', () => {
    it('cli: --resolver accepts ADDR, ADDR:PORT, IPv6 and [IPv6]:PORT', () => {
        assert.deepEqual(parseResolver('127.0.0.53'), { address: '127.0.0.53', port: 53 })
        assert.deepEqual(parseResolver('127.0.0.1:5353'), { address: '127.0.0.1', port: 5353 })
        assert.deepEqual(parseResolver('::1'), { address: '::1', port: 53 })
        assert.deepEqual(parseResolver('[::1]:5300'), { address: '::1', port: 5300 })
        assert.throws(() => parseResolver('localhost'))
        assert.throws(() => parseResolver('127.0.0.1:0'))
        assert.throws(() => parseResolver('127.0.0.1:x'))
    })

    it('cli: unknown commands and options, missing arguments → 3 with usage on stderr, nothing on stdout', async () => {
        for (const argv of [
            [],
            ['nope'],
            ['check'],
            ['check', 'a.test', '--frob'],
            ['tlsa', '--usage', '3'],
            ['rollover', 'a.test'],
            ['check', 'not a domain'],
        ]) {
            const c = capture()
            assert.equal(await main(argv, c.out), 3, argv.join(' '))
            assert.equal(c.stdout(), '')
            assert.match(c.stderr(), /Usage: haraka-dane/)
        }
    })

    it('C1: a non-loopback resolver is refused unless --trust-resolver', async () => {
        const c = capture()
        assert.equal(await main(['check', 'a.test', '--resolver', '192.0.2.1'], c.out), 3)
        assert.match(c.stderr(), /not loopback/)
    })

    it('cli: --help for each command → 0 on stdout', async () => {
        for (const cmd of ['check', 'tlsa', 'rollover']) {
            const c = capture()
            assert.equal(await main([cmd, '--help'], c.out), 0)
            assert.match(c.stdout(), new RegExp(`^Usage: haraka-dane ${cmd}`))
        }
        const c = capture()
        assert.equal(await main(['--help'], c.out), 0)
        assert.match(c.stdout(), /Commands:/)
    })

    it('issue 16: a --selftest that is not a domain name is a usage error (UNKNOWN), before anything is asked', async () => {
        const c = capture()
        assert.equal(await main(['check', 'a.test', '--selftest', 'a..b', '--resolver', '127.0.0.1:1'], c.out), 3)
        assert.match(c.stderr(), /--selftest: "a\.\.b" is not a domain name/)
    })

    it('cli: briefRecord shortens the association data only', () => {
        assert.equal(briefRecord(`3 1 1 ${'ab'.repeat(32)}`), `3 1 1 ${'ab'.repeat(8)}…`)
        assert.equal(briefRecord('3 1 1 abcd'), '3 1 1 abcd')
    })
})

describe('cli: check verdicts (pure)', () => {
    const root = makeCertificate({ cn: 'Unit Root', ca: true })
    const leaf = makeCertificate({ cn: 'mx.example.test', sans: ['mx.example.test'], issuer: root })
    const next = makeCertificate({ cn: 'mx.example.test', sans: ['mx.example.test'], issuer: root })
    const other = makeCertificate({ cn: 'other' })

    it('C18: the only TLSA record matches the live chain → WARNING (no next key published)', () => {
        const d = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1)])])
        const r = checkVerdict(d, { 'mx.example.test': [tlsProbe([leaf, root])] })
        assert.equal(r.status, 'WARNING')
        assert.equal(r.exitCode, 1)
        assert.match(r.summary, /^DANE WARNING - example\.test: .*verified by 3 1 1 .* at depth 0, but it is the only TLSA record: no next key/)
    })

    // issue 16: each certificate type a DANE host serves, probed on its own
    const typed = (p: ProbeResult, certType: 'ECDSA' | 'RSA', error?: ProbeResult['error']): ProbeResult =>
        error ? { ...p, certType, tls: undefined, error } : { ...p, certType }
    const refused = { step: 'tls' as const, message: 'sslv3 alert handshake failure (ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE)' }

    it('issue 16: a type the host does not serve is a note; any other handshake failure of a type is judged', () => {
        const d = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1), tlsaText(next, 3, 1, 1)])])
        const ok = checkVerdict(d, { 'mx.example.test': [typed(tlsProbe([leaf, root]), 'ECDSA'), typed(tlsProbe([leaf, root]), 'RSA', refused)] })
        assert.equal(ok.status, 'OK', ok.summary)
        assert.match(ok.hosts[0].notes.join('\n'), /127\.0\.0\.1 serves no RSA certificate/)
        const reset = { step: 'tls' as const, message: 'ECONNRESET: socket hang up' }
        const bad = checkVerdict(d, { 'mx.example.test': [typed(tlsProbe([leaf, root]), 'ECDSA'), typed(tlsProbe([leaf, root]), 'RSA', reset)] })
        assert.equal(bad.status, 'CRITICAL', 'a reset is not "no RSA certificate"')
        // the ECDSA probe met a 421 before TLS, the RSA one was refused: judged as the 421 (unreachable, as with one
        // probe), the refusal a note, never "TLS handshake failed"
        const greeting = { step: 'greeting' as const, message: 'greeting is not 220: 421 busy' }
        const busy = checkVerdict(d, { 'mx.example.test': [typed(tlsProbe([leaf, root]), 'ECDSA', greeting), typed(tlsProbe([leaf, root]), 'RSA', refused)] })
        assert.match(busy.summary, /no MX host address could be reached/)
        assert.doesNotMatch(busy.summary, /handshake/)
        assert.match(busy.hosts[0].notes.join('\n'), /only RSA signature algorithms was refused .*whether it serves RSA is not known/)
        // both types the same failure before TLS: judged once
        const none = { step: 'connect' as const, message: 'ECONNREFUSED' }
        const down = checkVerdict(d, { 'mx.example.test': [typed(tlsProbe([leaf, root]), 'ECDSA', none), typed(tlsProbe([leaf, root]), 'RSA', none)] })
        assert.equal(down.hosts[0].addresses.length, 1)
    })

    it('issue 16: one record per certificate type and no next key is the rollover trap; the issuer beside the leaf is not', () => {
        const rsaLeaf = makeCertificate({ cn: 'mx.example.test', keyType: 'rsa' })
        const d = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1), tlsaText(rsaLeaf, 3, 1, 1)])])
        const r = checkVerdict(d, { 'mx.example.test': [typed(tlsProbe([leaf, root]), 'ECDSA'), typed(tlsProbe([rsaLeaf]), 'RSA')] })
        assert.equal(r.status, 'WARNING', r.summary)
        assert.match(r.summary, /alone, and every other TLSA record matches another chain it serves: no next key is published/)
        const withNext = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1), tlsaText(rsaLeaf, 3, 1, 1), tlsaText(next, 3, 1, 1)])])
        assert.equal(checkVerdict(withNext, { 'mx.example.test': [typed(tlsProbe([leaf, root]), 'ECDSA'), typed(tlsProbe([rsaLeaf]), 'RSA')] }).status, 'OK')
    })

    it('issue 16: a self-test that got no answer is UNKNOWN (cannot tell); one answered without AD is CRITICAL; -6 with no IPv6 address is UNKNOWN', () => {
        const d = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1), tlsaText(next, 3, 1, 1)])])
        const probes = { 'mx.example.test': [tlsProbe([leaf, root])] }
        const base = { name: '', type: 'A' as const, canonicalName: '', cnames: [], ttl: 0, rcode: 0 }
        assert.equal(checkVerdict(d, probes, { selfTest: { ...base, status: 'failed', secure: false, reason: 'timeout' } }).status, 'UNKNOWN')
        const plain = checkVerdict(d, probes, { selfTest: { ...base, status: 'nodata', secure: false } })
        assert.equal(plain.status, 'CRITICAL')
        assert.match(plain.summary, /the resolver does not validate: A \. nodata, AD not set/)
        assert.equal(checkVerdict(d, probes, { selfTest: { ...base, status: 'nodata', secure: true } }).status, 'OK')
        const v6 = checkVerdict(d, { 'mx.example.test': [] }, { unprobed: { 'mx.example.test': 'IPv6' } })
        assert.equal(v6.status, 'UNKNOWN', v6.summary)
        assert.match(v6.summary, /nothing was probed: no MX host has an IPv6 address/)
    })

    it('issue 16: --days under DANE-TA counts the first day the chain fails, a gap between two intermediates included', () => {
        const DAY = 86400_000
        const now = Date.now()
        // the same CA key in two certificates: the old one expires in 10 days, the new one is valid only from day 20
        const old = makeCertificate({ cn: 'Unit Issuing CA', ca: true, issuer: root, notAfter: new Date(now + 10 * DAY + 3600_000) })
        const fresh = makeCertificate({
            cn: 'Unit Issuing CA',
            ca: true,
            issuer: root,
            keyPem: old.keyPem,
            notBefore: new Date(now + 20 * DAY),
            notAfter: new Date(now + 400 * DAY),
        })
        const leafUnder = makeCertificate({ cn: 'mx.example.test', sans: ['mx.example.test'], issuer: old, notAfter: new Date(now + 365 * DAY) })
        const d = decision([host('mx.example.test', 'dane', [tlsaText(root, 2, 0, 1), tlsaText(next, 3, 1, 1)])])
        const r = checkVerdict(d, { 'mx.example.test': [tlsProbe([leafUnder, old, fresh, root])] }, { days: 14 })
        assert.equal(r.status, 'WARNING', r.summary)
        assert.match(r.summary, /would fail DANE verification in 10 day\(s\), within 14/)
        assert.match(r.summary, /'expiry_days'=10;14:;0:$/)
    })

    it('issue 16: a server that signs with its one key type whatever was offered (wrong signature type) serves no such type: a note', () => {
        const d = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1), tlsaText(next, 3, 1, 1)])])
        const wrongType = { step: 'tls' as const, message: 'wrong signature type (ERR_SSL_WRONG_SIGNATURE_TYPE)' }
        const r = checkVerdict(d, { 'mx.example.test': [typed(tlsProbe([leaf, root]), 'ECDSA'), typed(tlsProbe([leaf, root]), 'RSA', wrongType)] })
        assert.equal(r.status, 'OK', r.summary)
        // two addresses verified, one type each: the rollover warning names no type
        const single = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1)], { addresses: ['127.0.0.1', '127.0.0.2'] })])
        const two = checkVerdict(single, { 'mx.example.test': [tlsProbe([leaf, root]), tlsProbe([leaf, root], '127.0.0.2')] })
        assert.equal(two.problems.filter((p) => /only TLSA record/.test(p.text)).length, 2)
        assert.doesNotMatch(two.summary, /\(ECDSA\)/)
    })

    it('issue 16: perfdata: dns and handshake times, and days of validity where dates matter with "alert below" thresholds', () => {
        const d = decision([host('mx.example.test', 'dane', [tlsaText(root, 2, 0, 1), tlsaText(next, 3, 1, 1)])])
        const r = checkVerdict(d, { 'mx.example.test': [tlsProbe([leaf, root])] }, { days: 14, dnsMs: 12 })
        assert.match(r.summary, / \| 'dns_ms'=12ms;;;0 'handshake_ms'=1ms;;;0 'expiry_days'=\d+;14:;0:$/)
        assert.equal(renderPerfData({ expiryDays: -2 }), "'expiry_days'=-2;;0:")
    })

    it('C18: current + next key published → OK', () => {
        const d = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1), tlsaText(next, 3, 1, 1)])])
        const r = checkVerdict(d, { 'mx.example.test': [tlsProbe([leaf, root])] })
        assert.equal(r.status, 'OK', r.summary)
        assert.match(r.summary, /^DANE OK - example\.test: mx\.example\.test \[127\.0\.0\.1\] verified by 3 1 1 /)
    })

    it('C18: 3 1 1 for the leaf and 2 1 1 for its issuer both match → OK (the issuer survives a leaf key change)', () => {
        const d = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1), tlsaText(root, 2, 1, 1)])])
        const r = checkVerdict(d, { 'mx.example.test': [tlsProbe([leaf, root])] })
        assert.equal(r.status, 'OK', r.summary)
        assert.equal(r.hosts[0].addresses[0].matching.length, 2)
    })

    it('C17: SHA-256 and SHA-512 of the same key are one record after digest agility → still WARNING', () => {
        const d = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1), tlsaText(leaf, 3, 1, 2)])])
        const r = checkVerdict(d, { 'mx.example.test': [tlsProbe([leaf])] })
        assert.equal(r.status, 'WARNING')
    })

    it('C9, C25: a DANE host that fails verification → CRITICAL with the failure code and result type', () => {
        const d = decision([host('mx.example.test', 'dane', [tlsaText(other, 3, 1, 1)])])
        const r = checkVerdict(d, { 'mx.example.test': [tlsProbe([leaf])] })
        assert.equal(r.status, 'CRITICAL')
        assert.equal(r.exitCode, 2)
        assert.match(r.summary, /fails DANE verification: no-match: .*\(validation-failure\)/)
        assert.equal(r.problems[0].resultType, 'validation-failure')
    })

    it('C16, C25: a DANE-TA name mismatch → CRITICAL certificate-host-mismatch', () => {
        const d = decision([host('mx.elsewhere.test', 'dane', [tlsaText(root, 2, 1, 1)])])
        const r = checkVerdict(d, { 'mx.elsewhere.test': [tlsProbe([leaf, root])] })
        assert.equal(r.status, 'CRITICAL')
        assert.match(r.summary, /name-mismatch: .*\(certificate-host-mismatch\)/)
    })

    it('C9: an encrypt host without STARTTLS → CRITICAL; an opportunistic one → OK with a note', () => {
        const enc = checkVerdict(
            decision([
                host('mx.example.test', 'encrypt', [tlsaText(leaf, 1, 1, 1)], {
                    tlsa: { state: 'secure', records: [tlsaFromText(tlsaText(leaf, 1, 1, 1))], usable: 0 },
                }),
            ]),
            {
                'mx.example.test': [noTlsProbe()],
            },
        )
        assert.equal(enc.status, 'CRITICAL')
        assert.match(enc.summary, /does not offer STARTTLS; TLS is mandatory \(starttls-not-supported\)/)
        const opp = checkVerdict(decision([host('mx.example.test', 'opportunistic')], { mxSecure: false }), { 'mx.example.test': [noTlsProbe()] })
        assert.equal(opp.status, 'OK')
        assert.match(opp.hosts[0].addresses[0].notes[0], /plaintext/)
    })

    it('C11: some hosts skipped → WARNING; an unreachable address → WARNING; every address unreachable → CRITICAL', () => {
        const skipped = host('mx2.example.test', 'skip', [], { reason: 'TLSA lookup failed (servfail): host skipped', resultType: 'dnssec-invalid' })
        const two = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1), tlsaText(next, 3, 1, 1)]), skipped])
        const r = checkVerdict(two, { 'mx.example.test': [tlsProbe([leaf])] })
        assert.equal(r.status, 'WARNING')
        assert.match(r.summary, /mx2\.example\.test skipped: .* \(dnssec-invalid\)/)

        const d = decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1), tlsaText(next, 3, 1, 1)], { addresses: ['127.0.0.1', '127.0.0.2'] })])
        assert.equal(checkVerdict(d, { 'mx.example.test': [tlsProbe([leaf]), deadProbe('127.0.0.2')] }).status, 'WARNING')
        assert.equal(checkVerdict(d, { 'mx.example.test': [deadProbe(), deadProbe('127.0.0.2')] }).status, 'CRITICAL')
    })

    it('C11: decision defer → CRITICAL; resolver unreachable → UNKNOWN; null MX → OK', () => {
        const deferred = decision([], { action: 'defer', reason: 'MX lookup failed (servfail)', resultType: 'dnssec-invalid' })
        assert.equal(checkVerdict(deferred, {}).exitCode, 2)
        assert.equal(checkVerdict(deferred, {}, { resolverUnreachable: true }).exitCode, 3)
        const nullMx = decision([], { action: 'bounce', reason: 'example.test accepts no mail (null MX, RFC 7505)' })
        assert.equal(checkVerdict(nullMx, {}).exitCode, 0)
    })
})

describe('cli: rollover verdicts (pure)', () => {
    const root = makeCertificate({ cn: 'Unit Root', ca: true })
    const leaf = makeCertificate({ cn: 'mx.example.test', sans: ['mx.example.test'], issuer: root })
    const fresh = makeCertificate({ cn: 'mx.example.test', sans: ['mx.example.test'], issuer: root })

    it('cli: DANE-TA publishing the issuer covers a new leaf from the same CA; DANE-EE does not', () => {
        const ta = rolloverVerdict(decision([host('mx.example.test', 'dane', [tlsaText(root, 2, 1, 1)])]), parseChain([fresh.der, root.der]), {
            '_25._tcp.mx.example.test': 300,
        })
        assert.equal(ta.exitCode, 0)
        assert.match(ta.advice[0], /2×TTL = 600 s/)
        const ee = rolloverVerdict(decision([host('mx.example.test', 'dane', [tlsaText(leaf, 3, 1, 1)])]), parseChain([fresh.der, root.der]), {})
        assert.equal(ee.exitCode, 2)
        assert.deepEqual(ee.hosts[0].publish, [tlsaText(fresh, 3, 1, 1)])
    })

    it('C16: a DANE-TA name mismatch cannot be fixed by a record: no record is suggested, the names are', () => {
        const r = rolloverVerdict(decision([host('mx.other.test', 'dane', [tlsaText(root, 2, 1, 1)])]), parseChain([fresh.der, root.der]), {})
        assert.equal(r.exitCode, 2)
        assert.deepEqual(r.hosts[0].publish, [])
        assert.match(r.hosts[0].text, /must carry one of: mx\.other\.test/)
    })

    it('cli: no DANE host → 1 (nothing to check)', () => {
        const r = rolloverVerdict(decision([host('mx.example.test', 'opportunistic')]), parseChain([fresh.der]), {})
        assert.equal(r.exitCode, 1)
    })
})
