// Issue 17: DANE-TA is RFC 5280 path validation from the matched trust anchor (RFC 6698 2.1.1),
// as OpenSSL does it. Each rule with a chain that keeps it and one that breaks it; the same
// chains are put to OpenSSL itself in test/e2e/openssl-dane.test.ts.
import assert from 'node:assert/strict'
import { verifyChain, type FailureCode, type VerifyResult } from '../../lib/verify'
import { tlsaFromText } from '../../lib/tlsa'
import { pkixProfile, validatePath } from '../../lib/pkix'
import { makeCertificate, tlsaText, oid, seq, type CertificateOptions, type TestCert } from '../world/certs'

const NAME = 'mx.good.test'
const DAY = 86_400_000
const CA: Partial<CertificateOptions> = { ca: true, keyIds: true, keyUsage: ['keyCertSign', 'cRLSign'] }
const LEAF: Partial<CertificateOptions> = { keyIds: true, sans: [NAME] }

function verify(chain: TestCert[], record: string, name = NAME): VerifyResult {
    return verifyChain({ chain: chain.map((c) => c.der), records: [tlsaFromText(record)], referenceNames: [name] })
}

function pass(r: VerifyResult, depth?: number): void {
    assert.equal(r.failure, undefined, `unexpected failure ${r.failure?.code}: ${r.failure?.detail}`)
    assert.equal(r.authenticated, true)
    if (depth !== undefined) assert.equal(r.match?.depth, depth)
}

function fail(r: VerifyResult, code: FailureCode, detail?: RegExp): void {
    assert.equal(r.authenticated, false, 'must not authenticate')
    assert.equal(r.failure?.code, code, `expected ${code}, got ${r.failure?.code}: ${r.failure?.detail}`)
    if (detail) assert.match(r.failure?.detail ?? '', detail)
}

describe('C15: DANE-TA path validation (RFC 5280 6.1 below the matched anchor)', () => {
    const root = makeCertificate({ cn: 'PKIX Root', ...CA })
    const inter = makeCertificate({ cn: 'PKIX Inter', issuer: root, ...CA })
    const leaf = makeCertificate({ cn: NAME, issuer: inter, ...LEAF })

    it('C15: a well-formed chain under a presented root verifies', () => {
        pass(verify([leaf, inter, root], tlsaText(root, 2, 0, 1)), 2)
        pass(verify([leaf, inter], tlsaText(inter, 2, 1, 1)), 1)
    })

    describe('C15: basic constraints and path length', () => {
        const pl0 = makeCertificate({ cn: 'PKIX PathLen0', issuer: root, pathLen: 0, ...CA })
        const sub = makeCertificate({ cn: 'PKIX Sub CA', issuer: pl0, ...CA })
        const leafUnderSub = makeCertificate({ cn: NAME, issuer: sub, ...LEAF })
        const leafUnderPl0 = makeCertificate({ cn: NAME, issuer: pl0, ...LEAF })

        it('C15: pathLenConstraint 0 on an intermediate forbids a CA below it (OpenSSL: path length constraint exceeded)', () => {
            fail(verify([leafUnderSub, sub, pl0, root], tlsaText(root, 2, 0, 1)), 'path-length-exceeded', /PKIX Sub CA at depth 1 is one CA too many/)
            pass(verify([leafUnderPl0, pl0, root], tlsaText(root, 2, 0, 1)), 2)
        })

        it("C15: the anchor certificate's own pathLenConstraint applies (RFC 7671 5.2.1), presented or given in DNS", () => {
            fail(verify([leafUnderSub, sub, pl0], tlsaText(pl0, 2, 0, 1)), 'path-length-exceeded')
            fail(verify([leafUnderSub, sub], tlsaText(pl0, 2, 0, 0)), 'path-length-exceeded')
        })

        it('C15: a bare key in DNS (2 1 0) carries no constraints: only the certificates below it count', () => {
            pass(verify([leafUnderSub, sub], tlsaText(pl0, 2, 1, 0)), 1)
        })

        it('C15: a self-issued intermediate (a CA key rollover certificate) does not count against the path length', () => {
            const rolled = makeCertificate({ cn: 'PKIX PathLen0', issuer: pl0, ...CA })
            const leafUnderRolled = makeCertificate({ cn: NAME, issuer: rolled, ...LEAF })
            pass(verify([leafUnderRolled, rolled, pl0, root], tlsaText(root, 2, 0, 1)), 3)
        })

        it('C15: an intermediate without basicConstraints, or with cA false, or whose keyUsage lacks keyCertSign, is not a CA', () => {
            const noBc = makeCertificate({ cn: 'No BC', issuer: root, basicConstraints: false, keyIds: true })
            fail(verify([makeCertificate({ cn: NAME, issuer: noBc, ...LEAF }), noBc, root], tlsaText(root, 2, 0, 1)), 'not-a-ca')
            const noSign = makeCertificate({ cn: 'No keyCertSign', issuer: root, ca: true, keyIds: true, keyUsage: ['digitalSignature'] })
            // node's checkIssued (OpenSSL's X509_check_issued) already refuses the link; either way no path
            const r = verify([makeCertificate({ cn: NAME, issuer: noSign, ...LEAF }), noSign, root], tlsaText(root, 2, 0, 1))
            assert.equal(r.authenticated, false)
        })

        it('C15: a trust-anchor certificate that is not a CA (cA false, or no basicConstraints and no keyUsage) cannot be an anchor above a leaf', () => {
            const notCa = makeCertificate({ cn: 'Not A CA', keyIds: true })
            fail(
                verify([makeCertificate({ cn: NAME, issuer: notCa, ...LEAF }), notCa], tlsaText(notCa, 2, 0, 1)),
                'not-a-ca',
                /trust anchor .*Not A CA is not a CA certificate/,
            )
            const plain = makeCertificate({ cn: 'Plain Server', keyIds: true, basicConstraints: false })
            fail(verify([makeCertificate({ cn: NAME, issuer: plain, ...LEAF }), plain], tlsaText(plain, 2, 0, 1)), 'not-a-ca')
            // without basicConstraints, a keyUsage with keyCertSign makes a CA (OpenSSL's X509_check_ca)
            const kuCa = makeCertificate({ cn: 'KU CA', keyIds: true, basicConstraints: false, keyUsage: ['keyCertSign'] })
            pass(verify([makeCertificate({ cn: NAME, issuer: kuCa, ...LEAF }), kuCa], tlsaText(kuCa, 2, 0, 1)), 1)
        })

        it('C15: a 2 1 0 key that a presented certificate carries is the anchor only where that certificate issued the path; elsewhere the bare key stands', () => {
            const rootA = makeCertificate({ cn: 'Root A', ...CA })
            const rootB = makeCertificate({ cn: 'Root B', keyPem: rootA.keyPem, ...CA })
            const interA = makeCertificate({ cn: 'Inter A', issuer: rootA, ...CA })
            const leafA = makeCertificate({ cn: NAME, issuer: interA, ...LEAF })
            // Root B carries the key but issued nothing here: the key from DNS signed Inter A
            pass(verify([leafA, interA, rootB], tlsaText(rootA, 2, 1, 0)), 1)
        })
    })

    describe('C15: name constraints', () => {
        const nc = makeCertificate({ cn: 'PKIX NC', issuer: root, nameConstraints: { permitted: [{ dns: '.good.test' }] }, ...CA })
        const ncx = makeCertificate({ cn: 'PKIX NCX', issuer: root, nameConstraints: { excluded: [{ dns: 'evil.test' }] }, ...CA })

        it('C15: a leaf name outside the permitted DNS subtrees fails (OpenSSL: permitted subtree violation)', () => {
            const evil = makeCertificate({ cn: 'mx.evil.test', issuer: nc, keyIds: true, sans: ['mx.evil.test'] })
            fail(
                verify([evil, nc, root], tlsaText(root, 2, 0, 1), 'mx.evil.test'),
                'name-constraint-violation',
                /DNS:mx\.evil\.test is outside the permitted subtrees of .*PKIX NC/,
            )
            pass(verify([makeCertificate({ cn: NAME, issuer: nc, ...LEAF }), nc, root], tlsaText(root, 2, 0, 1)), 2)
        })

        it('C15: every SAN counts, not only the one that matched the reference identifier', () => {
            const both = makeCertificate({ cn: NAME, issuer: nc, keyIds: true, sans: [NAME, 'mx.evil.test'] })
            fail(verify([both, nc, root], tlsaText(root, 2, 0, 1)), 'name-constraint-violation')
        })

        it('C15: an excluded subtree covers the name and the names below it', () => {
            const under = makeCertificate({ cn: NAME, issuer: ncx, keyIds: true, sans: [NAME, 'a.evil.test'] })
            fail(verify([under, ncx, root], tlsaText(root, 2, 0, 1)), 'name-constraint-violation', /excluded subtree DNS:evil\.test/)
            pass(verify([makeCertificate({ cn: NAME, issuer: ncx, ...LEAF }), ncx, root], tlsaText(root, 2, 0, 1)))
        })

        it('C15: a leaf without DNS SANs is constrained by its CN, as OpenSSL does', () => {
            const cnOnly = makeCertificate({ cn: 'mx.evil.test', issuer: nc, keyIds: true })
            fail(verify([cnOnly, nc, root], tlsaText(root, 2, 0, 1), 'mx.evil.test'), 'name-constraint-violation')
        })

        it("C15: the anchor certificate's name constraints apply; a constraint from a higher CA binds names further down", () => {
            const evil = makeCertificate({ cn: 'mx.evil.test', issuer: nc, keyIds: true, sans: ['mx.evil.test'] })
            fail(verify([evil, nc], tlsaText(nc, 2, 0, 1), 'mx.evil.test'), 'name-constraint-violation', /the trust anchor/)
            const sub = makeCertificate({ cn: 'PKIX NC Sub', issuer: nc, nameConstraints: { permitted: [{ dns: '.evil.test' }] }, ...CA })
            const deep = makeCertificate({ cn: 'mx.evil.test', issuer: sub, keyIds: true, sans: ['mx.evil.test'] })
            // the sub-CA widening to .evil.test does not lift its issuer's .good.test (the permitted sets intersect)
            fail(verify([deep, sub, nc, root], tlsaText(root, 2, 0, 1), 'mx.evil.test'), 'name-constraint-violation')
        })

        it("C15, C16: a CN that is not a host name by OpenSSL's rule (a trailing dot) is neither constrained nor matched", () => {
            const allowed = makeCertificate({ cn: 'Allowed CA', issuer: root, nameConstraints: { permitted: [{ dns: 'allowed.test' }] }, ...CA })
            const dotted = makeCertificate({ cn: 'mx.good.test.', issuer: allowed, keyIds: true })
            fail(verify([dotted, allowed, root], tlsaText(root, 2, 0, 1)), 'name-mismatch')
        })

        it('C15: a CN with "_" (a host name to OpenSSL) is constrained like any DNS name', () => {
            const ncx2 = makeCertificate({ cn: 'NCX2', issuer: root, nameConstraints: { excluded: [{ dns: 'good.test' }] }, ...CA })
            const under = makeCertificate({ cn: 'mx_1.good.test', issuer: ncx2, keyIds: true })
            fail(verify([under, ncx2, root], tlsaText(root, 2, 0, 1), 'mx_1.good.test'), 'name-constraint-violation')
        })

        it('C15: a wildcard SAN one of whose names would fall in an excluded subtree is excluded', () => {
            const ncx3 = makeCertificate({ cn: 'NCX3', issuer: root, nameConstraints: { excluded: [{ dns: 'mx.good.test' }] }, ...CA })
            const wild = makeCertificate({ cn: 'wild', issuer: ncx3, keyIds: true, sans: ['*.good.test'] })
            fail(
                verify([wild, ncx3, root], tlsaText(root, 2, 0, 1), 'other.good.test'),
                'name-constraint-violation',
                /\*\.good\.test is in the excluded subtree DNS:mx\.good\.test/,
            )
        })

        it('C15: directory names compare after decoding every string type (a BMPString cannot dodge an excluded CN)', () => {
            const dnx = makeCertificate({ cn: 'DNX', issuer: root, nameConstraints: { excluded: [{ dn: { cn: 'Evil' } }] }, ...CA })
            const bmp = Buffer.from('Evil', 'utf16le').swap16()
            const atv = Buffer.concat([Buffer.from([0x30, 5 + 2 + bmp.length, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, bmp.length]), bmp])
            const rdn = Buffer.concat([Buffer.from([0x31, atv.length]), atv])
            const name = Buffer.concat([Buffer.from([0x30, rdn.length]), rdn])
            const dirName = Buffer.concat([Buffer.from([0xa4, name.length]), name])
            const leafDn = makeCertificate({
                cn: NAME,
                issuer: dnx,
                keyIds: true,
                sanGeneralNamesDer: [Buffer.concat([Buffer.from([0x82, NAME.length]), Buffer.from(NAME)]), dirName],
            })
            fail(verify([leafDn, dnx, root], tlsaText(root, 2, 0, 1)), 'name-constraint-violation', /DN:2\.5\.4\.3=evil/)
        })

        it('C15: IP, e-mail (SAN and subject emailAddress), URI and directory name constraints', () => {
            const ipCa = makeCertificate({ cn: 'IP CA', issuer: root, nameConstraints: { permitted: [{ ip: '192.0.2.0/24' }] }, ...CA })
            pass(verify([makeCertificate({ cn: NAME, issuer: ipCa, ...LEAF, ipSans: ['192.0.2.7'] }), ipCa, root], tlsaText(root, 2, 0, 1)))
            fail(
                verify([makeCertificate({ cn: NAME, issuer: ipCa, ...LEAF, ipSans: ['198.51.100.7'] }), ipCa, root], tlsaText(root, 2, 0, 1)),
                'name-constraint-violation',
                /IP:198\.51\.100\.7/,
            )
            const mailCa = makeCertificate({ cn: 'Mail CA', issuer: root, nameConstraints: { excluded: [{ email: '.evil.test' }] }, ...CA })
            fail(
                verify([makeCertificate({ cn: NAME, issuer: mailCa, ...LEAF, emailSans: ['a@x.evil.test'] }), mailCa, root], tlsaText(root, 2, 0, 1)),
                'name-constraint-violation',
            )
            fail(
                verify([makeCertificate({ cn: NAME, issuer: mailCa, ...LEAF, subjectEmail: 'a@x.evil.test' }), mailCa, root], tlsaText(root, 2, 0, 1)),
                'name-constraint-violation',
            )
            const uriCa = makeCertificate({ cn: 'URI CA', issuer: root, nameConstraints: { permitted: [{ uri: '.good.test' }] }, ...CA })
            pass(verify([makeCertificate({ cn: NAME, issuer: uriCa, ...LEAF, uriSans: ['https://www.good.test/x'] }), uriCa, root], tlsaText(root, 2, 0, 1)))
            fail(
                verify([makeCertificate({ cn: NAME, issuer: uriCa, ...LEAF, uriSans: ['https://www.evil.test/x'] }), uriCa, root], tlsaText(root, 2, 0, 1)),
                'name-constraint-violation',
            )
            const dnCa = makeCertificate({ cn: 'DN CA', issuer: root, nameConstraints: { permitted: [{ dn: { cn: NAME } }] }, ...CA })
            pass(verify([makeCertificate({ cn: NAME, issuer: dnCa, ...LEAF }), dnCa, root], tlsaText(root, 2, 0, 1)))
            fail(
                verify([makeCertificate({ cn: 'other.good.test', issuer: dnCa, keyIds: true, sans: [NAME] }), dnCa, root], tlsaText(root, 2, 0, 1)),
                'name-constraint-violation',
                /DN:/,
            )
        })
    })

    describe('C15: purpose (OpenSSL sslserver) and critical extensions', () => {
        it('C15: a leaf whose extendedKeyUsage lacks serverAuth fails; serverAuth or anyExtendedKeyUsage passes', () => {
            fail(
                verify([makeCertificate({ cn: NAME, issuer: inter, ...LEAF, extKeyUsage: ['clientAuth'] }), inter, root], tlsaText(root, 2, 0, 1)),
                'not-for-tls-server',
                /extendedKeyUsage .* does not include serverAuth/,
            )
            pass(
                verify(
                    [makeCertificate({ cn: NAME, issuer: inter, ...LEAF, extKeyUsage: ['clientAuth', 'serverAuth'] }), inter, root],
                    tlsaText(root, 2, 0, 1),
                ),
            )
            pass(verify([makeCertificate({ cn: NAME, issuer: inter, ...LEAF, extKeyUsage: ['any'] }), inter, root], tlsaText(root, 2, 0, 1)))
        })

        it('C15: an intermediate whose extendedKeyUsage lacks serverAuth fails too (OpenSSL checks the purpose of CAs)', () => {
            const clientCa = makeCertificate({ cn: 'Client CA', issuer: root, extKeyUsage: ['clientAuth'], ...CA })
            fail(
                verify([makeCertificate({ cn: NAME, issuer: clientCa, ...LEAF }), clientCa, root], tlsaText(root, 2, 0, 1)),
                'not-for-tls-server',
                /Client CA at depth 1/,
            )
        })

        it('C15: a leaf keyUsage must allow digitalSignature, keyEncipherment or keyAgreement', () => {
            fail(
                verify([makeCertificate({ cn: NAME, issuer: inter, ...LEAF, keyUsage: ['keyCertSign'] }), inter, root], tlsaText(root, 2, 0, 1)),
                'not-for-tls-server',
            )
            pass(verify([makeCertificate({ cn: NAME, issuer: inter, ...LEAF, keyUsage: ['digitalSignature'] }), inter, root], tlsaText(root, 2, 0, 1)))
        })

        it('C15: an unknown critical extension on the leaf or an intermediate fails; a non-critical one does not', () => {
            const unknown = { oid: '1.2.3.4', critical: true, value: Buffer.from([0x05, 0x00]) }
            fail(
                verify([makeCertificate({ cn: NAME, issuer: inter, ...LEAF, extraExtensions: [unknown] }), inter, root], tlsaText(root, 2, 0, 1)),
                'unhandled-critical-extension',
                /1\.2\.3\.4/,
            )
            const oddCa = makeCertificate({ cn: 'Odd CA', issuer: root, extraExtensions: [unknown], ...CA })
            fail(verify([makeCertificate({ cn: NAME, issuer: oddCa, ...LEAF }), oddCa, root], tlsaText(root, 2, 0, 1)), 'unhandled-critical-extension')
            pass(
                verify(
                    [makeCertificate({ cn: NAME, issuer: inter, ...LEAF, extraExtensions: [{ ...unknown, critical: false }] }), inter, root],
                    tlsaText(root, 2, 0, 1),
                ),
            )
        })

        it('C15: DANE-EE ignores all of it (RFC 7672 3.1.1): the same broken leaves verify under 3 x x', () => {
            const unknown = { oid: '1.2.3.4', critical: true, value: Buffer.from([0x05, 0x00]) }
            const odd = makeCertificate({
                cn: 'whatever',
                extKeyUsage: ['clientAuth'],
                keyUsage: ['cRLSign'],
                extraExtensions: [unknown],
                notAfter: new Date(Date.now() - DAY),
                notBefore: new Date(Date.now() - 2 * DAY),
            })
            pass(verify([odd], tlsaText(odd, 3, 1, 1)), 0)
        })
    })

    describe('C15: dates and the anchor', () => {
        it("C15: the anchor's own dates are not checked; every certificate below it must be within its dates", () => {
            const old = makeCertificate({
                cn: 'Old Inter',
                issuer: root,
                notBefore: new Date(Date.now() - 400 * DAY),
                notAfter: new Date(Date.now() - DAY),
                ...CA,
            })
            const under = makeCertificate({ cn: NAME, issuer: old, ...LEAF })
            pass(verify([under, old], tlsaText(old, 2, 0, 1)), 1)
            fail(verify([under, old, root], tlsaText(root, 2, 0, 1)), 'expired', /Old Inter at depth 1 expired/)
        })
    })

    describe('C15: certificate policies, as OpenSSL (and so Postfix) treats them', () => {
        // certificatePolicies: SEQUENCE { SEQUENCE { OID } }
        const policies = (dotted: string) => ({ oid: '2.5.29.32', critical: true, value: seq(seq(oid(dotted))) })
        const requireExplicit = { oid: '2.5.29.36', critical: true, value: Buffer.from([0x30, 0x03, 0x80, 0x01, 0x00]) }

        it('C15: critical policy extensions are processed, not rejected; requireExplicitPolicy is not enforced (OpenSSL checks policies only when asked)', () => {
            const strict = makeCertificate({ cn: 'Strict CA', issuer: root, extraExtensions: [requireExplicit, policies('1.2.3.5')], ...CA })
            pass(verify([makeCertificate({ cn: NAME, issuer: strict, ...LEAF }), strict, root], tlsaText(root, 2, 0, 1)))
            pass(
                verify([makeCertificate({ cn: NAME, issuer: strict, ...LEAF, extraExtensions: [policies('1.2.3.6')] }), strict, root], tlsaText(root, 2, 0, 1)),
            )
        })
    })

    describe('C15: reading the extensions', () => {
        it('C15: a name constraint it cannot evaluate (a GeneralSubtree with a minimum) fails the path, as OpenSSL does', () => {
            const subtree = Buffer.from([0x30, 0x0b, 0x82, 0x06, ...Buffer.from('a.test'), 0x80, 0x01, 0x01])
            const value = Buffer.concat([Buffer.from([0x30, 0x0f, 0xa0, 0x0d]), subtree])
            const broken = makeCertificate({ cn: 'Broken CA', issuer: root, extraExtensions: [{ oid: '2.5.29.30', critical: true, value }], ...CA })
            const r = verify([makeCertificate({ cn: NAME, issuer: broken, ...LEAF }), broken, root], tlsaText(root, 2, 0, 1))
            fail(r, 'bad-certificate', /Broken CA at depth 1 cannot be read: extension 2\.5\.29\.30 \(critical\) unreadable: minimum/)
        })

        it('C15: an extension node cannot parse at all leaves no path: rejected, never ignored', () => {
            const garbage = makeCertificate({
                cn: 'Garbage CA',
                issuer: root,
                extraExtensions: [{ oid: '2.5.29.30', critical: true, value: Buffer.from([0x30, 0x05, 0xa0, 0x03, 0x30, 0x01]) }],
                ...CA,
            })
            assert.equal(verify([makeCertificate({ cn: NAME, issuer: garbage, ...LEAF }), garbage, root], tlsaText(root, 2, 0, 1)).authenticated, false)
        })

        it('C15: a repeated extension makes the certificate unreadable (RFC 5280 4.2)', () => {
            const twice = makeCertificate({
                cn: 'Twice CA',
                issuer: root,
                extraExtensions: [{ oid: '2.5.29.37', value: Buffer.from([0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01]) }],
                ...CA,
                extKeyUsage: ['serverAuth'],
            })
            assert.match(pkixProfile(twice.x509).error ?? '', /appears twice/)
        })

        it('C15: validatePath never throws on a garbage certificate object', () => {
            const r = validatePath([{ raw: Buffer.from('nope'), subject: 'CN=x' } as never], undefined, new Date())
            assert.equal(r?.code, 'bad-certificate')
        })
    })
})
