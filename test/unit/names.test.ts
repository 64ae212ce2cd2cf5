import assert from 'node:assert/strict'
import { certificateDnsNames, nameMatches, matchesAnyReference, certificateFields } from '../../lib/names'
import { makeCertificate, type TestCert } from '../world/certs'

describe('names: the reference identifier check (DANE-TA only)', () => {
    it('C16: names compare case-insensitively', () => {
        assert.ok(nameMatches('MX.Example.COM', 'mx.example.com'))
        assert.ok(nameMatches('mx.example.com', 'MX.EXAMPLE.COM'))
        assert.ok(!nameMatches('mx.example.com', 'mx.example.net'))
    })

    it('C16: trailing dots are ignored on either side', () => {
        assert.ok(nameMatches('mx.example.com.', 'mx.example.com'))
        assert.ok(nameMatches('mx.example.com', 'mx.example.com.'))
        assert.ok(nameMatches('*.example.com.', 'mx.example.com.'))
        assert.ok(!nameMatches('mx.example.com..', 'mx.example.com'))
        assert.ok(!nameMatches('.', '.'))
        assert.ok(!nameMatches('', ''))
    })

    it('C16: a wildcard matches exactly one label', () => {
        assert.ok(nameMatches('*.example.com', 'mx.example.com'))
        assert.ok(nameMatches('*.example.com', 'MX1.Example.Com'))
        assert.ok(!nameMatches('*.example.com', 'a.mx.example.com'), 'a wildcard never matches two labels')
        assert.ok(!nameMatches('*.example.com', 'example.com'), 'a wildcard never matches the bare parent')
        assert.ok(!nameMatches('*.example.com', '.example.com'), 'a wildcard never matches an empty label')
        assert.ok(!nameMatches('*.example.com', 'mx.example.org'))
    })

    it('C16: a wildcard is allowed only as the whole left-most label', () => {
        assert.ok(!nameMatches('f*.example.com', 'foo.example.com'))
        assert.ok(!nameMatches('*o.example.com', 'foo.example.com'))
        assert.ok(!nameMatches('f*o.example.com', 'foo.example.com'))
        assert.ok(!nameMatches('mx.*.com', 'mx.example.com'))
        assert.ok(!nameMatches('*.*.com', 'mx.example.com'))
        assert.ok(!nameMatches('*', 'localhost'))
        assert.ok(!nameMatches('*.com', 'example.com'), 'no wildcard directly under a single label')
        assert.ok(!nameMatches('**.example.com', 'mx.example.com'))
    })

    it('C16: a reference identifier is never treated as a pattern', () => {
        assert.ok(!nameMatches('mx.example.com', '*.example.com'))
        assert.ok(!nameMatches('*.example.com', '*.example.com'))
    })

    it('C16: non-ASCII names never match by Unicode case folding', () => {
        // U+212A KELVIN SIGN lower-cases to "k" in JavaScript
        assert.ok(!nameMatches('\u212Aey.example.com', 'key.example.com'))
        assert.ok(!nameMatches('key.example.com', '\u212Aey.example.com'))
        assert.ok(!nameMatches('m\u00fcller.example.com', 'm\u00fcller.example.com'))
    })
})

describe('names: identifiers in certificates', () => {
    let sanCert: TestCert
    let cnOnly: TestCert
    let sanOtherThanCn: TestCert
    let multi: TestCert

    before(() => {
        sanCert = makeCertificate({ cn: 'ignored.example.com', sans: ['mx.example.com', '*.example.net'] })
        cnOnly = makeCertificate({ cn: 'mx.example.com' })
        sanOtherThanCn = makeCertificate({ cn: 'mx.example.com', sans: ['other.example.org'] })
        multi = makeCertificate({ cn: 'x', sans: ['a.example', 'mx.example.com'], keyPem: cnOnly.keyPem })
    })

    it('C16: DNS subjectAltNames are the certificate names when present', () => {
        assert.deepEqual(certificateDnsNames(sanCert.x509), ['mx.example.com', '*.example.net'])
    })

    it('C16: the CN is used only when there is no DNS subjectAltName', () => {
        assert.deepEqual(certificateDnsNames(cnOnly.x509), ['mx.example.com'])
        assert.equal(matchesAnyReference(cnOnly.x509, ['mx.example.com']), 'mx.example.com')
    })

    it('C16: the CN is ignored when subjectAltNames exist', () => {
        assert.deepEqual(certificateDnsNames(sanOtherThanCn.x509), ['other.example.org'])
        assert.equal(matchesAnyReference(sanOtherThanCn.x509, ['mx.example.com']), null)
        assert.equal(matchesAnyReference(sanOtherThanCn.x509, ['other.example.org']), 'other.example.org')
    })

    it('C16: matchesAnyReference returns the reference identifier that matched', () => {
        assert.equal(matchesAnyReference(sanCert.x509, ['nope.example.com', 'smtp.example.net']), 'smtp.example.net')
        assert.equal(matchesAnyReference(multi.x509, ['MX.example.com.']), 'MX.example.com.')
        assert.equal(matchesAnyReference(sanCert.x509, ['a.b.example.net', 'example.net']), null)
        assert.equal(matchesAnyReference(sanCert.x509, []), null)
    })

    it('C16: a dNSName in constructed [2] form (OpenSSL reads it) counts as a SAN: the CN no longer stands in', () => {
        const ia5 = (t: string) => Buffer.concat([Buffer.from([0x16, t.length]), Buffer.from(t, 'latin1')])
        const constructed = (t: string) => Buffer.concat([Buffer.from([0xa2, t.length + 2]), ia5(t)])
        const c = makeCertificate({ cn: 'mx.example.com', sanGeneralNamesDer: [constructed('other.example.com')], keyPem: cnOnly.keyPem })
        assert.match(c.x509.subjectAltName ?? '', /DNS:other\.example\.com/, 'node sees a DNS name')
        assert.equal(matchesAnyReference(c.x509, ['mx.example.com']), null)
        assert.ok(certificateFields(c.x509).dnsNamesUnreadable)
    })

    it('C16: an unreadable subjectAltName matches no name (and does not fail the certificate for DANE-EE)', () => {
        const c = makeCertificate({ cn: 'mx.example.com', sanGeneralNamesDer: [Buffer.from([0x82, 0x05, 0x61])], keyPem: cnOnly.keyPem })
        const f = certificateFields(c.x509)
        assert.ok(f.dnsNamesUnreadable)
        assert.ok(f.spki.length > 0)
        assert.equal(matchesAnyReference(c.x509, ['mx.example.com']), null)
    })

    it('C15: validity dates are read exactly from the certificate (UTCTime and GeneralizedTime)', () => {
        const nb = new Date(Date.UTC(1999, 11, 31, 23, 59, 58))
        const na = new Date(Date.UTC(2051, 0, 2, 3, 4, 5))
        const c = makeCertificate({ cn: 'dates', notBefore: nb, notAfter: na, keyPem: cnOnly.keyPem })
        const f = certificateFields(c.x509)
        assert.equal(f.notBefore?.toISOString(), nb.toISOString())
        assert.equal(f.notAfter?.toISOString(), na.toISOString())
        assert.equal(f.validityError, undefined)
    })

    it('C13: the SPKI read from the DER equals the key node exports', () => {
        const f = certificateFields(sanCert.x509)
        assert.deepEqual(f.spki, sanCert.x509.publicKey.export({ type: 'spki', format: 'der' }))
        const rsa = makeCertificate({ cn: 'rsa', keyType: 'rsa' })
        assert.deepEqual(certificateFields(rsa.der).spki, rsa.x509.publicKey.export({ type: 'spki', format: 'der' }))
    })

    it('C16: garbage DER gives no names and a clean error, never a crash', () => {
        assert.throws(() => certificateFields(Buffer.from('not a certificate')), /DER|certificate/)
        assert.throws(() => certificateFields(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff])), /DER/)
    })
})
