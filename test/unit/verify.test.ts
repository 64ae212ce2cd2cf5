import assert from 'node:assert/strict'
// eslint-disable-next-line @typescript-eslint/no-require-imports -- the module object itself, whose createHash a test counts calls on
import nodeCrypto = require('node:crypto')
import { randomBytes } from 'node:crypto'
import { tlsaFromText, type TlsaRecord } from '../../lib/tlsa'
import { verifyChain, parseChain, associationData, rfc8460ResultType, type FailureCode, type VerifyInput, type VerifyResult } from '../../lib/verify'
import { makeCertificate, tlsaText, withBadSignature, type TestCert } from '../world/certs'

const DAY = 86_400_000
const REFS = ['mx.example.com']

function rec(text: string): TlsaRecord {
    return tlsaFromText(text)
}

function ders(...certs: TestCert[]): Buffer[] {
    return certs.map((c) => c.der)
}

function verify(chain: TestCert[] | Buffer[], records: string[] | TlsaRecord[], extra: Partial<VerifyInput> = {}): VerifyResult {
    const der = chain.map((c) => (Buffer.isBuffer(c) ? c : c.der))
    const recs = records.map((r) => (typeof r === 'string' ? rec(r) : r))
    return verifyChain({ chain: der, records: recs, referenceNames: REFS, ...extra })
}

function assertPass(r: VerifyResult, depth: number, record?: string): void {
    assert.equal(r.failure, undefined, `unexpected failure ${r.failure?.code}: ${r.failure?.detail}`)
    assert.equal(r.authenticated, true)
    assert.equal(r.match?.depth, depth)
    if (record !== undefined) assert.equal(r.match?.record.text, record)
}

function assertFail(r: VerifyResult, code: FailureCode): void {
    assert.equal(r.authenticated, false, 'must not authenticate')
    assert.equal(r.match, undefined)
    assert.equal(r.failure?.code, code, `expected ${code}, got ${r.failure?.code}: ${r.failure?.detail}`)
    assert.ok((r.failure?.detail ?? '').length > 0, 'a failure says why')
}

describe('verify: DANE authentication of a presented chain', () => {
    // Test Root → Test Intermediate → mx.example.com, plus assorted variants
    let root: TestCert
    let inter: TestCert
    let leaf: TestCert
    let otherCa: TestCert
    let expiredLeaf: TestCert
    let futureLeaf: TestCert
    let expiredRoot: TestCert
    let interUnderExpiredRoot: TestCert
    let leafUnderExpiredRoot: TestCert
    let expiredInter: TestCert
    let leafUnderExpiredInter: TestCert
    let wildLeaf: TestCert
    let cnOnlyLeaf: TestCert
    let sanOtherLeaf: TestCert
    let selfSignedLeaf: TestCert
    let victim: TestCert

    before(() => {
        const past = new Date(Date.now() - 30 * DAY)
        const longAgo = new Date(Date.now() - 400 * DAY)
        const future = new Date(Date.now() + 30 * DAY)
        root = makeCertificate({ cn: 'Test Root', ca: true })
        inter = makeCertificate({ cn: 'Test Intermediate', ca: true, issuer: root })
        leaf = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'], issuer: inter })
        otherCa = makeCertificate({ cn: 'Other CA', ca: true })
        expiredLeaf = makeCertificate({
            cn: 'mx.example.com',
            sans: ['mx.example.com'],
            issuer: inter,
            notBefore: longAgo,
            notAfter: past,
            keyPem: leaf.keyPem,
        })
        futureLeaf = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'], issuer: inter, notBefore: future, keyPem: leaf.keyPem })
        expiredRoot = makeCertificate({ cn: 'Old Root', ca: true, notBefore: longAgo, notAfter: past })
        interUnderExpiredRoot = makeCertificate({ cn: 'Old Root Intermediate', ca: true, issuer: expiredRoot })
        leafUnderExpiredRoot = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'], issuer: interUnderExpiredRoot })
        expiredInter = makeCertificate({ cn: 'Expired Intermediate', ca: true, issuer: root, notBefore: longAgo, notAfter: past })
        leafUnderExpiredInter = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'], issuer: expiredInter })
        wildLeaf = makeCertificate({ cn: 'wild', sans: ['*.example.com'], issuer: inter })
        cnOnlyLeaf = makeCertificate({ cn: 'mx.example.com', issuer: inter })
        sanOtherLeaf = makeCertificate({ cn: 'mx.example.com', sans: ['other.example.org'], issuer: inter })
        selfSignedLeaf = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'] })
        // issued by the (non-CA) leaf: a leaf holder trying to mint a certificate for another name
        victim = makeCertificate({ cn: 'victim.example.com', sans: ['victim.example.com'], issuer: leaf })
    })

    describe('every usage × selector × matching type', () => {
        for (const usage of [2, 3]) {
            for (const selector of [0, 1]) {
                for (const mtype of [0, 1, 2]) {
                    const tag = `${usage} ${selector} ${mtype}`
                    const kind = usage === 3 ? 'DANE-EE matches the leaf' : 'DANE-TA matches the issuer'
                    it(`C13: ${tag} passes when the record ${usage === 3 ? 'is the leaf' : 'is a presented CA'} (${kind})`, () => {
                        const rr = usage === 3 ? tlsaText(leaf, 3, selector, mtype) : tlsaText(inter, 2, selector, mtype)
                        const r = verify([leaf, inter, root], [rr])
                        assertPass(r, usage === 3 ? 0 : 1, rec(rr).text)
                        assert.equal(r.usable, 1)
                        if (usage === 2) assert.equal(r.match?.anchor, 'presented')
                    })
                    it(`C13: ${tag} fails when the record names ${usage === 3 ? 'a non-leaf certificate' : 'an unrelated CA'}`, () => {
                        // DANE-EE naming the intermediate must not match (leaf only); DANE-TA naming a stranger must not match
                        const rr = usage === 3 ? tlsaText(inter, 3, selector, mtype) : tlsaText(otherCa, 2, selector, mtype)
                        assertFail(verify([leaf, inter, root], [rr]), 'no-match')
                    })
                }
            }
        }
    })

    describe('C14: DANE-EE', () => {
        it('C14: an expired leaf passes under DANE-EE', () => {
            assertPass(verify([expiredLeaf, inter, root], [tlsaText(expiredLeaf, 3, 1, 1)]), 0)
        })

        it('C14: a not-yet-valid leaf and a far-future clock pass under DANE-EE', () => {
            assertPass(verify([futureLeaf], [tlsaText(futureLeaf, 3, 0, 1)]), 0)
            assertPass(verify([leaf], [tlsaText(leaf, 3, 1, 1)], { now: new Date(Date.UTC(2200, 0, 1)) }), 0)
        })

        it('C14: names are ignored under DANE-EE', () => {
            const r = verify([sanOtherLeaf], [tlsaText(sanOtherLeaf, 3, 1, 1)])
            assertPass(r, 0)
            assert.equal(r.matchedName, undefined)
        })

        it('C14: the rest of the chain is ignored under DANE-EE, even a broken signature and an unrelated certificate after the leaf', () => {
            const bad = withBadSignature(leaf)
            assertPass(verify([bad, otherCa], [tlsaText(bad, 3, 0, 2)]), 0)
            // a key-only record still matches after the signature change
            assertPass(verify([bad], [tlsaText(leaf, 3, 1, 1)]), 0)
        })

        it('C14: a DANE-EE record is never matched against the issuer', () => {
            assertFail(verify([leaf, inter, root], [tlsaText(root, 3, 1, 1), tlsaText(inter, 3, 0, 1)]), 'no-match')
        })
    })

    describe('C15: DANE-TA', () => {
        it('C15: the anchor may be the root of the presented chain', () => {
            const r = verify([leaf, inter, root], [tlsaText(root, 2, 1, 1)])
            assertPass(r, 2)
            assert.equal(r.match?.anchor, 'presented')
            assert.equal(r.matchedName, 'mx.example.com')
        })

        it('C15: an expired leaf fails under DANE-TA with code expired', () => {
            assertFail(verify([expiredLeaf, inter, root], [tlsaText(inter, 2, 1, 1)]), 'expired')
        })

        it('C15: a not-yet-valid leaf fails under DANE-TA with code not-yet-valid', () => {
            assertFail(verify([futureLeaf, inter, root], [tlsaText(inter, 2, 1, 1)]), 'not-yet-valid')
        })

        it('C15: an expired intermediate below the anchor fails', () => {
            assertFail(verify([leafUnderExpiredInter, expiredInter, root], [tlsaText(root, 2, 0, 1)]), 'expired')
        })

        it("C15: the anchor's own dates are not checked (expired anchor passes)", () => {
            assertPass(verify([leafUnderExpiredRoot, interUnderExpiredRoot, expiredRoot], [tlsaText(expiredRoot, 2, 1, 1)]), 2)
            // and an expired intermediate that is itself the anchor passes too
            assertPass(verify([leafUnderExpiredInter, expiredInter], [tlsaText(expiredInter, 2, 1, 2)]), 1)
        })

        it('C15: the clock passed in `now` decides validity', () => {
            assertFail(verify([leaf, inter, root], [tlsaText(root, 2, 1, 1)], { now: new Date(Date.UTC(2200, 0, 1)) }), 'expired')
            assertFail(verify([leaf, inter, root], [tlsaText(root, 2, 1, 1)], { now: new Date(Date.UTC(2000, 0, 1)) }), 'not-yet-valid')
        })

        it('C15: intermediates may be presented out of order', () => {
            assertPass(verify([leaf, root, inter], [tlsaText(root, 2, 1, 1)]), 2)
            assertPass(verify([leaf, root, inter], [tlsaText(inter, 2, 0, 1)]), 1)
            assertPass(verify([leaf, otherCa, root, inter], [tlsaText(root, 2, 0, 2)]), 2)
        })

        it('C15: a missing intermediate fails with chain-not-built', () => {
            assertFail(verify([leaf, root], [tlsaText(root, 2, 1, 1)]), 'chain-not-built')
        })

        it('C15, C18: a 2 0 0 anchor need not be presented; like OpenSSL, the anchor certificate is reported at its own depth', () => {
            const r = verify([leaf, inter], [tlsaText(root, 2, 0, 0)])
            assertPass(r, 2)
            assert.equal(r.match?.anchor, 'from-record')
            const direct = verify([leaf], [tlsaText(inter, 2, 0, 0)])
            assertPass(direct, 1)
            assert.equal(direct.match?.anchor, 'from-record')
        })

        it('C15, C18: a 2 1 0 anchor key need not be presented; like OpenSSL, the depth is that of the certificate the key signed', () => {
            const r = verify([leaf, inter], [tlsaText(root, 2, 1, 0)])
            assertPass(r, 1)
            assert.equal(r.match?.anchor, 'from-record')
            assertPass(verify([leaf], [tlsaText(inter, 2, 1, 0)]), 0)
        })

        it('C15, C18: dates below a DNS-given anchor are still checked, including the certificate it signed', () => {
            const r = verify([leafUnderExpiredInter, expiredInter], [tlsaText(root, 2, 1, 0)])
            assertFail(r, 'expired')
            assert.match(r.failure?.detail ?? '', /Expired Intermediate at depth 1 expired .*given in DNS, signer of depth 1/)
        })

        it('C15: a presented copy of a 2 0 0 anchor is reported as presented', () => {
            const r = verify([leaf, inter, root], [tlsaText(root, 2, 0, 0)])
            assertPass(r, 2)
            assert.equal(r.match?.anchor, 'presented')
        })

        it('C15: a 2 0 0 / 2 1 0 anchor that signed nothing presented does not authenticate', () => {
            assertFail(verify([leaf, inter, root], [tlsaText(otherCa, 2, 0, 0)]), 'no-match')
            assertFail(verify([leaf, inter, root], [tlsaText(otherCa, 2, 1, 0)]), 'no-match')
            // the root it would need is given, but the intermediate below it is missing
            assertFail(verify([leaf], [tlsaText(root, 2, 0, 0)]), 'chain-not-built')
        })

        it('C15: the anchor from a 2 0 0 record still requires dates below it', () => {
            assertFail(verify([expiredLeaf, inter], [tlsaText(root, 2, 0, 0)]), 'expired')
        })

        it('C15: a bad signature in the path fails with bad-signature', () => {
            const bad = withBadSignature(leaf)
            assertFail(verify([bad, inter, root], [tlsaText(inter, 2, 1, 1)]), 'bad-signature')
            assertFail(verify([bad, inter, root], [tlsaText(root, 2, 1, 1)]), 'bad-signature')
            const badInter = withBadSignature(inter)
            assertFail(verify([leaf, badInter, root], [tlsaText(root, 2, 1, 1)]), 'bad-signature')
            assertFail(verify([bad], [tlsaText(inter, 2, 0, 0)]), 'bad-signature')
        })

        it('C15: a certificate that is not a CA cannot be an intermediate', () => {
            const r = verifyChain({ chain: ders(victim, leaf, inter, root), records: [rec(tlsaText(inter, 2, 1, 1))], referenceNames: ['victim.example.com'] })
            assertFail(r, 'not-a-ca')
            assert.match(r.failure?.detail ?? '', /mx\.example\.com at depth 1 issues .*victim.* but is not a CA/)
        })

        it('C15: the leaf is never its own DANE-TA trust anchor (RFC 6698 2.1.1; OpenSSL and Postfix refuse it too): 3 x x is the record for that', () => {
            for (const rr of [tlsaText(selfSignedLeaf, 2, 1, 1), tlsaText(selfSignedLeaf, 2, 0, 1), tlsaText(selfSignedLeaf, 2, 0, 0)]) {
                const r = verify([selfSignedLeaf], [rr])
                assertFail(r, 'no-match')
                assert.match(r.failure?.detail ?? '', /matches the leaf itself, which cannot be its own DANE-TA trust anchor/)
            }
            // a leaf issued by the anchor is fine, and the same key as DANE-EE is fine
            assertPass(verify([leaf, inter], [tlsaText(inter, 2, 1, 1)]), 1)
            assertPass(verify([selfSignedLeaf], [tlsaText(selfSignedLeaf, 3, 1, 1)]), 0)
        })
    })

    describe('C16: names under DANE-TA', () => {
        const taOnInter = (): string => tlsaText(inter, 2, 1, 1)

        it('C16: the leaf name must match a reference identifier', () => {
            assertPass(verify([leaf, inter], [taOnInter()]), 1)
            assertFail(verifyChain({ chain: ders(leaf, inter), records: [rec(taOnInter())], referenceNames: ['example.com'] }), 'name-mismatch')
        })

        it('C16: any reference identifier may match, and the one matched is reported', () => {
            const r = verifyChain({ chain: ders(leaf, inter), records: [rec(taOnInter())], referenceNames: ['example.net', 'MX.example.com.'] })
            assertPass(r, 1)
            assert.equal(r.matchedName, 'MX.example.com.')
        })

        it('C16: a wildcard matches exactly one label', () => {
            const ok = verifyChain({ chain: ders(wildLeaf, inter), records: [rec(taOnInter())], referenceNames: ['mx.example.com'] })
            assertPass(ok, 1)
            assert.equal(ok.matchedName, 'mx.example.com')
        })

        it('C16: a wildcard does not match two labels or the bare parent', () => {
            assertFail(verifyChain({ chain: ders(wildLeaf, inter), records: [rec(taOnInter())], referenceNames: ['a.mx.example.com'] }), 'name-mismatch')
            assertFail(verifyChain({ chain: ders(wildLeaf, inter), records: [rec(taOnInter())], referenceNames: ['example.com'] }), 'name-mismatch')
        })

        it('C16: the CN counts when there is no DNS subjectAltName', () => {
            assertPass(verify([cnOnlyLeaf, inter], [taOnInter()]), 1)
        })

        it('C16: the CN is ignored when subjectAltNames exist', () => {
            assertFail(verify([sanOtherLeaf, inter], [taOnInter()]), 'name-mismatch')
        })

        it('C16: checkNames false skips the name check', () => {
            const r = verify([sanOtherLeaf, inter], [taOnInter()], { checkNames: false })
            assertPass(r, 1)
            assert.equal(r.matchedName, undefined)
        })

        it('C16: no reference identifiers means no name matches', () => {
            assertFail(verifyChain({ chain: ders(leaf, inter), records: [rec(taOnInter())], referenceNames: [] }), 'name-mismatch')
        })
    })

    describe('C17: digest agility', () => {
        it('C17: a wrong SHA-512 beside a right SHA-256 of the same usage+selector fails', () => {
            const wrong512 = `3 1 2 ${randomBytes(64).toString('hex')}`
            const r = verify([leaf], [tlsaText(leaf, 3, 1, 1), wrong512])
            assertFail(r, 'no-match')
            assert.equal(r.usable, 1, 'only the SHA-512 record is used')
        })

        it('C17: a right SHA-512 beside a wrong SHA-256 passes', () => {
            const wrong256 = `3 1 1 ${randomBytes(32).toString('hex')}`
            const right512 = tlsaText(leaf, 3, 1, 2)
            assertPass(verify([leaf], [wrong256, right512]), 0, right512)
        })

        it('C17: agility is per usage+selector: a SHA-512 of another selector does not hide a SHA-256', () => {
            const wrong512 = `3 0 2 ${randomBytes(64).toString('hex')}`
            const r = verify([leaf], [wrong512, tlsaText(leaf, 3, 1, 1)])
            assertPass(r, 0)
            assert.equal(r.usable, 2)
        })

        it('C17: the same rule applies to DANE-TA', () => {
            const wrong512 = `2 1 2 ${randomBytes(64).toString('hex')}`
            assertFail(verify([leaf, inter], [tlsaText(inter, 2, 1, 1), wrong512]), 'no-match')
            assertPass(verify([leaf, inter], [`2 1 1 ${randomBytes(32).toString('hex')}`, tlsaText(inter, 2, 1, 2)]), 1)
        })
    })

    describe('C18: one matching usable record suffices', () => {
        it('C18: one match among many wrong records passes, and the matched record is reported', () => {
            const right = tlsaText(inter, 2, 0, 1)
            const records = [
                `3 1 1 ${randomBytes(32).toString('hex')}`,
                `2 1 1 ${randomBytes(32).toString('hex')}`,
                right,
                `3 0 1 ${randomBytes(32).toString('hex')}`,
            ]
            const r = verify([leaf, inter, root], records)
            assertPass(r, 1, right)
            assert.equal(r.usable, 4)
        })

        it('C18: a DANE-EE match is preferred over a DANE-TA match', () => {
            const ee = tlsaText(leaf, 3, 1, 1)
            const r = verify([leaf, inter, root], [tlsaText(root, 2, 1, 1), ee])
            assertPass(r, 0, ee)
            assert.equal(r.match?.anchor, undefined)
        })

        it('C18: the most informative failure is reported (name mismatch beats plain no-match)', () => {
            const r = verifyChain({
                chain: ders(leaf, inter, root),
                records: [rec(`3 1 1 ${randomBytes(32).toString('hex')}`), rec(tlsaText(inter, 2, 1, 1))],
                referenceNames: ['elsewhere.example'],
            })
            assertFail(r, 'name-mismatch')
            assert.match(r.failure?.detail ?? '', /mx\.example\.com/)
        })

        it('C18: the most informative failure is reported (expiry beats no-match)', () => {
            assertFail(
                verify([expiredLeaf, inter, root], [tlsaText(otherCa, 2, 1, 1), tlsaText(inter, 2, 1, 1), `3 1 1 ${randomBytes(32).toString('hex')}`]),
                'expired',
            )
        })

        it('C18: a matching record still authenticates beside malformed and unusable ones', () => {
            const right = tlsaText(leaf, 3, 1, 1)
            const r = verify([leaf], [rec('garbage'), rec(`0 1 1 ${randomBytes(32).toString('hex')}`), rec(`3 1 1 abcd`), rec(right)])
            assertPass(r, 0, right)
            assert.equal(r.usable, 1)
        })
    })

    describe('C12: no usable records', () => {
        it('C12: usage 0/1, unknown values and wrong digest lengths give no-usable-records', () => {
            const records = [
                tlsaText(leaf, 0, 1, 1), // right digest, but PKIX-TA
                tlsaText(leaf, 1, 1, 1), // right digest, but PKIX-EE
                `4 1 1 ${randomBytes(32).toString('hex')}`,
                `3 2 1 ${randomBytes(32).toString('hex')}`,
                `3 1 3 ${randomBytes(32).toString('hex')}`,
                `3 1 1 ${randomBytes(31).toString('hex')}`,
                `3 1 2 ${randomBytes(32).toString('hex')}`,
            ]
            const r = verify([leaf, inter, root], records)
            assertFail(r, 'no-usable-records')
            assert.equal(r.usable, 0)
            assert.equal(rfc8460ResultType(r.failure!.code), 'tlsa-invalid')
        })

        it('C12: malformed TLSA text and rdata only give no-usable-records, without throwing', () => {
            const r = verify([leaf], [rec('not a record'), rec('3 1 1 xyz')])
            assertFail(r, 'no-usable-records')
            assert.match(r.failure?.detail ?? '', /malformed/)
            assertFail(verify([leaf], []), 'no-usable-records')
        })
    })

    describe('garbage input', () => {
        it('C9: garbage bytes as the leaf fail cleanly with bad-certificate', () => {
            assertFail(verify([Buffer.from('garbage')], [tlsaText(leaf, 3, 1, 1)]), 'bad-certificate')
            assertFail(verify([randomBytes(300)], [tlsaText(leaf, 3, 1, 1)]), 'bad-certificate')
        })

        it('C9: garbage bytes as the only intermediate: dropped, so the DANE-TA anchor is not presented (no-match)', () => {
            assertFail(verify([leaf.der, Buffer.from([0x30, 0x82, 0x01])], [tlsaText(inter, 2, 1, 1)]), 'no-match')
        })

        it('C14, C15: garbage among the intermediates is dropped: DANE-EE never looks, DANE-TA builds through the good ones', () => {
            const junk = Buffer.from([0x30, 0x82, 0x01])
            assertPass(verify([leaf.der, junk, inter.der], [tlsaText(leaf, 3, 1, 1)]), 0)
            assertPass(verify([leaf.der, junk, inter.der], [tlsaText(inter, 2, 1, 1)]), 1)
            assert.equal(parseChain([leaf.der, junk, inter.der]).dropped?.length, 1)
        })

        it('C15: a flood of same-named CA certificates sharing one key is given up on within the signature budget', () => {
            const key = makeCertificate({ cn: 'X', ca: true })
            const cas = Array.from({ length: 12 }, () => makeCertificate({ cn: 'X', ca: true, keyPem: key.keyPem }))
            const victimLeaf = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'], issuer: key })
            const unrelated = makeCertificate({ cn: 'elsewhere', ca: true })
            const r = verify([victimLeaf, ...cas], [tlsaText(unrelated, 2, 1, 0)])
            assertFail(r, 'chain-not-built')
            assert.match(r.failure!.detail, /gave up building a path after 64 signature checks/)
        })

        it('C15: more than 20 presented certificates: the rest are not considered', () => {
            const many = Array.from({ length: 25 }, (_, i) => makeCertificate({ cn: `CA ${i}`, ca: true, issuer: root }).der)
            const parsed = parseChain([leaf.der, ...many])
            assert.equal(parsed.certs.length, 20)
            assert.match(parsed.dropped![0], /beyond the first 20/)
        })

        it('C15: a certificate presented twice is considered once', () => {
            const parsed = parseChain([leaf.der, inter.der, inter.der, root.der, inter.der])
            assert.equal(parsed.certs.length, 3)
            assertPass(verifyChain({ chain: parsed, records: [rec(tlsaText(root, 2, 0, 1))], referenceNames: ['mx.example.com'] }), 2)
        })

        it('C9: trailing bytes after a certificate, or PEM instead of DER, are rejected', () => {
            assertFail(verify([Buffer.concat([leaf.der, Buffer.from([0])])], [tlsaText(leaf, 3, 1, 1)]), 'bad-certificate')
            assertFail(verify([Buffer.from(leaf.pem)], [tlsaText(leaf, 3, 1, 1)]), 'bad-certificate')
        })

        it('C9: an empty chain fails with empty-chain', () => {
            assertFail(verify([], [tlsaText(leaf, 3, 1, 1)]), 'empty-chain')
        })

        it('C15: a 2 0 0 / 2 1 0 record whose data is not a certificate / key fails cleanly', () => {
            const r = verify([leaf, inter], [`2 0 0 ${randomBytes(40).toString('hex')}`, `2 1 0 ${randomBytes(40).toString('hex')}`])
            assertFail(r, 'no-match')
            assert.match(r.failure?.detail ?? '', /not a certificate/)
        })

        it('C9: nonsense input objects never make verifyChain throw', () => {
            const weird: unknown[] = [null, undefined, 42, 'x', { certs: null }, [null], [42]]
            for (const chain of weird) {
                const r = verifyChain({ chain: chain as Buffer[], records: [rec(tlsaText(leaf, 3, 1, 1))], referenceNames: REFS })
                assert.equal(r.authenticated, false)
                assert.ok(r.failure)
            }
            const r = verifyChain({ chain: ders(leaf), records: null as unknown as TlsaRecord[], referenceNames: REFS })
            assertFail(r, 'no-usable-records')
        })

        it('C9: parseChain reports garbage and never throws', () => {
            const p = parseChain([leaf.der, Buffer.from('nope')])
            assert.equal(p.error, undefined, 'a bad certificate above the leaf is dropped, not fatal')
            assert.match(p.dropped?.[0] ?? '', /position 1/)
            assert.equal(p.certs.length, 1)
            const badLeaf = parseChain([Buffer.from('nope'), leaf.der])
            assert.match(badLeaf.error ?? '', /position 0 \(the leaf\)/)
            const ok = parseChain(ders(leaf, inter))
            assert.equal(ok.error, undefined)
            assert.equal(ok.certs.length, 2)
            assert.equal(parseChain('x' as unknown as Buffer[]).certs.length, 0)
        })
    })

    describe('parsing and computing once', () => {
        it('C13: a ParsedChain can be verified repeatedly (parse once per connection)', () => {
            const parsed = parseChain(ders(leaf, inter, root))
            const a = verifyChain({ chain: parsed, records: [rec(tlsaText(inter, 2, 1, 1))], referenceNames: REFS })
            const b = verifyChain({ chain: parsed, records: [rec(tlsaText(leaf, 3, 0, 2))], referenceNames: REFS })
            assertPass(a, 1)
            assertPass(b, 0)
        })

        it('C13: a chain node has already parsed verifies like one parsed from DER', () => {
            const parsed = parseChain([leaf.x509, root.x509, inter.x509])
            assert.equal(parsed.error, undefined)
            assert.equal(parsed.certs[0], leaf.x509, 'the very object, not parsed again')
            assertPass(verifyChain({ chain: parsed, records: [rec(tlsaText(root, 2, 0, 1))], referenceNames: REFS }), 2)
            const bad = parseChain([leaf.x509, 'x' as unknown as typeof leaf.x509])
            assert.match(bad.dropped?.[0] ?? '', /position 1/)
            assertPass(verifyChain({ chain: bad, records: [rec(tlsaText(leaf, 3, 1, 1))], referenceNames: REFS }), 0)
            assert.match(parseChain(['x' as unknown as Buffer]).error ?? '', /position 0/)
        })

        it('C13: association data is computed once per certificate bytes, selector and matching type, across connections', () => {
            // certificates of their own: no other test has had their digests computed
            const r0 = makeCertificate({ cn: 'Once Root', ca: true })
            const i0 = makeCertificate({ cn: 'Once Intermediate', ca: true, issuer: r0 })
            const l0 = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'], issuer: i0 })
            const records = [...Array.from({ length: 15 }, () => rec(`2 1 1 ${randomBytes(32).toString('hex')}`)), rec(tlsaText(r0, 2, 1, 1))]
            records.push(...Array.from({ length: 8 }, () => rec(`3 1 1 ${randomBytes(32).toString('hex')}`)))
            const mod = nodeCrypto as { createHash: typeof nodeCrypto.createHash }
            const original = mod.createHash
            let calls = 0
            const counted = (chain: Buffer[], recs: TlsaRecord[]): VerifyResult => {
                try {
                    mod.createHash = ((alg: string, opts?: nodeCrypto.HashOptions) => {
                        calls++
                        return original(alg, opts)
                    }) as typeof nodeCrypto.createHash
                    return verifyChain({ chain: parseChain(chain), records: recs, referenceNames: REFS })
                } finally {
                    mod.createHash = original
                }
            }
            assertPass(counted(ders(l0, i0, r0), records), 2)
            assert.equal(calls, 3, 'one SHA-256 of each of the three SPKIs, however many records')
            // a second connection presents the same bytes (new buffers, new certificate objects): nothing is hashed again,
            // and it is still verified against its own records: here ones that name none of its keys
            const copies = ders(l0, i0, r0).map((b) => Buffer.from(b))
            assertPass(counted(copies, records), 2)
            assert.equal(calls, 3, 'the same certificates again: no new digest')
            const other = [rec(`3 1 1 ${randomBytes(32).toString('hex')}`), rec(`2 1 1 ${randomBytes(32).toString('hex')}`)]
            assert.equal(counted(copies, other).authenticated, false)
            assert.equal(calls, 3)
            // the same bytes under a different matching type are a different fact: computed once more
            assertPass(counted(copies, [rec(tlsaText(l0, 3, 1, 2))]), 0)
            assert.equal(calls, 4)
        })

        it('C15: a signature and an issuer link are facts of the bytes, kept across connections; every path is still validated', () => {
            const r0 = makeCertificate({ cn: 'Sig Root', ca: true })
            const i0 = makeCertificate({ cn: 'Sig Intermediate', ca: true, issuer: r0 })
            const l0 = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'], issuer: i0 })
            const proto = nodeCrypto.X509Certificate.prototype as { verify: (k: nodeCrypto.KeyObject) => boolean }
            const original = proto.verify
            let checks = 0
            const counted = (chain: Buffer[], refs = REFS, now?: Date): VerifyResult => {
                proto.verify = function (this: nodeCrypto.X509Certificate, k: nodeCrypto.KeyObject) {
                    checks++
                    return original.call(this, k)
                }
                try {
                    return verifyChain({ chain: parseChain(chain), records: [rec(tlsaText(r0, 2, 0, 1))], referenceNames: refs, now })
                } finally {
                    proto.verify = original
                }
            }
            assertPass(counted(ders(l0, i0, r0)), 2)
            const first = checks
            assert.ok(first >= 2, `the two links were checked (${first})`)
            assertPass(counted(ders(l0, i0, r0).map((b) => Buffer.from(b))), 2)
            assert.equal(checks, first, 'the same certificates again: no signature checked again')
            // the path is validated afresh: other reference names, another time
            assert.equal(counted(ders(l0, i0, r0), ['other.example']).failure?.code, 'name-mismatch')
            assert.equal(counted(ders(l0, i0, r0), REFS, new Date(Date.now() + 20 * 365 * 86400_000)).authenticated, false)
            // other bytes are other facts: a leaf whose signature is broken still fails
            assert.equal(counted(ders(withBadSignature(l0), i0, r0)).failure?.code, 'bad-signature')
            assert.equal(checks, first + 1)
        })

        it('C13: associationData follows selector and matching type', () => {
            const spki = leaf.x509.publicKey.export({ type: 'spki', format: 'der' }) as Buffer
            assert.deepEqual(associationData(leaf.x509, 0, 0), leaf.der)
            assert.deepEqual(associationData(leaf.der, 1, 0), spki)
            assert.deepEqual(associationData(leaf.x509, 1, 1), nodeCrypto.createHash('sha256').update(spki).digest())
            assert.deepEqual(associationData(leaf.der, 0, 2), nodeCrypto.createHash('sha512').update(leaf.der).digest())
            assert.equal(associationData(leaf.x509, 1, 2).toString('hex'), tlsaText(leaf, 3, 1, 2).split(' ')[3])
            assert.throws(() => associationData(leaf.x509, 2, 1), RangeError)
            assert.throws(() => associationData(leaf.x509, 1, 3), RangeError)
        })

        it('C13: RSA keys work the same way', () => {
            const rsaCa = makeCertificate({ cn: 'RSA CA', ca: true, keyType: 'rsa' })
            const rsaLeaf = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'], issuer: rsaCa, keyPem: leaf.keyPem })
            assertPass(verify([rsaLeaf, rsaCa], [tlsaText(rsaCa, 2, 1, 1)]), 1)
            assertPass(verify([rsaLeaf], [tlsaText(rsaCa, 2, 1, 0)]), 0) // C18: the depth of the certificate the DNS key signed
        })
    })

    describe('C25: RFC 8460 result types', () => {
        it('C25: failure codes map onto RFC 8460 result types', () => {
            const expected: Record<FailureCode, string> = {
                'not-a-ca': 'validation-failure',
                'path-length-exceeded': 'validation-failure',
                'name-constraint-violation': 'validation-failure',
                'unhandled-critical-extension': 'validation-failure',
                'not-for-tls-server': 'validation-failure',
                'name-mismatch': 'certificate-host-mismatch',
                expired: 'certificate-expired',
                'not-yet-valid': 'certificate-expired',
                'no-usable-records': 'tlsa-invalid',
                'no-match': 'validation-failure',
                'empty-chain': 'validation-failure',
                'bad-certificate': 'validation-failure',
                'bad-signature': 'validation-failure',
                'chain-not-built': 'validation-failure',
            }
            for (const [code, type] of Object.entries(expected)) assert.equal(rfc8460ResultType(code as FailureCode), type, code)
        })
    })
})
