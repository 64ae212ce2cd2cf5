/**
 * A minimal DER reader (X.690 8.1: identifier, length, contents) for the certificate fields
 * DANE and RFC 5280 path validation read themselves: definite lengths, low tag numbers, every
 * length checked against its container. Node 20 exposes these fields only as display strings.
 */

export interface Tlv {
    tag: number
    start: number // offset of the identifier octet
    contentStart: number
    end: number // offset just past the contents
}

export function readTlv(buf: Buffer, pos: number, limit: number = buf.length): Tlv {
    if (pos + 2 > limit) throw new Error(`DER truncated at ${pos}`)
    const tag = buf[pos]
    if ((tag & 0x1f) === 0x1f) throw new Error(`DER high tag number at ${pos}`)
    let p = pos + 1
    let len = buf[p++]
    if (len & 0x80) {
        const n = len & 0x7f
        if (n === 0 || n > 4) throw new Error(`DER unsupported length form at ${pos}`)
        if (p + n > limit) throw new Error(`DER truncated length at ${pos}`)
        len = 0
        for (let i = 0; i < n; i++) len = len * 256 + buf[p++]
    }
    const end = p + len
    if (end > limit) throw new Error(`DER length overruns its container at ${pos}`)
    return { tag, start: pos, contentStart: p, end }
}

export function children(buf: Buffer, parent: Tlv): Tlv[] {
    const out: Tlv[] = []
    let p = parent.contentStart
    while (p < parent.end) {
        const t = readTlv(buf, p, parent.end)
        out.push(t)
        p = t.end
    }
    return out
}

export function contents(buf: Buffer, t: Tlv): Buffer {
    return buf.subarray(t.contentStart, t.end)
}

/** The contents of `t`, which must carry `tag`; `what` names the type in the error ("a BIT STRING"). */
export function typedContents(buf: Buffer, t: Tlv, tag: number, what: string): Buffer {
    if (t.tag !== tag) throw new Error(`not ${what}`)
    return contents(buf, t)
}

// RFC 5280 4.1.2.5: UTCTime YYMMDDHHMMSSZ (YY >= 50 → 19YY), GeneralizedTime YYYYMMDDHHMMSSZ
export function readTime(buf: Buffer, t: Tlv): Date {
    const s = contents(buf, t).toString('latin1')
    let m: RegExpMatchArray | null
    let year: number
    if (t.tag === 0x17) {
        m = s.match(/^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?Z$/)
        if (!m) throw new Error(`bad UTCTime "${s}"`)
        const yy = Number(m[1])
        year = yy >= 50 ? 1900 + yy : 2000 + yy
    } else if (t.tag === 0x18) {
        m = s.match(/^\d\d(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(?:\.\d+)?Z$/)
        if (!m) throw new Error(`bad GeneralizedTime "${s}"`)
        year = Number(s.slice(0, 4))
    } else {
        throw new Error(`unexpected time tag 0x${t.tag.toString(16)}`)
    }
    const d = new Date(0)
    d.setUTCFullYear(year, Number(m[2]) - 1, Number(m[3]))
    d.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6] ?? 0), 0)
    return d
}

// X.520 DirectoryString and friends, as far as a DNS name can be in them
export function readString(buf: Buffer, t: Tlv): string | null {
    const c = contents(buf, t)
    switch (t.tag) {
        case 0x0c: // UTF8String
            return c.toString('utf8')
        case 0x13: // PrintableString
        case 0x16: // IA5String
        case 0x14: // TeletexString (treated as Latin-1)
        case 0x1a: // VisibleString
            return c.toString('latin1')
        case 0x1e: {
            // BMPString, UCS-2 big-endian
            if (c.length % 2) return null
            const sw = Buffer.from(c)
            sw.swap16()
            return sw.toString('utf16le')
        }
        case 0x1c: {
            // UniversalString, UCS-4 big-endian
            if (c.length % 4) return null
            let out = ''
            for (let i = 0; i < c.length; i += 4) out += String.fromCodePoint(c.readUInt32BE(i))
            return out
        }
        default:
            return null
    }
}

/** X.690 8.19: an OBJECT IDENTIFIER's contents as dotted text ("2.5.29.19"). */
export function oidText(c: Buffer): string {
    if (c.length === 0) throw new Error('empty OBJECT IDENTIFIER')
    const arcs: number[] = []
    let v = 0
    for (let i = 0; i < c.length; i++) {
        // X.690 8.19.2: an arc is encoded in the fewest octets (no leading 0x80)
        if (v === 0 && c[i] === 0x80) throw new Error('OBJECT IDENTIFIER arc not minimally encoded')
        if (v > 2 ** 45) throw new Error('OBJECT IDENTIFIER arc too large')
        v = v * 128 + (c[i] & 0x7f)
        if (!(c[i] & 0x80)) {
            if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80)
            else arcs.push(v)
            v = 0
        } else if (i === c.length - 1) throw new Error('OBJECT IDENTIFIER ends inside an arc')
    }
    return arcs.join('.')
}

/** X.690 8.3: a non-negative INTEGER's contents that fits a JS number, else null. */
export function smallInteger(c: Buffer): number | null {
    if (c.length === 0 || c[0] & 0x80 || c.length > 6) return null
    let v = 0
    for (const b of c) v = v * 256 + b
    return v
}

/** One extension of a certificate (RFC 5280 4.1: Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue }). */
export interface RawExtension {
    oid: string
    critical: boolean
    /** the DER inside extnValue's OCTET STRING */
    value: Buffer
}

/** The parts of a certificate RFC 5280 path validation reads, as DER slices of the certificate. */
export interface CertificateParts {
    /** 1, 2 or 3 (X.509 v1 has no [0] version field) */
    version: number
    issuer: Buffer
    subject: Buffer
    validity: Tlv
    spki: Tlv
    /** the [3] extensions field, when the certificate has one (read by certificateExtensions) */
    extensionsField?: Tlv
}

/** RFC 5280 4.1: splits a DER certificate into its tbsCertificate fields, the one walk every reader uses. Throws on a structure that is not a certificate. */
export function certificateParts(der: Buffer): CertificateParts {
    const top = readTlv(der, 0)
    if (top.tag !== 0x30 || top.end !== der.length) throw new Error('not a DER certificate (outer SEQUENCE)')
    const [tbs] = children(der, top)
    if (!tbs || tbs.tag !== 0x30) throw new Error('not a DER certificate (tbsCertificate)')
    const f = children(der, tbs)
    let i = 0
    let version = 1
    if (f[i]?.tag === 0xa0) {
        // [0] EXPLICIT Version: INTEGER 0, 1 or 2
        const [v] = children(der, f[i])
        const n = v?.tag === 0x02 ? smallInteger(contents(der, v)) : null
        if (n === null || n > 2) throw new Error('not a DER certificate (version)')
        version = n + 1
        i++
    }
    const [serial, sigAlg, issuer, validity, subject, spki] = f.slice(i, i + 6)
    if (!spki || serial.tag !== 0x02 || sigAlg.tag !== 0x30 || issuer.tag !== 0x30 || validity.tag !== 0x30 || subject.tag !== 0x30 || spki.tag !== 0x30) {
        throw new Error('not a DER certificate (tbsCertificate fields)')
    }
    // [1] issuerUniqueID and [2] subjectUniqueID may stand before [3] extensions
    const extensionsField = f.slice(i + 6).find((t) => t.tag === 0xa3)
    return { version, issuer: der.subarray(issuer.start, issuer.end), subject: der.subarray(subject.start, subject.end), validity, spki, extensionsField }
}

/** RFC 5280 4.1: the extensions of a certificate, strictly read (a malformed one throws). */
export function certificateExtensions(der: Buffer, parts: CertificateParts): RawExtension[] {
    const extensions: RawExtension[] = []
    if (!parts.extensionsField) return extensions
    const [list] = children(der, parts.extensionsField)
    if (!list || list.tag !== 0x30) throw new Error('extensions are not a SEQUENCE')
    for (const e of children(der, list)) {
        const fields = children(der, e)
        const [oid] = fields
        const value = fields[fields.length - 1]
        if (e.tag !== 0x30 || oid?.tag !== 0x06 || value?.tag !== 0x04 || fields.length > 3) throw new Error('malformed extension')
        let critical = false
        if (fields.length === 3) {
            const b = fields[1]
            if (b.tag !== 0x01 || b.end - b.contentStart !== 1) throw new Error('malformed extension criticality')
            critical = der[b.contentStart] !== 0
        }
        extensions.push({ oid: oidText(contents(der, oid)), critical, value: contents(der, value) })
    }
    return extensions
}
