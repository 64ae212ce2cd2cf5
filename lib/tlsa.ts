/**
 * TLSA records (RFC 6698 2.1): parsing from wire rdata and from presentation
 * text, and the RFC 7672 / RFC 7671 rules that decide which records are used.
 * No I/O. Nothing here throws on bad input: a record that cannot be parsed
 * comes back with `malformed` set, and is unusable.
 */

export interface TlsaRecord {
    usage: number
    selector: number
    mtype: number
    /** certificate association data, decoded once */
    data: Buffer
    /** presentation form "3 1 1 abcd…" (lower-case hex), for logs */
    text: string
    /** set when the rdata/text could not be parsed (usage/selector/mtype are then -1) */
    malformed?: string
}

export const USAGE = { PKIX_TA: 0, PKIX_EE: 1, DANE_TA: 2, DANE_EE: 3 } as const
export const SELECTOR = { CERT: 0, SPKI: 1 } as const
export const MTYPE = { FULL: 0, SHA2_256: 1, SHA2_512: 2 } as const

/** RFC 6698 2.1.3: digest length by matching type */
const DIGEST_LENGTH: Record<number, number> = { 1: 32, 2: 64 }

function malformedRecord(text: string, why: string): TlsaRecord {
    return { usage: -1, selector: -1, mtype: -1, data: Buffer.alloc(0), text, malformed: why }
}

function presentation(usage: number, selector: number, mtype: number, data: Buffer): string {
    return `${usage} ${selector} ${mtype} ${data.toString('hex')}`.trimEnd()
}

// RFC 6698 2.1: rdata = usage(1) selector(1) matching type(1) association data(rest)
export function tlsaFromRdata(rdata: Buffer): TlsaRecord {
    const raw: unknown = rdata
    if (!(raw instanceof Uint8Array)) return malformedRecord(String(raw), 'rdata is not a byte buffer')
    const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)
    if (b.length < 3) {
        return malformedRecord(`\\# ${b.length} ${b.toString('hex')}`.trimEnd(), `rdata too short (${b.length} bytes, need at least 3)`)
    }
    const data = Buffer.from(b.subarray(3)) // own copy: the caller's packet buffer may be reused
    return { usage: b[0], selector: b[1], mtype: b[2], data, text: presentation(b[0], b[1], b[2], data) }
}

// RFC 7218 mnemonics, accepted in text alongside the numbers
const USAGE_NAMES: Record<string, number> = { 'pkix-ta': 0, 'pkix-ee': 1, 'dane-ta': 2, 'dane-ee': 3, privcert: 255 }
const SELECTOR_NAMES: Record<string, number> = { cert: 0, spki: 1, privsel: 255 }
const MTYPE_NAMES: Record<string, number> = { full: 0, 'sha2-256': 1, 'sha2-512': 2, privmatch: 255 }

function octetField(token: string, names: Record<string, number>): number | null {
    if (/^\d{1,3}$/.test(token)) {
        const n = Number(token)
        return n <= 255 ? n : null
    }
    const v = names[token.toLowerCase()]
    return v === undefined ? null : v
}

// RFC 6698 2.2: "usage selector mtype hex", hex may be split by white space, either case;
// also RFC 3597 generic form "\# len hex" and zone-file parentheses
export function tlsaFromText(text: string): TlsaRecord {
    if (typeof text !== 'string') return malformedRecord(String(text), 'text is not a string')
    const trimmed = text.trim()
    const tokens = trimmed.split(/\s+/).filter((t) => t !== '' && t !== '(' && t !== ')')
    if (tokens[0] === '\\#') {
        const len = tokens[1]
        const hex = tokens.slice(2).join('')
        if (len === undefined || !/^\d+$/.test(len)) return malformedRecord(trimmed, 'generic rdata without a length')
        if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) return malformedRecord(trimmed, 'generic rdata is not hex')
        if (hex.length / 2 !== Number(len)) return malformedRecord(trimmed, `generic rdata length ${len} does not match ${hex.length / 2} bytes`)
        const r = tlsaFromRdata(Buffer.from(hex, 'hex'))
        return r.malformed ? { ...r, text: trimmed } : r
    }
    if (tokens.length < 3) return malformedRecord(trimmed, 'need usage, selector and matching type')
    const usage = octetField(tokens[0], USAGE_NAMES)
    const selector = octetField(tokens[1], SELECTOR_NAMES)
    const mtype = octetField(tokens[2], MTYPE_NAMES)
    if (usage === null) return malformedRecord(trimmed, `bad usage "${tokens[0]}"`)
    if (selector === null) return malformedRecord(trimmed, `bad selector "${tokens[1]}"`)
    if (mtype === null) return malformedRecord(trimmed, `bad matching type "${tokens[2]}"`)
    const hex = tokens.slice(3).join('')
    if (!/^[0-9a-fA-F]*$/.test(hex)) return malformedRecord(trimmed, 'association data is not hex')
    if (hex.length % 2) return malformedRecord(trimmed, 'association data has an odd number of hex digits')
    const data = Buffer.from(hex, 'hex')
    return { usage, selector, mtype, data, text: presentation(usage, selector, mtype, data) }
}

// RFC 7672 2.2 and 3.1.3, RFC 6698 2.1: why a record cannot be used for SMTP (null = usable)
export function unusableReason(r: TlsaRecord): string | null {
    if (r.malformed !== undefined) return `malformed: ${r.malformed}`
    if (r.usage === USAGE.PKIX_TA || r.usage === USAGE.PKIX_EE) {
        const name = r.usage === USAGE.PKIX_TA ? 'PKIX-TA' : 'PKIX-EE'
        return `usage ${r.usage} (${name}) is not used for SMTP (RFC 7672 3.1.3)`
    }
    if (r.usage !== USAGE.DANE_TA && r.usage !== USAGE.DANE_EE) return `unknown usage ${r.usage}`
    if (r.selector !== SELECTOR.CERT && r.selector !== SELECTOR.SPKI) return `unknown selector ${r.selector}`
    if (r.mtype !== MTYPE.FULL && r.mtype !== MTYPE.SHA2_256 && r.mtype !== MTYPE.SHA2_512) return `unknown matching type ${r.mtype}`
    if (!Buffer.isBuffer(r.data) || r.data.length === 0) return 'empty association data'
    const want = DIGEST_LENGTH[r.mtype]
    if (want !== undefined && r.data.length !== want) {
        return `matching type ${r.mtype} needs a ${want}-byte digest, record has ${r.data.length} bytes`
    }
    return null
}

// RFC 7672 2.2: only usable records take part in authentication
export function usableRecords(records: TlsaRecord[]): TlsaRecord[] {
    return records.filter((r) => unusableReason(r) === null)
}

// RFC 7671 9: digest algorithm agility. Per usage+selector pair only the strongest digest
// present among the usable records is used (SHA2-512 over SHA2-256); Full(0) records are not
// ranked and always kept. Returns usable records only, in their original order.
export function strongestDigests(records: TlsaRecord[]): TlsaRecord[] {
    // a frozen RRset (a host decision kept between messages, lib/policy) is ranked once
    const frozen = Object.isFrozen(records) && records.every((r) => Object.isFrozen(r))
    const known = frozen ? ranked.get(records) : undefined
    if (known) return [...known]
    const kept = rankDigests(records)
    if (frozen) ranked.set(records, Object.freeze([...kept]))
    return kept
}

const ranked = new WeakMap<readonly TlsaRecord[], readonly TlsaRecord[]>()

function rankDigests(records: TlsaRecord[]): TlsaRecord[] {
    const usable = usableRecords(records)
    const strongest = new Map<string, number>()
    for (const r of usable) {
        if (r.mtype === MTYPE.FULL) continue
        const key = `${r.usage}/${r.selector}`
        strongest.set(key, Math.max(strongest.get(key) ?? 0, r.mtype))
    }
    return usable.filter((r) => r.mtype === MTYPE.FULL || strongest.get(`${r.usage}/${r.selector}`) === r.mtype)
}
