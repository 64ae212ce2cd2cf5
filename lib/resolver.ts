/**
 * Stub resolver for DANE (RFC 7672 §2.1): asks one local validating resolver
 * (unbound) and trusts nothing but its AD bit.
 *
 * dns2 provides the wire codec (header incl. AD, names with compression,
 * A/AAAA/MX/CNAME/SOA rdata, the OPT record with the DO bit).  This module adds
 * what dns2 lacks or gets wrong for our purpose:
 *   - strict RR framing: dns2's Packet.parse silently drops records it cannot
 *     decode, so a damaged reply would look like NODATA; here any framing or
 *     rdata error makes the whole reply 'malformed reply';
 *   - TLSA (type 52) rdata returned as raw bytes;
 *   - RFC 2181 §8 TTL handling (dns2 clamps a TTL with the top bit set to
 *     2^31-1; the RFC says such a TTL is zero);
 *   - our own UDP and TCP exchanges (fresh connected UDP socket per attempt,
 *     per-attempt random ID, reply matching, TC → TCP with 2-byte framing,
 *     bounded retries, fast failure on ICMP port unreachable), because dns2's
 *     clients neither set the DO bit nor let us verify the question or retry.
 *
 * Conformance items: C1 (transport, EDNS0/DO, AD, loopback only),
 * C2 (TC → TCP, reply matching, bounded retries), C3 (bounded TTL cache,
 * failures never cached, in-flight sharing).
 */
import { randomInt } from 'node:crypto'
import * as dgram from 'node:dgram'
import * as net from 'node:net'
import DNS from 'dns2'
import { LRUCache } from 'lru-cache'

export type RRType = 'A' | 'AAAA' | 'MX' | 'CNAME' | 'TLSA'

export interface MxRecord {
    preference: number
    /** lower-case, no trailing dot; '' for the null MX "." (RFC 7505) */
    exchange: string
}

export interface Answer {
    /** the question, lower-case, no trailing dot */
    name: string
    type: RRType
    status: 'ok' | 'nodata' | 'nxdomain' | 'failed'
    /** AD bit of the reply; always false when status is 'failed' */
    secure: boolean
    /** owner name after following the CNAME chain in the answer section */
    canonicalName: string
    /** [name, target1, target2, ...] when CNAMEs were followed, else [] */
    cnames: string[]
    addresses?: string[]
    mx?: MxRecord[]
    /** TLSA rdata as raw bytes */
    tlsa?: Buffer[]
    /** seconds; see {@link Resolver.lookup} */
    ttl: number
    /** RCODE of the reply (12-bit with EDNS); -1 when no usable reply arrived */
    rcode: number
    /** for 'failed': 'servfail' | 'refused' | 'rcode N' | 'timeout' | 'malformed reply' | 'connection refused' | 'cname loop' | ... */
    reason?: string
    fromCache?: boolean
}

export interface ResolverOptions {
    address: string
    port: number
    /** per attempt (one UDP exchange, or the TCP exchange after TC) */
    timeoutMs: number
    /** extra attempts after a timeout; total attempts = 1 + retries */
    retries: number
    /** max cache entries; 0 disables the cache */
    cacheSize: number
    /** C30: max bytes the cached answers take (estimated); default 32 MiB; an answer over 1/16 of it is not cached */
    cacheMaxBytes?: number
    /** the operator asserts a non-loopback resolver is reached over a trusted, secured path */
    trustNonLoopback?: boolean
}

export interface ResolverStats {
    /** lookup() calls */
    queries: number
    /** UDP queries sent on the wire */
    udp: number
    /** TCP queries sent on the wire */
    tcp: number
    /** attempts (UDP or TCP) that ended in a timeout */
    timeouts: number
    /** lookups answered from the cache */
    cacheHits: number
    /** lookups that joined an identical request already in flight */
    inflightShared: number
    /** datagrams/messages discarded because ID, question, class or sender did not match, or were undecodable */
    discarded: number
}

export class ResolverConfigError extends Error {
    constructor(message: string) {
        super(message)
        this.name = 'ResolverConfigError'
    }
}

// ---------------------------------------------------------------------------
// dns2 codec, typed for the parts we use (its .d.ts omits ad/cd, the EDNS
// options argument and the per-type rdata decoders).
// ---------------------------------------------------------------------------

interface WireReader {
    offset: number // in bits
    read(bits: number): number
}
interface WireHeader {
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
type Rdata = Record<string, unknown>
interface RdataCodec {
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
const Packet = DNS.Packet as unknown as Dns2Codec

// RFC 1035 §3.2.2, RFC 3596, RFC 6698 §7.1: type codes.
const TYPE_CODE: Record<RRType, number> = { A: 1, CNAME: 5, MX: 15, AAAA: 28, TLSA: 52 }
const TYPE_SOA = 6
const TYPE_OPT = 41
const CLASS_IN = 1

// RFC 1035 §4.1.1 RCODEs we name.
const RCODE_NOERROR = 0
const RCODE_SERVFAIL = 2
const RCODE_NXDOMAIN = 3
const RCODE_REFUSED = 5

// C1 / RFC 6891 §6.2.5 + DNS flag day 2020: advertise 1232 bytes of UDP payload.
const EDNS_UDP_PAYLOAD = 1232
// Bound on CNAME chain length we follow in one reply (loops detected separately).
const MAX_CNAME_CHAIN = 16
// C30: the answer cache's default bound in bytes.
const DEFAULT_CACHE_MAX_BYTES = 32 * 1024 * 1024
// C3: never keep an entry longer than this, even if its TTL is larger (unbound
// itself caps at one day; we refetch from the local resolver more often).
const MAX_CACHE_TTL_S = 3600

// C1: "loopback" is 127.0.0.0/8 or ::1 (IPv4-mapped 127/8 also stays on the host).
const LOOPBACK = new net.BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

/** C1: the one loopback test, shared with the configuration check. */
export function isLoopbackAddress(address: string): boolean {
    const family = net.isIP(address)
    if (family === 0) return false
    return LOOPBACK.check(address, family === 6 ? 'ipv6' : 'ipv4')
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/**
 * RFC 1035 §2.3.4: labels of 1..63 octets, at most 255 octets on the wire.
 * Accepts a trailing dot and any case; returns lower-case without the dot, or
 * null when the name cannot be sent (empty label, non-printable or non-ASCII
 * character, backslash escapes, too long).
 */
export function normalizeName(input: string): string | null {
    if (typeof input !== 'string') return null
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
function encodeQuery(id: number, qname: string, qtype: number): Buffer {
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

class MalformedReply extends Error {}

interface WireRR {
    name: string // lower-case
    type: number
    class: number
    rawTtl: number
    ttl: number // RFC 2181 §8 applied
    rdataOffset: number // bytes
    rdlength: number
}

interface DecodedReply {
    header: WireHeader
    rcode: number // 12-bit
    answers: WireRR[]
    authorities: WireRR[]
}

/** RFC 2181 §8: a TTL with the most significant bit set is treated as zero. */
function rfc2181Ttl(raw: number): number {
    return raw > 0x7fffffff ? 0 : raw
}

function needBytes(buf: Buffer, offsetBytes: number, count: number): void {
    if (offsetBytes + count > buf.length) throw new MalformedReply('message ends inside a record')
}

/** Reads one RR's framing (RFC 1035 §4.1.3) and skips its rdata, bounds-checked. */
function readRR(buf: Buffer, reader: WireReader): WireRR {
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
function decodeRdata(buf: Buffer, rr: WireRR, codec: RdataCodec): Rdata {
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
function sameLabels(buf: Buffer, qname: string): boolean {
    const want = qname.split('.')
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
function matchHead(buf: Buffer, id: number, qname: string, qtype: number): HeadResult {
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
function decodeBody(buf: Buffer, header: WireHeader, reader: WireReader): DecodedReply {
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

type Classified =
    { kind: 'unmatchable' } | { kind: 'mismatch' } | { kind: 'malformed' } | { kind: 'truncated' } | { kind: 'reply'; reply: DecodedReply; buf: Buffer }

function classifyReply(buf: Buffer, id: number, qname: string, qtype: number): Classified {
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

// ---------------------------------------------------------------------------
// Reply → Answer
// ---------------------------------------------------------------------------

function failedAnswer(name: string, type: RRType, reason: string, rcode = -1): Answer {
    // C1: secure is always false on failure; failure carries ttl 0 (never cached, C3).
    return { name, type, status: 'failed', secure: false, canonicalName: name, cnames: [], ttl: 0, rcode, reason }
}

/** RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM); no SOA → 0 (not cached). */
function negativeTtl(buf: Buffer, authorities: WireRR[]): number {
    let ttl: number | undefined
    for (const rr of authorities) {
        if (rr.type !== TYPE_SOA || rr.class !== CLASS_IN) continue
        const soa = decodeRdata(buf, rr, Packet.Resource.SOA)
        const minimum = rfc2181Ttl(Number(soa.minimum))
        const t = Math.min(rr.ttl, minimum)
        ttl = ttl === undefined ? t : Math.min(ttl, t)
    }
    return ttl ?? 0
}

function decodeName(value: unknown): string {
    const s = String(value ?? '').toLowerCase()
    return s.endsWith('.') ? s.slice(0, -1) : s
}

function interpret(name: string, type: RRType, reply: DecodedReply, buf: Buffer): Answer {
    const { rcode, header } = reply
    // C2: SERVFAIL is indeterminate (bogus or unreachable), never a negative answer.
    if (rcode === RCODE_SERVFAIL) return failedAnswer(name, type, 'servfail', rcode)
    // C2: REFUSED (resolver misconfigured / ACL) is a failure, as is any other error RCODE.
    if (rcode === RCODE_REFUSED) return failedAnswer(name, type, 'refused', rcode)
    // C2 / RFC 1035 §4.1.1, RFC 6891 §9: FORMERR, NOTIMP, BADVERS, ... → failed 'rcode N'.
    if (rcode !== RCODE_NOERROR && rcode !== RCODE_NXDOMAIN) return failedAnswer(name, type, `rcode ${rcode}`, rcode)

    // RFC 1034 §3.6.2 / RFC 2181 §10.1: follow the CNAME chain in the answer section
    // from the question name; an owner has at most one CNAME; chains are bounded.
    const cnameTargets = new Map<string, { target: string; ttl: number }>()
    for (const rr of reply.answers) {
        if (rr.type !== TYPE_CODE.CNAME || rr.class !== CLASS_IN) continue
        const target = decodeName(decodeRdata(buf, rr, Packet.Resource.CNAME).domain)
        const seen = cnameTargets.get(rr.name)
        if (seen && seen.target !== target) return failedAnswer(name, type, 'conflicting cname', rcode)
        cnameTargets.set(rr.name, { target, ttl: seen ? Math.min(seen.ttl, rr.ttl) : rr.ttl })
    }
    const chain: string[] = [name]
    let chainTtl = Infinity
    let canonical = name
    for (let step = cnameTargets.get(canonical); step; step = cnameTargets.get(canonical)) {
        // C2 hygiene: a chain that revisits a name is a loop, not an answer.
        if (chain.includes(step.target)) return failedAnswer(name, type, 'cname loop', rcode)
        if (chain.length > MAX_CNAME_CHAIN) return failedAnswer(name, type, 'cname chain too long', rcode)
        chain.push(step.target)
        chainTtl = Math.min(chainTtl, step.ttl)
        canonical = step.target
    }
    const cnames = chain.length > 1 ? chain : []
    const base = { name, type, secure: header.ad === 1, canonicalName: canonical, cnames, rcode }

    if (rcode === RCODE_NXDOMAIN) {
        // RFC 2308 §5 / C3: negative answers are cached for min(SOA TTL, SOA MINIMUM).
        return { ...base, status: 'nxdomain', ttl: Math.min(chainTtl, negativeTtl(buf, reply.authorities)) }
    }

    // Only RRs of the asked type owned by the canonical name count (RFC 1034 §4.3.2 step 3a).
    const rrs = reply.answers.filter((rr) => rr.type === TYPE_CODE[type] && rr.class === CLASS_IN && rr.name === canonical)
    const dataTtl = rrs.reduce((min, rr) => Math.min(min, rr.ttl), chainTtl)

    // A CNAME question is answered by the chain itself (canonicalName = its end).
    if (type === 'CNAME') {
        if (cnames.length > 0) return { ...base, status: 'ok', ttl: chainTtl }
    } else if (rrs.length > 0) {
        const answer: Answer = { ...base, status: 'ok', ttl: dataTtl }
        switch (type) {
            case 'A':
            case 'AAAA': {
                const wantLen = type === 'A' ? 4 : 16
                const codec = type === 'A' ? Packet.Resource.A : Packet.Resource.AAAA
                const set = new Set<string>()
                for (const rr of rrs) {
                    // RFC 1035 §3.4.1 / RFC 3596 §2.2: fixed-size address rdata.
                    if (rr.rdlength !== wantLen) throw new MalformedReply(`${type} rdata of ${rr.rdlength} bytes`)
                    set.add(String(decodeRdata(buf, rr, codec).address))
                }
                answer.addresses = [...set]
                break
            }
            case 'MX': {
                const seen = new Set<string>()
                answer.mx = []
                for (const rr of rrs) {
                    const mx = decodeRdata(buf, rr, Packet.Resource.MX)
                    const rec: MxRecord = { preference: Number(mx.priority), exchange: decodeName(mx.exchange) }
                    const key = `${rec.preference} ${rec.exchange}`
                    if (!seen.has(key)) {
                        seen.add(key)
                        answer.mx.push(rec)
                    }
                }
                break
            }
            case 'TLSA': {
                // RFC 6698 §2.1: rdata handed over as raw bytes, copied off the datagram into one buffer of
                // their own (C30: a cached answer holds exactly its records, not pieces of shared pool slabs)
                const seen = new Set<string>()
                const kept: WireRR[] = []
                for (const rr of rrs) {
                    const key = buf.subarray(rr.rdataOffset, rr.rdataOffset + rr.rdlength).toString('hex')
                    if (!seen.has(key)) {
                        seen.add(key)
                        kept.push(rr)
                    }
                }
                answer.tlsa = packed(kept.map((rr) => buf.subarray(rr.rdataOffset, rr.rdataOffset + rr.rdlength)))
                break
            }
        }
        return answer
    }
    // Records of the asked type owned by a name the CNAME chain does not reach: a broken chain,
    // not a (possibly secure) denial. Fail closed rather than call it NODATA (C10 would then apply).
    if (reply.answers.some((rr) => rr.type === TYPE_CODE[type] && rr.class === CLASS_IN)) {
        return failedAnswer(name, type, 'malformed reply', rcode)
    }
    // C3 / RFC 2308 §2.2: NOERROR without the asked type at the canonical name is NODATA.
    return { ...base, status: 'nodata', ttl: Math.min(chainTtl, negativeTtl(buf, reply.authorities)) }
}

// ---------------------------------------------------------------------------
// Resolver
// ---------------------------------------------------------------------------

type Exchange =
    | { kind: 'reply'; reply: DecodedReply; buf: Buffer }
    | { kind: 'truncated' }
    | { kind: 'timeout'; sawMalformed: boolean }
    | { kind: 'failed'; reason: string }

function networkReason(err: NodeJS.ErrnoException, transport: 'udp' | 'tcp'): string {
    if (err.code === 'ECONNREFUSED') return transport === 'udp' ? 'connection refused' : 'connection refused (tcp)'
    return `network error (${transport}): ${err.code ?? err.message}`
}

/**
 * C30: an estimate of the memory one cached answer takes: the bytes of its records, the strings
 * (two bytes a character), and a fixed overhead for the objects around them.
 */
export function answerBytes(a: Answer): number {
    let n = 256 + 2 * (a.name.length + a.canonicalName.length)
    for (const c of a.cnames) n += 64 + 2 * c.length
    for (const x of a.addresses ?? []) n += 64 + 2 * x.length
    for (const m of a.mx ?? []) n += 96 + 2 * m.exchange.length
    for (const t of a.tlsa ?? []) n += 128 + t.length // a Buffer view costs ~110 bytes of heap (measured: npm run bench -- cache)
    return n
}

function cloneAnswer(a: Answer, fromCache: boolean, ttl: number): Answer {
    const out: Answer = { ...a, cnames: [...a.cnames], ttl, fromCache }
    if (a.addresses) out.addresses = [...a.addresses]
    if (a.mx) out.mx = a.mx.map((m) => ({ ...m }))
    if (a.tlsa) out.tlsa = packed(a.tlsa)
    return out
}

/** Copies of `parts` as views of one buffer of their own (one allocation, nothing shared with a pool). */
function packed(parts: Buffer[]): Buffer[] {
    const store = Buffer.alloc(parts.reduce((n, b) => n + b.length, 0))
    let at = 0
    return parts.map((b) => {
        b.copy(store, at)
        at += b.length
        return store.subarray(at - b.length, at)
    })
}

export class Resolver {
    private readonly address: string
    private readonly port: number
    private readonly family: 4 | 6
    private readonly timeoutMs: number
    private readonly retries: number
    private readonly cache: LRUCache<string, Answer> | undefined
    private readonly inflight = new Map<string, Promise<Answer>>()
    private readonly active = new Set<() => void>()
    private readonly server = new net.BlockList()
    private closed = false
    private readonly counters: ResolverStats = {
        queries: 0,
        udp: 0,
        tcp: 0,
        timeouts: 0,
        cacheHits: 0,
        inflightShared: 0,
        discarded: 0,
    }

    constructor(opts: ResolverOptions) {
        const family = net.isIP(String(opts?.address ?? ''))
        // C23: a bad resolver address is a start-up configuration error.
        if (family === 0) throw new ResolverConfigError(`resolver address "${opts?.address}" is not an IP address`)
        if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
            throw new ResolverConfigError(`resolver port "${opts.port}" is not in 1..65535`)
        }
        if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) {
            throw new ResolverConfigError(`resolver timeoutMs "${opts.timeoutMs}" must be a positive number`)
        }
        if (!Number.isInteger(opts.retries) || opts.retries < 0) {
            throw new ResolverConfigError(`resolver retries "${opts.retries}" must be a non-negative integer`)
        }
        if (!Number.isInteger(opts.cacheSize) || opts.cacheSize < 0) {
            throw new ResolverConfigError(`resolver cacheSize "${opts.cacheSize}" must be a non-negative integer`)
        }
        const maxBytes = opts.cacheMaxBytes ?? DEFAULT_CACHE_MAX_BYTES
        if (!Number.isInteger(maxBytes) || maxBytes < 1024) {
            throw new ResolverConfigError(`resolver cacheMaxBytes "${opts.cacheMaxBytes}" must be a whole number of at least 1024`)
        }
        const famName = family === 6 ? 'ipv6' : 'ipv4'
        // C1 / RFC 7672 §2.1.1, RFC 4035 §4.9.3: the AD bit is only as trustworthy as the
        // path to the resolver; refuse a non-loopback resolver unless the operator vouches for it.
        if (!LOOPBACK.check(opts.address, famName) && opts.trustNonLoopback !== true) {
            throw new ResolverConfigError(
                `resolver ${opts.address} is not loopback (127.0.0.0/8 or ::1); its AD bit cannot be trusted ` +
                    `unless the path is secured and trustNonLoopback is set`,
            )
        }
        this.address = opts.address
        this.port = opts.port
        this.family = family === 6 ? 6 : 4
        this.server.addAddress(opts.address, famName)
        this.timeoutMs = opts.timeoutMs
        this.retries = opts.retries
        // C3, C30: bounded in entries and in bytes; an answer over 1/16 of the bytes is not cached at all.
        // Per-entry TTLs are given at set().
        this.cache =
            opts.cacheSize > 0
                ? new LRUCache<string, Answer>({
                      max: opts.cacheSize,
                      maxSize: maxBytes,
                      maxEntrySize: Math.floor(maxBytes / 16),
                      sizeCalculation: answerBytes,
                  })
                : undefined
    }

    /**
     * Resolves name/type. Never rejects: every error is status 'failed'.
     * ttl: min TTL of the RRs used (CNAME chain + answer RRset); for NODATA and
     * NXDOMAIN min(SOA TTL, SOA MINIMUM) (and the chain's TTLs); 0 for failures.
     * A cached answer reports the seconds it has left.
     */
    lookup(name: string, type: RRType): Promise<Answer> {
        this.counters.queries++
        const qname = normalizeName(name)
        const shownName = typeof name === 'string' ? name.toLowerCase().replace(/\.$/, '') : String(name)
        if (!(type in TYPE_CODE)) return Promise.resolve(failedAnswer(shownName, type, `unsupported type ${type}`))
        if (qname === null) return Promise.resolve(failedAnswer(shownName, type, 'invalid name'))
        if (this.closed) return Promise.resolve(failedAnswer(qname, type, 'resolver closed'))

        // C3: cache key is the lower-case name plus the type.
        const key = `${qname}/${type}`
        const cached = this.cache?.get(key)
        if (cached) {
            this.counters.cacheHits++
            const left = Math.max(0, Math.ceil((this.cache?.getRemainingTTL(key) ?? 0) / 1000))
            return Promise.resolve(cloneAnswer(cached, true, Math.min(cached.ttl, left)))
        }
        // C3: concurrent identical lookups share one request in flight.
        const pending = this.inflight.get(key)
        if (pending) {
            this.counters.inflightShared++
            return pending.then((a) => cloneAnswer(a, false, a.ttl))
        }
        const request = this.resolveOnWire(qname, type)
            .catch((e: unknown) => failedAnswer(qname, type, `internal error: ${(e as Error)?.message ?? e}`))
            .then((answer) => {
                this.inflight.delete(key)
                // C3: failures are never cached; ttl 0 is not cached; entries live at most their TTL.
                if (this.cache && !this.closed && answer.status !== 'failed' && answer.ttl > 0) {
                    this.cache.set(key, answer, { ttl: Math.min(answer.ttl, MAX_CACHE_TTL_S) * 1000 })
                }
                return answer
            })
        this.inflight.set(key, request)
        return request.then((a) => cloneAnswer(a, false, a.ttl))
    }

    stats(): ResolverStats {
        return { ...this.counters }
    }

    /** C30: what the cache holds now: entries and their estimated bytes. */
    cacheUsage(): { entries: number; bytes: number } {
        return { entries: this.cache?.size ?? 0, bytes: this.cache?.calculatedSize ?? 0 }
    }

    /** Closes every socket in use; pending lookups resolve as failed 'resolver closed'. */
    close(): void {
        this.closed = true
        for (const abort of [...this.active]) abort()
        this.cache?.clear()
    }

    // C2: UDP first; TC → same question over TCP; timeouts retried `retries` times.
    private async resolveOnWire(qname: string, type: RRType): Promise<Answer> {
        const qtype = TYPE_CODE[type]
        let sawMalformed = false
        for (let attempt = 0; attempt <= this.retries; attempt++) {
            if (this.closed) return failedAnswer(qname, type, 'resolver closed')
            let result = await this.udpExchange(qname, qtype)
            // C2 / RFC 7766 §5: a truncated UDP reply is retried over TCP.
            if (result.kind === 'truncated') result = await this.tcpExchange(qname, qtype)
            switch (result.kind) {
                case 'reply':
                    try {
                        return interpret(qname, type, result.reply, result.buf)
                    } catch (e) {
                        if (e instanceof MalformedReply) return failedAnswer(qname, type, 'malformed reply', result.reply.rcode)
                        throw e
                    }
                case 'timeout':
                    this.counters.timeouts++
                    sawMalformed ||= result.sawMalformed
                    continue
                case 'truncated':
                    return failedAnswer(qname, type, 'truncated reply over tcp')
                case 'failed':
                    return failedAnswer(qname, type, result.reason)
            }
        }
        // C2: timeouts count as indeterminate after bounded retries. When only
        // undecodable datagrams arrived, say so rather than 'timeout'.
        return failedAnswer(qname, type, sawMalformed ? 'malformed reply' : 'timeout')
    }

    private isServer(address: string): boolean {
        return this.server.check(address, this.family === 6 ? 'ipv6' : 'ipv4')
    }

    /**
     * One UDP attempt on a fresh connected socket (random source port, C2 / RFC 5452 §9.2)
     * with a fresh random 16-bit ID (crypto.randomInt, RFC 5452 §4.3). Replies that do not
     * match are discarded and we keep waiting. A decodable-but-matching reply whose body is
     * malformed ends the attempt at once ('malformed reply'); an undecodable datagram cannot
     * be attributed to us, so it is discarded and the wait goes on.
     */
    private udpExchange(qname: string, qtype: number): Promise<Exchange> {
        return new Promise<Exchange>((resolve) => {
            const id = randomInt(0x10000)
            const query = encodeQuery(id, qname, qtype)
            const sock = dgram.createSocket(this.family === 6 ? 'udp6' : 'udp4')
            let done = false
            let sawMalformed = false
            const finish = (r: Exchange): void => {
                if (done) return
                done = true
                clearTimeout(timer)
                this.active.delete(abort)
                try {
                    sock.close()
                } catch {
                    /* already closed */
                }
                resolve(r)
            }
            const abort = (): void => finish({ kind: 'failed', reason: 'resolver closed' })
            this.active.add(abort)
            const timer = setTimeout(() => finish({ kind: 'timeout', sawMalformed }), this.timeoutMs)
            // C2: ICMP port unreachable surfaces as ECONNREFUSED on a connected socket: fail fast.
            sock.on('error', (err: NodeJS.ErrnoException) => finish({ kind: 'failed', reason: networkReason(err, 'udp') }))
            sock.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
                if (done) return
                // C2: only the configured resolver may answer (the connected socket filters too).
                if (rinfo.port !== this.port || !this.isServer(rinfo.address)) {
                    this.counters.discarded++
                    return
                }
                const c = classifyReply(msg, id, qname, qtype)
                switch (c.kind) {
                    case 'unmatchable':
                        sawMalformed = true
                        this.counters.discarded++
                        return
                    case 'mismatch':
                        // C2: wrong ID, question or class: discard and keep waiting.
                        this.counters.discarded++
                        return
                    case 'malformed':
                        finish({ kind: 'failed', reason: 'malformed reply' })
                        return
                    case 'truncated':
                        finish({ kind: 'truncated' })
                        return
                    case 'reply':
                        finish({ kind: 'reply', reply: c.reply, buf: c.buf })
                        return
                }
            })
            // A connected socket only accepts datagrams from the resolver and reports ICMP errors.
            // (No callback on connect(): with one, node hands a connect error to it instead of 'error'.)
            sock.once('connect', () => {
                if (done) return
                this.counters.udp++
                try {
                    sock.send(query, (err) => {
                        if (err) finish({ kind: 'failed', reason: networkReason(err, 'udp') })
                    })
                } catch (err) {
                    finish({ kind: 'failed', reason: networkReason(err as NodeJS.ErrnoException, 'udp') })
                }
            })
            sock.connect(this.port, this.address)
        })
    }

    /** One TCP attempt (RFC 1035 §4.2.2 / RFC 7766 §8: 2-byte length prefix), same matching rules. */
    private tcpExchange(qname: string, qtype: number): Promise<Exchange> {
        return new Promise<Exchange>((resolve) => {
            const id = randomInt(0x10000)
            const query = encodeQuery(id, qname, qtype)
            const frame = Buffer.alloc(2 + query.length)
            frame.writeUInt16BE(query.length, 0)
            query.copy(frame, 2)
            let done = false
            let sawMalformed = false
            let pending: Buffer = Buffer.alloc(0)
            const sock = net.connect({ host: this.address, port: this.port })
            const finish = (r: Exchange): void => {
                if (done) return
                done = true
                clearTimeout(timer)
                this.active.delete(abort)
                sock.destroy()
                resolve(r)
            }
            const abort = (): void => finish({ kind: 'failed', reason: 'resolver closed' })
            this.active.add(abort)
            const timer = setTimeout(() => finish({ kind: 'timeout', sawMalformed }), this.timeoutMs)
            sock.setNoDelay(true)
            sock.on('connect', () => {
                this.counters.tcp++
                sock.write(frame)
            })
            sock.on('error', (err: NodeJS.ErrnoException) => finish({ kind: 'failed', reason: networkReason(err, 'tcp') }))
            sock.on('close', () => finish({ kind: 'failed', reason: 'tcp connection closed before a reply' }))
            sock.on('data', (chunk: Buffer) => {
                pending = pending.length ? Buffer.concat([pending, chunk]) : chunk
                while (!done && pending.length >= 2) {
                    const len = pending.readUInt16BE(0)
                    if (pending.length < 2 + len) break
                    const msg = pending.subarray(2, 2 + len)
                    pending = pending.subarray(2 + len)
                    const c = classifyReply(msg, id, qname, qtype)
                    switch (c.kind) {
                        case 'unmatchable':
                            sawMalformed = true
                            this.counters.discarded++
                            break
                        case 'mismatch':
                            this.counters.discarded++
                            break
                        case 'malformed':
                            finish({ kind: 'failed', reason: 'malformed reply' })
                            break
                        case 'truncated':
                            // RFC 7766 §8: TC has no meaning over TCP; a truncated TCP reply is unusable.
                            finish({ kind: 'truncated' })
                            break
                        case 'reply':
                            finish({ kind: 'reply', reply: c.reply, buf: c.buf })
                            break
                    }
                }
            })
        })
    }
}
