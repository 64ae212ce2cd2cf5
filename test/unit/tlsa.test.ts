import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { tlsaFromRdata, tlsaFromText, unusableReason, usableRecords, strongestDigests, type TlsaRecord } from '../../lib/tlsa'

const H32 = 'ab'.repeat(32)
const H64 = 'cd'.repeat(64)

function rec(text: string): TlsaRecord {
    const r = tlsaFromText(text)
    assert.equal(r.malformed, undefined, `fixture "${text}" should parse`)
    return r
}

describe('tlsa: parsing', () => {
    it('C13: rdata gives usage, selector, matching type and the association data', () => {
        const rdata = Buffer.concat([Buffer.from([3, 1, 1]), Buffer.from(H32, 'hex')])
        const r = tlsaFromRdata(rdata)
        assert.equal(r.usage, 3)
        assert.equal(r.selector, 1)
        assert.equal(r.mtype, 1)
        assert.deepEqual(r.data, Buffer.from(H32, 'hex'))
        assert.equal(r.text, `3 1 1 ${H32}`)
        assert.equal(r.malformed, undefined)
    })

    it('C13: rdata data is copied, so a reused packet buffer cannot change a record', () => {
        const rdata = Buffer.concat([Buffer.from([3, 1, 1]), Buffer.from(H32, 'hex')])
        const r = tlsaFromRdata(rdata)
        rdata.fill(0)
        assert.equal(r.data.toString('hex'), H32)
    })

    it('C13: text hex is case-insensitive and may contain white space; data is decoded once', () => {
        const upper = H32.toUpperCase()
        const r = tlsaFromText(`  2 0 1 ${upper.slice(0, 20)} ${upper.slice(20, 40)}\t${upper.slice(40)}  `)
        assert.equal(r.malformed, undefined)
        assert.equal(r.usage, 2)
        assert.equal(r.selector, 0)
        assert.equal(r.mtype, 1)
        assert.ok(Buffer.isBuffer(r.data))
        assert.equal(r.data.toString('hex'), H32)
        assert.equal(r.text, `2 0 1 ${H32}`, 'presentation form is lower-case hex without spaces')
    })

    it('C13: text and rdata forms of the same record are equal', () => {
        const a = tlsaFromText(`3 1 2 ${H64}`)
        const b = tlsaFromRdata(Buffer.from(`030102${H64}`, 'hex'))
        assert.deepEqual(a, b)
    })

    it('C13: RFC 3597 generic text form and RFC 7218 mnemonics are understood', () => {
        const g = tlsaFromText(`\\# 35 030101${H32}`)
        assert.equal(g.malformed, undefined)
        assert.equal(g.text, `3 1 1 ${H32}`)
        const m = tlsaFromText(`DANE-EE SPKI SHA2-256 ${H32}`)
        assert.equal(m.text, `3 1 1 ${H32}`)
        const z = tlsaFromText(`3 1 1 ( ${H32.slice(0, 32)}\n ${H32.slice(32)} )`)
        assert.equal(z.text, `3 1 1 ${H32}`)
    })

    it('C12: garbage rdata gives a malformed record, not an exception', () => {
        for (const bad of [Buffer.alloc(0), Buffer.from([3]), Buffer.from([3, 1])]) {
            const r = tlsaFromRdata(bad)
            assert.ok(r.malformed, `rdata ${bad.toString('hex')} must be malformed`)
            assert.equal(r.usage, -1)
            assert.equal(r.selector, -1)
            assert.equal(r.mtype, -1)
            assert.match(unusableReason(r) ?? '', /^malformed/)
        }
        const notBuffer = tlsaFromRdata('0301' as unknown as Buffer)
        assert.ok(notBuffer.malformed)
    })

    it('C12: garbage text gives a malformed record, not an exception', () => {
        const cases = [
            '',
            'hello world',
            '3 1',
            `3 1 1 ${H32}zz`,
            `3 1 1 ${H32}a`, // odd number of hex digits
            `256 1 1 ${H32}`,
            `3 -1 1 ${H32}`,
            `3 1 x ${H32}`,
            '\\# 3 0301',
            '\\# x 030101',
            '\u0000\u0001\u0002',
        ]
        for (const text of cases) {
            const r = tlsaFromText(text)
            assert.ok(r.malformed, `"${text}" must be malformed`)
            assert.equal(r.usage, -1)
            assert.notEqual(unusableReason(r), null)
        }
        assert.ok(tlsaFromText(undefined as unknown as string).malformed)
    })

    it('C12: random bytes never make tlsaFromRdata or tlsaFromText throw', () => {
        for (let i = 0; i < 300; i++) {
            const b = randomBytes(i % 70)
            const r = tlsaFromRdata(b)
            assert.equal(typeof r.text, 'string')
            const t = tlsaFromText(b.toString('latin1'))
            assert.equal(typeof t.text, 'string')
        }
    })
})

describe('tlsa: usable records', () => {
    it('C12: DANE-TA and DANE-EE with known selector and matching type are usable', () => {
        for (const u of [2, 3]) {
            for (const s of [0, 1]) {
                assert.equal(unusableReason(rec(`${u} ${s} 0 3082`)), null)
                assert.equal(unusableReason(rec(`${u} ${s} 1 ${H32}`)), null)
                assert.equal(unusableReason(rec(`${u} ${s} 2 ${H64}`)), null)
            }
        }
    })

    it('C12: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP', () => {
        assert.match(unusableReason(rec(`0 0 1 ${H32}`)) ?? '', /PKIX-TA.*RFC 7672 3\.1\.3/)
        assert.match(unusableReason(rec(`1 1 1 ${H32}`)) ?? '', /PKIX-EE.*RFC 7672 3\.1\.3/)
    })

    it('C12: unknown usage, selector or matching type is unusable', () => {
        assert.match(unusableReason(rec(`4 1 1 ${H32}`)) ?? '', /unknown usage 4/)
        assert.match(unusableReason(rec(`255 1 1 ${H32}`)) ?? '', /unknown usage 255/)
        assert.match(unusableReason(rec(`3 2 1 ${H32}`)) ?? '', /unknown selector 2/)
        assert.match(unusableReason(rec(`3 1 3 ${H32}`)) ?? '', /unknown matching type 3/)
    })

    it('C12: a digest of the wrong length is unusable', () => {
        assert.match(unusableReason(rec(`3 1 1 ${H32}00`)) ?? '', /32-byte/)
        assert.match(unusableReason(rec(`3 1 1 ${H32.slice(2)}`)) ?? '', /32-byte/)
        assert.match(unusableReason(rec(`3 1 2 ${H32}`)) ?? '', /64-byte/)
        assert.match(unusableReason(rec(`2 0 2 ${H64}00`)) ?? '', /64-byte/)
    })

    it('C12: empty association data is unusable', () => {
        assert.match(unusableReason(rec('3 1 0')) ?? '', /empty/)
        assert.match(unusableReason(tlsaFromRdata(Buffer.from([2, 0, 0]))) ?? '', /empty/)
    })

    it('C12: usableRecords keeps exactly the usable ones, in order', () => {
        const good1 = rec(`3 1 1 ${H32}`)
        const good2 = rec(`2 0 2 ${H64}`)
        const all = [rec(`0 0 1 ${H32}`), good1, rec(`3 1 1 ${H64}`), tlsaFromText('junk'), good2, rec(`9 1 1 ${H32}`)]
        assert.deepEqual(usableRecords(all), [good1, good2])
        assert.deepEqual(usableRecords([rec(`1 0 1 ${H32}`)]), [])
    })
})

describe('tlsa: digest agility', () => {
    it('C17: SHA2-512 beside SHA2-256 of the same usage+selector leaves only SHA2-512', () => {
        const s256 = rec(`3 1 1 ${H32}`)
        const s512 = rec(`3 1 2 ${H64}`)
        assert.deepEqual(strongestDigests([s256, s512]), [s512])
        assert.deepEqual(strongestDigests([s512, s256]), [s512])
    })

    it('C17: ranking is per usage+selector pair', () => {
        const ee1_256 = rec(`3 1 1 ${H32}`)
        const ee1_512 = rec(`3 1 2 ${H64}`)
        const ee0_256 = rec(`3 0 1 ${H32}`)
        const ta1_256 = rec(`2 1 1 ${H32}`)
        const out = strongestDigests([ee1_256, ee1_512, ee0_256, ta1_256])
        assert.deepEqual(out, [ee1_512, ee0_256, ta1_256])
    })

    it('C17: Full(0) records are not ranked and always kept', () => {
        const full = rec('2 0 0 308201')
        const s256 = rec(`2 0 1 ${H32}`)
        const s512 = rec(`2 0 2 ${H64}`)
        assert.deepEqual(strongestDigests([full, s256, s512]), [full, s512])
        assert.deepEqual(strongestDigests([full]), [full])
    })

    it('C17: unusable records do not take part in the ranking', () => {
        // a SHA2-512 record of the wrong length must not knock out a good SHA2-256 one
        const s256 = rec(`3 1 1 ${H32}`)
        const bad512 = rec(`3 1 2 ${H32}`)
        assert.deepEqual(strongestDigests([s256, bad512]), [s256])
        // nor a PKIX-EE one of another usage
        assert.deepEqual(strongestDigests([rec(`1 1 2 ${H64}`), s256]), [s256])
    })
})
