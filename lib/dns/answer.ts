/**
 * Answer interpretation (C2, C3), pure: a matched, decoded reply → the Answer the policy reads.
 * RCODEs, the CNAME chain in the answer section, negative TTLs (RFC 2308), and the copies an
 * Answer is handed out and cached as. No sockets, no cache.
 */
import {
    CLASS_IN,
    MalformedReply,
    Packet,
    RCODE_NOERROR,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    TYPE_CODE,
    TYPE_SOA,
    decodeRdata,
    rfc2181Ttl,
    type DecodedReply,
    type WireRR,
} from './wire'

export type RRType = 'A' | 'AAAA' | 'MX' | 'CNAME' | 'TLSA' | 'TXT'

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
    /** TXT records, each one's character-strings joined without spaces (RFC 8460 3, RFC 7208 3.3) */
    txt?: string[]
    /** seconds; see Resolver.lookup */
    ttl: number
    /** RCODE of the reply (12-bit with EDNS); -1 when no usable reply arrived */
    rcode: number
    /** for 'failed': 'servfail' | 'refused' | 'rcode N' | 'timeout' | 'malformed reply' | 'connection refused' | 'cname loop' | ... */
    reason?: string
    fromCache?: boolean
}

// Bound on CNAME chain length we follow in one reply (loops detected separately).
const MAX_CNAME_CHAIN = 16

export function failedAnswer(name: string, type: RRType, reason: string, rcode = -1): Answer {
    // C1: secure is always false on failure; failure carries ttl 0 (never cached, C3).
    return { name, type, status: 'failed', secure: false, canonicalName: name, cnames: [], ttl: 0, rcode, reason }
}

/** RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM); no SOA → 0 (not cached). */
export function negativeTtl(buf: Buffer, authorities: WireRR[]): number {
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

/**
 * The Answer to `name`/`type` that a matched reply gives. Throws MalformedReply when a record it
 * uses cannot be decoded (the caller turns that into failed 'malformed reply').
 */
export function interpret(name: string, type: RRType, reply: DecodedReply, buf: Buffer): Answer {
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
            case 'TXT': {
                // RFC 1035 3.3.14: one or more <character-string>s, each a length byte and that many bytes. Every
                // record is kept, also two whose joined text is equal (RFC 8460 3 counts records)
                answer.txt = []
                for (const rr of rrs) {
                    const parts: string[] = []
                    for (let at = rr.rdataOffset, end = rr.rdataOffset + rr.rdlength; at < end;) {
                        const len = buf[at]
                        if (at + 1 + len > end) throw new MalformedReply('TXT character-string runs past its rdata')
                        parts.push(buf.toString('latin1', at + 1, at + 1 + len))
                        at += 1 + len
                    }
                    answer.txt.push(parts.join(''))
                }
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

/**
 * C30: an estimate of the memory one cached answer takes: the bytes of its records, the strings
 * (two bytes a character), and a fixed overhead for the objects around them.
 */
export function answerBytes(a: Answer): number {
    let n = 256 + 2 * (a.name.length + a.canonicalName.length)
    for (const c of a.cnames) n += 64 + 2 * c.length
    for (const x of a.addresses ?? []) n += 64 + 2 * x.length
    for (const m of a.mx ?? []) n += 96 + 2 * m.exchange.length
    for (const t of a.txt ?? []) n += 64 + 2 * t.length
    for (const t of a.tlsa ?? []) n += 128 + t.length // a Buffer view costs ~110 bytes of heap (measured: npm run bench -- cache)
    return n
}

/** A copy of `a` of its own for one caller (nothing shared with the cache or other callers). */
export function cloneAnswer(a: Answer, fromCache: boolean, ttl: number): Answer {
    const out: Answer = { ...a, cnames: [...a.cnames], ttl, fromCache }
    if (a.addresses) out.addresses = [...a.addresses]
    if (a.mx) out.mx = a.mx.map((m) => ({ ...m }))
    if (a.tlsa) out.tlsa = packed(a.tlsa)
    if (a.txt) out.txt = [...a.txt]
    return out
}

/** Copies of `parts` as views of one buffer of their own (one allocation, nothing shared with a pool). */
export function packed(parts: Buffer[]): Buffer[] {
    const store = Buffer.alloc(parts.reduce((n, b) => n + b.length, 0))
    let at = 0
    return parts.map((b) => {
        b.copy(store, at)
        at += b.length
        return store.subarray(at - b.length, at)
    })
}
