/**
 * The wire codec (C1, C2): dns2 encodes the query and decodes names and rdata; this module adds
 * what dns2 lacks or gets wrong for our purpose:
 *   - strict RR framing: dns2's Packet.parse silently drops records it cannot decode, so a
 *     damaged reply would look like NODATA; here any framing or rdata error makes the whole
 *     reply 'malformed reply' (MalformedReply);
 *   - RFC 2181 §8 TTL handling (dns2 clamps a TTL with the top bit set to 2^31-1; the RFC says
 *     such a TTL is zero);
 *   - reply matching (ID, question name label by label, type, class, QR, opcode).
 * No sockets here (./transport.ts) and no meaning (./answer.ts).
 */
import DNS from 'dns2'
import type { RRType } from './answer'

// ---------------------------------------------------------------------------
// dns2 codec, typed for the parts we use (its .d.ts omits ad/cd, the EDNS
// options argument and the per-type rdata decoders).
// ---------------------------------------------------------------------------

export interface WireReader {
    offset: number // in bits
    read(bits: number): number
}
export interface WireHeader {
    id: number
    qr: number
    opcode: number
    aa: number
    tc: number
    rd: number
    ra: number
    z: number
    ad: number
    cd: number
    rcode: number
    qdcount: number
    ancount: number
    nscount: number
    arcount: number
}
interface WireQuestion {
    name: string
    type: number
    class: number
}
export type Rdata = Record<string, unknown>
export interface RdataCodec {
    decode(this: Rdata, reader: WireReader, length: number): Rdata
}
interface Dns2Packet {
    header: Record<string, number>
    questions: WireQuestion[]
    additionals: unknown[]
    toBuffer(): Buffer
}
interface Dns2Codec {
    new (): Dns2Packet
    Reader: new (buffer: Buffer, offset?: number) => WireReader
    Header: { parse(reader: WireReader): WireHeader }
    Question: { decode(reader: WireReader): WireQuestion }
    Name: { decode(reader: WireReader): string }
    Resource: {
        A: RdataCodec
        AAAA: RdataCodec
        MX: RdataCodec
        CNAME: RdataCodec
        SOA: RdataCodec
        EDNS(rdata: unknown[], opts: { udpPayloadSize?: number; doFlag?: boolean }): unknown
    }
}
export const Packet = DNS.Packet as unknown as Dns2Codec

// RFC 1035 §3.2.2, RFC 3596, RFC 6698 §7.1: type codes.
export const TYPE_CODE: Record<RRType, number> = { A: 1, CNAME: 5, MX: 15, TXT: 16, AAAA: 28, TLSA: 52 }
export const TYPE_SOA = 6
export const TYPE_OPT = 41
export const CLASS_IN = 1

// RFC 1035 §4.1.1 RCODEs we name.
export const RCODE_NOERROR = 0
export const RCODE_SERVFAIL = 2
export const RCODE_NXDOMAIN = 3
export const RCODE_REFUSED = 5

// C1 / RFC 6891 §6.2.5 + DNS flag day 2020: advertise 1232 bytes of UDP payload.
export const EDNS_UDP_PAYLOAD = 1232

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/**
 * RFC 1035 §2.3.4: labels of 1..63 octets, at most 255 octets on the wire.
 * Accepts a trailing dot and any case; returns lower-case without the dot ("." alone, the root, is ""), or
 * null when the name cannot be sent (empty name or label, non-printable or non-ASCII
 * character, backslash escapes, too long).
 */
export function normalizeName(input: string): string | null {
    if (typeof input !== 'string') return null
    // the root, asked by the command's resolver self-test: "" on the wire (one zero octet)
    if (input === '.') return ''
    let name = input.endsWith('.') ? input.slice(0, -1) : input
    if (name.length === 0) return null
    if (!/^[\x21-\x7e]+$/.test(name) || name.includes('\\')) return null
    name = name.toLowerCase()
    const labels = name.split('.')
    let wire = 1
    for (const label of labels) {
        if (label.length === 0 || label.length > 63) return null
        wire += label.length + 1
    }
    return wire <= 255 ? name : null
}

// ---------------------------------------------------------------------------
// Query encoding
// ---------------------------------------------------------------------------

/** C1: RD=1, one question, class IN, OPT with payload 1232 and DO=1 (RFC 3225 §3). */
export function encodeQuery(id: number, qname: string, qtype: number): Buffer {
    const packet = new Packet()
    packet.header.id = id
    // C1: recursion desired: the validating resolver does the work.
    packet.header.rd = 1
    packet.questions.push({ name: qname, type: qtype, class: CLASS_IN })
    // C1 / RFC 6891 §6.1.2, RFC 3225 §3: EDNS0 OPT, payload 1232, DO bit set.
    packet.additionals.push(Packet.Resource.EDNS([], { udpPayloadSize: EDNS_UDP_PAYLOAD, doFlag: true }))
    return packet.toBuffer()
}

// ---------------------------------------------------------------------------
// Reply decoding (strict)
// ---------------------------------------------------------------------------

export class MalformedReply extends Error {}

export interface WireRR {
    name: string // lower-case
    type: number
    class: number
    rawTtl: number
    ttl: number // RFC 2181 §8 applied
    rdataOffset: number // bytes
    rdlength: number
}

export interface DecodedReply {
    header: WireHeader
    rcode: number // 12-bit
    answers: WireRR[]
    authorities: WireRR[]
}

/** RFC 2181 §8: a TTL with the most significant bit set is treated as zero. */
export function rfc2181Ttl(raw: number): number {
    return raw > 0x7fffffff ? 0 : raw
}

function needBytes(buf: Buffer, offsetBytes: number, count: number): void {
    if (offsetBytes + count > buf.length) throw new MalformedReply('message ends inside a record')
}

/** Reads one RR's framing (RFC 1035 §4.1.3) and skips its rdata, bounds-checked. */
export function readRR(buf: Buffer, reader: WireReader): WireRR {
    const name = Packet.Name.decode(reader).toLowerCase()
    const at = reader.offset / 8
    needBytes(buf, at, 10)
    const type = reader.read(16)
    const klass = reader.read(16)
    const rawTtl = reader.read(32)
    const rdlength = reader.read(16)
    const rdataOffset = at + 10
    needBytes(buf, rdataOffset, rdlength)
    reader.offset = (rdataOffset + rdlength) * 8
    return { name, type, class: klass, rawTtl, ttl: rfc2181Ttl(rawTtl), rdataOffset, rdlength }
}

/** Decodes one rdata with a dns2 decoder and checks it consumed exactly rdlength bytes. */
export function decodeRdata(buf: Buffer, rr: WireRR, codec: RdataCodec): Rdata {
    const reader = new Packet.Reader(buf, rr.rdataOffset * 8)
    let out: Rdata
    try {
        out = codec.decode.call({}, reader, rr.rdlength)
    } catch (e) {
        throw new MalformedReply(`bad rdata for type ${rr.type}: ${(e as Error).message}`)
    }
    if (reader.offset !== (rr.rdataOffset + rr.rdlength) * 8) {
        throw new MalformedReply(`rdata length mismatch for type ${rr.type}`)
    }
    return out
}

/**
 * C2 / RFC 1035 4.1.4: the question name (at byte 12) read label by label, compression pointers
 * followed (bounded), compared with `qname` label by label, ASCII case-insensitively. A reply whose
 * question is one label containing dots ("a.b" as a single label) is not our question: compared as
 * dotted text, it would be.
 */
export function sameLabels(buf: Buffer, qname: string): boolean {
    const want = qname === '' ? [] : qname.split('.')
    const got: string[] = []
    let at = 12
    for (let hops = 0; hops < 64; hops++) {
        if (at >= buf.length) return false
        const len = buf[at]
        if (len === 0) return got.length === want.length && got.every((l, i) => l === want[i])
        if ((len & 0xc0) === 0xc0) {
            if (at + 1 >= buf.length) return false
            at = ((len & 0x3f) << 8) | buf[at + 1]
            continue
        }
        if (len > 63 || at + 1 + len > buf.length) return false
        got.push(buf.toString('latin1', at + 1, at + 1 + len).replace(/[A-Z]/g, (c) => c.toLowerCase()))
        if (got.length > want.length) return false
        at += 1 + len
    }
    return false
}

type HeadResult = { kind: 'unmatchable' } | { kind: 'mismatch' } | { kind: 'match'; header: WireHeader; reader: WireReader }

// C2 / RFC 5452 §9.1: a reply is ours only if ID, question name (case-insensitive),
// type and class all match; QR must be set and the opcode QUERY.
export function matchHead(buf: Buffer, id: number, qname: string, qtype: number): HeadResult {
    let header: WireHeader
    let question: WireQuestion
    const reader = new Packet.Reader(buf)
    try {
        if (buf.length < 12) return { kind: 'unmatchable' }
        header = Packet.Header.parse(reader)
        // RFC 1035 §4.1.2 / RFC 5452 §9.1: the reply must echo exactly our one question.
        if (header.qdcount !== 1) return { kind: 'mismatch' }
        question = Packet.Question.decode(reader)
    } catch {
        return { kind: 'unmatchable' }
    }
    if (header.id !== id || header.qr !== 1 || header.opcode !== 0 || !sameLabels(buf, qname) || question.type !== qtype || question.class !== CLASS_IN) {
        return { kind: 'mismatch' }
    }
    return { kind: 'match', header, reader }
}

/** Decodes the three RR sections of a matched reply; throws MalformedReply. */
export function decodeBody(buf: Buffer, header: WireHeader, reader: WireReader): DecodedReply {
    const answers: WireRR[] = []
    const authorities: WireRR[] = []
    let opt: WireRR | undefined
    try {
        for (let i = 0; i < header.ancount; i++) answers.push(readRR(buf, reader))
        for (let i = 0; i < header.nscount; i++) authorities.push(readRR(buf, reader))
        for (let i = 0; i < header.arcount; i++) {
            const rr = readRR(buf, reader)
            if (rr.type === TYPE_OPT) {
                // RFC 6891 §6.1.1: at most one OPT, owned by the root.
                if (opt || rr.name !== '') throw new MalformedReply('bad OPT record')
                opt = rr
            }
        }
    } catch (e) {
        if (e instanceof MalformedReply) throw e
        throw new MalformedReply((e as Error).message)
    }
    // RFC 6891 §6.1.3: the OPT TTL's top byte extends the RCODE to 12 bits.
    const rcode = opt ? (((opt.rawTtl >>> 24) & 0xff) << 4) | header.rcode : header.rcode
    return { header, rcode, answers, authorities }
}

export type Classified =
    { kind: 'unmatchable' } | { kind: 'mismatch' } | { kind: 'malformed' } | { kind: 'truncated' } | { kind: 'reply'; reply: DecodedReply; buf: Buffer }

export function classifyReply(buf: Buffer, id: number, qname: string, qtype: number): Classified {
    const head = matchHead(buf, id, qname, qtype)
    if (head.kind !== 'match') return head
    // C2: a truncated reply may end anywhere; it is retried over TCP without decoding its sections
    if (head.header.tc === 1) return { kind: 'truncated' }
    try {
        return { kind: 'reply', reply: decodeBody(buf, head.header, head.reader), buf }
    } catch {
        return { kind: 'malformed' }
    }
}
