/**
 * lib/dns/answer.ts: interpret() on hand-built replies (RFC 1035 §4.1 byte by byte, no dns2 on the
 * encoding side), matched and decoded by lib/dns/wire.ts as the transport would. No sockets.
 * Test titles start with the conformance items they prove.
 */
import { strict as assert } from 'node:assert'
import { interpret, type Answer, type RRType } from '../../lib/dns/answer'
import { MalformedReply, classifyReply } from '../../lib/dns/wire'

const T = { A: 1, CNAME: 5, SOA: 6, MX: 15, TXT: 16, AAAA: 28, OPT: 41, RRSIG: 46, TLSA: 52 } as const
const ID = 0x1234

function name(n: string): Buffer {
    const labels = n.split('.').filter(Boolean)
    return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])), Buffer.from([0])])
}

function u16(n: number): Buffer {
    const b = Buffer.alloc(2)
    b.writeUInt16BE(n, 0)
    return b
}

function u32(n: number): Buffer {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(n >>> 0, 0)
    return b
}

/** One resource record: owner, type, class IN, TTL, rdlength, rdata. */
function rr(owner: string, type: number, ttl: number, rdata: Buffer): Buffer {
    return Buffer.concat([name(owner), u16(type), u16(1), u32(ttl), u16(rdata.length), rdata])
}

const a = (owner: string, address: string, ttl = 300): Buffer => rr(owner, T.A, ttl, Buffer.from(address.split('.').map(Number)))
const cname = (owner: string, target: string, ttl = 300): Buffer => rr(owner, T.CNAME, ttl, name(target))
const soa = (owner: string, ttl: number, minimum: number): Buffer =>
    rr(owner, T.SOA, ttl, Buffer.concat([name(`ns1.${owner}`), name(`hostmaster.${owner}`), u32(1), u32(3600), u32(600), u32(86400), u32(minimum)]))
/** RFC 6891 §6.1.2: OPT at the root, class = payload size, TTL = extended RCODE, version, DO. */
const opt = (extendedRcode = 0): Buffer => Buffer.concat([Buffer.from([0]), u16(T.OPT), u16(1232), u32((extendedRcode << 24) | 0x8000), u16(0)])

interface Reply {
    qname: string
    qtype: number
    rcode?: number
    ad?: boolean
    answers?: Buffer[]
    authorities?: Buffer[]
    additionals?: Buffer[]
}

/** A whole reply: QR RD RA (+AD), the RCODE's low 4 bits, our one question, the three sections. */
function message(r: Reply): Buffer {
    const answers = r.answers ?? []
    const authorities = r.authorities ?? []
    const additionals = r.additionals ?? [opt()]
    const flags = 0x8000 | 0x0100 | 0x0080 | (r.ad ? 0x0020 : 0) | ((r.rcode ?? 0) & 0xf)
    const header = Buffer.concat([u16(ID), u16(flags), u16(1), u16(answers.length), u16(authorities.length), u16(additionals.length)])
    return Buffer.concat([header, name(r.qname), u16(r.qtype), u16(1), ...answers, ...authorities, ...additionals])
}

/** interpret() on a reply to `qname`/`type`, after the wire module matched and decoded it. */
function answer(qname: string, type: RRType, r: Omit<Reply, 'qname' | 'qtype'>): Answer {
    const buf = message({ qname, qtype: T[type], ...r })
    const c = classifyReply(buf, ID, qname, T[type])
    assert.equal(c.kind, 'reply', 'the fixture is a well-formed reply to the question')
    if (c.kind !== 'reply') throw new Error('unreachable')
    return interpret(qname, type, c.reply, c.buf)
}

describe('dns/answer: interpret() on byte fixtures (C2, C3)', () => {
    it('C2: NOERROR with a CNAME chain: followed from the question name, the RRset at its end, ttl the least over both', () => {
        const x = answer('www.example', 'A', {
            ad: true,
            answers: [
                cname('www.example', 'a.example', 500),
                cname('a.example', 'b.example', 200),
                a('b.example', '192.0.2.20', 400),
                a('b.example', '192.0.2.21', 400),
                a('www.example', '192.0.2.99'), // at the alias: not the answer
            ],
        })
        assert.equal(x.status, 'ok')
        assert.equal(x.secure, true)
        assert.equal(x.rcode, 0)
        assert.equal(x.canonicalName, 'b.example')
        assert.deepEqual(x.cnames, ['www.example', 'a.example', 'b.example'])
        assert.deepEqual(x.addresses, ['192.0.2.20', '192.0.2.21'])
        assert.equal(x.ttl, 200)
    })

    it('C2: a CNAME question is answered by the chain itself', () => {
        const x = answer('www.example', 'CNAME', { answers: [cname('www.example', 'a.example', 60), cname('a.example', 'b.example', 90)] })
        assert.equal(x.status, 'ok')
        assert.equal(x.canonicalName, 'b.example')
        assert.equal(x.ttl, 60)
    })

    it('C3: an NXDOMAIN answer lives min(SOA TTL, SOA MINIMUM)', () => {
        const lowMinimum = answer('nope.example', 'MX', { rcode: 3, ad: true, authorities: [soa('example', 900, 120)] })
        assert.equal(lowMinimum.status, 'nxdomain')
        assert.equal(lowMinimum.secure, true)
        assert.equal(lowMinimum.rcode, 3)
        assert.equal(lowMinimum.ttl, 120)
        assert.equal(answer('nope.example', 'MX', { rcode: 3, authorities: [soa('example', 45, 600)] }).ttl, 45)
    })

    it('C3: a NODATA answer lives min(SOA TTL, SOA MINIMUM)', () => {
        const x = answer('host.example', 'AAAA', {
            ad: true,
            answers: [a('host.example', '192.0.2.1'), rr('host.example', T.RRSIG, 300, Buffer.alloc(30, 1))],
            authorities: [soa('example', 300, 60)],
        })
        assert.equal(x.status, 'nodata')
        assert.equal(x.secure, true)
        assert.equal(x.addresses, undefined)
        assert.equal(x.ttl, 60)
        assert.equal(answer('host.example', 'AAAA', { authorities: [soa('example', 30, 600)] }).ttl, 30)
    })

    it('C3: a NODATA at the end of a CNAME chain lives no longer than the chain', () => {
        const x = answer('alias.example', 'TLSA', { answers: [cname('alias.example', 'target.example', 20)], authorities: [soa('example', 40, 90)] })
        assert.equal(x.status, 'nodata')
        assert.equal(x.canonicalName, 'target.example')
        assert.equal(x.ttl, 20)
    })

    it('C3: a negative answer without an SOA has ttl 0 (never cached)', () => {
        assert.equal(answer('bare.example', 'A', {}).ttl, 0)
        assert.equal(answer('bare.example', 'A', { rcode: 3 }).ttl, 0)
    })

    it('C3: an SOA MINIMUM or TTL with the top bit set counts as zero (RFC 2181 §8)', () => {
        assert.equal(answer('x.example', 'A', { authorities: [soa('example', 300, 0x80000001)] }).ttl, 0)
        assert.equal(answer('x.example', 'A', { answers: [a('x.example', '192.0.2.5', 0x80000001)] }).ttl, 0)
    })

    it('C2: SERVFAIL → failed "servfail", never secure even with the AD bit, ttl 0', () => {
        const x = answer('bogus.example', 'TLSA', { rcode: 2, ad: true, answers: [rr('bogus.example', T.TLSA, 300, Buffer.from([3, 1, 1, 0]))] })
        assert.equal(x.status, 'failed')
        assert.equal(x.reason, 'servfail')
        assert.equal(x.rcode, 2)
        assert.equal(x.secure, false)
        assert.equal(x.ttl, 0)
    })

    it('C2: REFUSED, other RCODEs and extended RCODEs (RFC 6891 §6.1.3) → failed', () => {
        assert.equal(answer('r.example', 'A', { rcode: 5 }).reason, 'refused')
        assert.equal(answer('r.example', 'A', { rcode: 4 }).reason, 'rcode 4')
        const badvers = answer('r.example', 'A', { rcode: 0, additionals: [opt(1)] })
        assert.equal(badvers.reason, 'rcode 16')
        assert.equal(badvers.rcode, 16)
    })

    it('C2: a CNAME loop → failed "cname loop"', () => {
        const x = answer('loop1.example', 'A', {
            ad: true,
            answers: [cname('loop1.example', 'loop2.example'), cname('loop2.example', 'loop1.example'), a('loop1.example', '192.0.2.1')],
        })
        assert.equal(x.status, 'failed')
        assert.equal(x.reason, 'cname loop')
        assert.equal(x.secure, false)
        assert.equal(x.ttl, 0)
    })

    it('C2: two different CNAMEs at one owner → failed "conflicting cname"', () => {
        const x = answer('two.example', 'A', { answers: [cname('two.example', 'a.example'), cname('two.example', 'b.example')] })
        assert.equal(x.reason, 'conflicting cname')
    })

    it('C2, C10: the asked type at a name outside the CNAME chain → failed, never a (secure) NODATA', () => {
        const x = answer('alias.example', 'A', {
            ad: true,
            answers: [cname('alias.example', 'target.example'), a('elsewhere.example', '192.0.2.45')],
            authorities: [soa('example', 300, 60)],
        })
        assert.equal(x.status, 'failed')
        assert.equal(x.reason, 'malformed reply')
        assert.equal(x.secure, false)
        assert.equal(x.ttl, 0)
    })

    it('C2: an A record of 5 bytes is a malformed reply (thrown for the resolver to report)', () => {
        const buf = message({ qname: 'five.example', qtype: T.A, answers: [rr('five.example', T.A, 300, Buffer.from([192, 0, 2, 1, 9]))] })
        const c = classifyReply(buf, ID, 'five.example', T.A)
        assert.equal(c.kind, 'reply')
        if (c.kind === 'reply') assert.throws(() => interpret('five.example', 'A', c.reply, c.buf), MalformedReply)
    })

    it("C2: TXT rdata (RFC 1035 3.3.14): a record's character-strings joined without spaces (RFC 8460 3), duplicates dropped; a string past its rdata is malformed", () => {
        const strings = (...parts: string[]): Buffer => Buffer.concat(parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])))
        const x = answer('_smtp._tls.example', 'TXT', {
            ad: true,
            answers: [
                rr('_smtp._tls.example', T.TXT, 300, strings('v=TLSRPTv1;rua=mailto:a@example,', 'mailto:b@example')),
                rr('_smtp._tls.example', T.TXT, 300, strings('v=spf1 -all')),
                rr('_smtp._tls.example', T.TXT, 300, strings('v=spf1', ' -all')),
            ],
        })
        assert.deepEqual(x.txt, ['v=TLSRPTv1;rua=mailto:a@example,mailto:b@example', 'v=spf1 -all', 'v=spf1 -all'])
        const buf = message({ qname: 't.example', qtype: T.TXT, answers: [rr('t.example', T.TXT, 300, Buffer.from([9, 0x61, 0x62]))] })
        const c = classifyReply(buf, ID, 't.example', T.TXT)
        assert.equal(c.kind, 'reply')
        if (c.kind === 'reply') assert.throws(() => interpret('t.example', 'TXT', c.reply, c.buf), MalformedReply)
    })

    it('C2: MX and TLSA rdata: duplicates dropped, names lower-case without the dot, TLSA bytes in one buffer of their own', () => {
        const mxRdata = (pref: number, exchange: string): Buffer => Buffer.concat([u16(pref), name(exchange)])
        const mx = answer('mail.example', 'MX', {
            answers: [rr('mail.example', T.MX, 300, mxRdata(10, 'MX1.Other.NET')), rr('mail.example', T.MX, 300, mxRdata(10, 'mx1.other.net'))],
        })
        assert.deepEqual(mx.mx, [{ preference: 10, exchange: 'mx1.other.net' }])
        const rd = Buffer.concat([Buffer.from([3, 1, 1]), Buffer.alloc(32, 0xab)])
        const tlsa = answer('_25._tcp.mx.example', 'TLSA', {
            ad: true,
            answers: [rr('_25._tcp.mx.example', T.TLSA, 3600, rd), rr('_25._tcp.mx.example', T.TLSA, 3600, rd)],
        })
        assert.equal(tlsa.tlsa?.length, 1)
        assert.ok(tlsa.tlsa?.[0].equals(rd))
        assert.equal(tlsa.tlsa?.[0].buffer.byteLength, rd.length)
        assert.equal(tlsa.ttl, 3600)
    })
})
