/**
 * Reference identifiers and the certificate name check used with DANE-TA(2)
 * (RFC 7672 3.1.2 and 3.2, RFC 6125 6.4), plus the few certificate fields DANE needs,
 * read straight from the DER.
 *
 * Why read the DER ourselves rather than use node's X509Certificate getters:
 *  - `subjectAltName` and `subject` are display strings (names containing ", "
 *    or quotes come back quoted/escaped), not data; parsing them back is how
 *    name-check bugs are made.
 *  - `validFrom`/`validTo` are display strings too ("Jan  1 00:00:00 2030 GMT").
 *  - selector 1 needs the SubjectPublicKeyInfo exactly as it is in the
 *    certificate; `publicKey.export()` re-encodes it and throws for key types
 *    OpenSSL does not know.
 * The reader below is deliberately small: definite-length DER, low tag numbers.
 */
import type { X509Certificate } from 'node:crypto';

// ---------------------------------------------------------------------------
// A minimal DER reader (X.690 8.1: identifier, length, contents)
// ---------------------------------------------------------------------------

interface Tlv {
    tag: number;
    start: number; // offset of the identifier octet
    contentStart: number;
    end: number; // offset just past the contents
}

function readTlv(buf: Buffer, pos: number, limit: number = buf.length): Tlv {
    if (pos + 2 > limit) throw new Error(`DER truncated at ${pos}`);
    const tag = buf[pos];
    if ((tag & 0x1f) === 0x1f) throw new Error(`DER high tag number at ${pos}`);
    let p = pos + 1;
    let len = buf[p++];
    if (len & 0x80) {
        const n = len & 0x7f;
        if (n === 0 || n > 4) throw new Error(`DER unsupported length form at ${pos}`);
        if (p + n > limit) throw new Error(`DER truncated length at ${pos}`);
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + buf[p++];
    }
    const end = p + len;
    if (end > limit) throw new Error(`DER length overruns its container at ${pos}`);
    return { tag, start: pos, contentStart: p, end };
}

function children(buf: Buffer, parent: Tlv): Tlv[] {
    const out: Tlv[] = [];
    let p = parent.contentStart;
    while (p < parent.end) {
        const t = readTlv(buf, p, parent.end);
        out.push(t);
        p = t.end;
    }
    return out;
}

const OID_CN = Buffer.from([0x55, 0x04, 0x03]); // 2.5.4.3 id-at-commonName
const OID_SAN = Buffer.from([0x55, 0x1d, 0x11]); // 2.5.29.17 id-ce-subjectAltName

function contents(buf: Buffer, t: Tlv): Buffer {
    return buf.subarray(t.contentStart, t.end);
}

// RFC 5280 4.1.2.5: UTCTime YYMMDDHHMMSSZ (YY >= 50 → 19YY), GeneralizedTime YYYYMMDDHHMMSSZ
function readTime(buf: Buffer, t: Tlv): Date {
    const s = contents(buf, t).toString('latin1');
    let m: RegExpMatchArray | null;
    let year: number;
    if (t.tag === 0x17) {
        m = s.match(/^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?Z$/);
        if (!m) throw new Error(`bad UTCTime "${s}"`);
        const yy = Number(m[1]);
        year = yy >= 50 ? 1900 + yy : 2000 + yy;
    } else if (t.tag === 0x18) {
        m = s.match(/^\d\d(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(?:\.\d+)?Z$/);
        if (!m) throw new Error(`bad GeneralizedTime "${s}"`);
        year = Number(s.slice(0, 4));
    } else {
        throw new Error(`unexpected time tag 0x${t.tag.toString(16)}`);
    }
    const d = new Date(0);
    d.setUTCFullYear(year, Number(m[2]) - 1, Number(m[3]));
    d.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6] ?? 0), 0);
    return d;
}

// X.520 DirectoryString and friends, as far as a DNS name can be in them
function readString(buf: Buffer, t: Tlv): string | null {
    const c = contents(buf, t);
    switch (t.tag) {
        case 0x0c: // UTF8String
            return c.toString('utf8');
        case 0x13: // PrintableString
        case 0x16: // IA5String
        case 0x14: // TeletexString (treated as Latin-1)
            return c.toString('latin1');
        case 0x1e: {
            // BMPString, UCS-2 big-endian
            if (c.length % 2) return null;
            const sw = Buffer.from(c);
            sw.swap16();
            return sw.toString('utf16le');
        }
        case 0x1c: {
            // UniversalString, UCS-4 big-endian
            if (c.length % 4) return null;
            let out = '';
            for (let i = 0; i < c.length; i += 4) out += String.fromCodePoint(c.readUInt32BE(i));
            return out;
        }
        default:
            return null;
    }
}

export interface CertificateFields {
    /** SubjectPublicKeyInfo, the exact DER bytes of the certificate (RFC 6698 2.1.2 selector 1) */
    spki: Buffer;
    /** validity; undefined when the dates cannot be read (`validityError` says why) */
    notBefore?: Date;
    notAfter?: Date;
    validityError?: string;
    /** every CN attribute of the subject, in order */
    subjectCommonNames: string[];
    /** dNSName entries of the subjectAltName extension(s); empty when there are none */
    dnsNames: string[];
    /**
     * a subjectAltName holds a dNSName we could not read (OpenSSL also takes the constructed
     * [2] form), or the extension itself is unreadable: the certificate then has DNS-IDs we do
     * not know, so the CN must not stand in for them and no name matches
     */
    dnsNamesUnreadable?: string;
}

const fieldsCache = new WeakMap<object, CertificateFields>();

/**
 * RFC 5280 4.1: the fields DANE needs, read from the certificate's DER.
 * Throws only when the structure up to the SubjectPublicKeyInfo is not a certificate (all that
 * DANE-EE needs); unreadable dates or subjectAltNames are reported in the result instead, so
 * that they fail only the checks that use them. Cached per object.
 */
export function certificateFields(cert: X509Certificate | Buffer): CertificateFields {
    const cached = fieldsCache.get(cert);
    if (cached) return cached;
    const der = Buffer.isBuffer(cert) ? cert : cert.raw;
    const top = readTlv(der, 0);
    if (top.tag !== 0x30 || top.end !== der.length) throw new Error('not a DER certificate (outer SEQUENCE)');
    const [tbs] = children(der, top);
    if (!tbs || tbs.tag !== 0x30) throw new Error('not a DER certificate (tbsCertificate)');
    const f = children(der, tbs);
    let i = 0;
    if (f[i]?.tag === 0xa0) i++; // [0] version
    const [serial, sigAlg, , validity, subject, spki] = f.slice(i, i + 6);
    if (!spki || serial.tag !== 0x02 || sigAlg.tag !== 0x30 || validity.tag !== 0x30 || subject.tag !== 0x30 || spki.tag !== 0x30) {
        throw new Error('not a DER certificate (tbsCertificate fields)');
    }
    const out: CertificateFields = { spki: der.subarray(spki.start, spki.end), subjectCommonNames: [], dnsNames: [] };
    try {
        const [nb, na] = children(der, validity);
        if (!nb || !na) throw new Error('bad validity');
        out.notBefore = readTime(der, nb);
        out.notAfter = readTime(der, na);
    } catch (e) {
        out.notBefore = out.notAfter = undefined;
        out.validityError = e instanceof Error ? e.message : String(e);
    }

    try {
        for (const rdn of children(der, subject)) {
            for (const atv of children(der, rdn)) {
                const [oid, value] = children(der, atv);
                if (oid?.tag === 0x06 && value && contents(der, oid).equals(OID_CN)) {
                    const str = readString(der, value);
                    if (str !== null) out.subjectCommonNames.push(str);
                }
            }
        }
    } catch {
        out.subjectCommonNames = [];
    }

    try {
        for (const ext of f.slice(i + 6)) {
            if (ext.tag !== 0xa3) continue; // [3] extensions (v3)
            const [list] = children(der, ext);
            if (!list) continue;
            for (const e of children(der, list)) {
                const parts = children(der, e);
                const oid = parts[0];
                const value = parts[parts.length - 1];
                if (oid?.tag !== 0x06 || value?.tag !== 0x04 || !contents(der, oid).equals(OID_SAN)) continue;
                const inner = contents(der, value);
                const names = readTlv(inner, 0);
                for (const gn of children(inner, names)) {
                    // GeneralName dNSName [2] IA5String, implicitly tagged (0x82); OpenSSL also reads a constructed [2] (0xa2)
                    if (gn.tag === 0x82) out.dnsNames.push(contents(inner, gn).toString('latin1'));
                    else if (gn.tag === 0xa2) out.dnsNamesUnreadable = 'a subjectAltName dNSName in constructed form';
                }
            }
        }
    } catch (e) {
        out.dnsNamesUnreadable = `unreadable subjectAltName: ${e instanceof Error ? e.message : String(e)}`;
    }
    fieldsCache.set(cert, out);
    return out;
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

// RFC 6125 6.4.4 / RFC 7672 3.2: DNS-IDs from subjectAltName; the CN only when there is no DNS-ID
export function certificateDnsNames(cert: X509Certificate): string[] {
    let f: CertificateFields;
    try {
        f = certificateFields(cert);
    } catch {
        return [];
    }
    // DNS-IDs we cannot read: neither they nor the CN may be matched
    if (f.dnsNamesUnreadable) return [...f.dnsNames];
    return f.dnsNames.length > 0 ? [...f.dnsNames] : [...f.subjectCommonNames];
}

// RFC 4343: DNS names compare case-insensitively in ASCII only; a trailing root dot is ignored.
// Non-ASCII input is refused (null) rather than folded: String.toLowerCase() maps e.g. U+212A
// KELVIN SIGN to "k", which would let a non-DNS name match an ASCII one.
function canonicalName(name: string): string | null {
    if (typeof name !== 'string') return null;
    let n = name.endsWith('.') ? name.slice(0, -1) : name;
    if (n.length === 0 || n.length > 253 || !/^[\x21-\x7e]+$/.test(n)) return null;
    n = n.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
    return n;
}

// RFC 6125 6.4.3 as restricted by RFC 7672 3.2: "*" only as the whole left-most label, matching one label
export function nameMatches(pattern: string, reference: string): boolean {
    const p = canonicalName(pattern);
    const r = canonicalName(reference);
    if (p === null || r === null) return false;
    if (r.includes('*')) return false; // a reference identifier is a host name, never a pattern
    if (!p.includes('*')) return p === r;
    if (!p.startsWith('*.')) return false; // partial-label ("f*.example") or non-left-most wildcard
    const parent = p.slice(2);
    const parentLabels = parent.split('.');
    // the wildcard must sit above at least two labels (no "*.com"), none empty, and be the only "*"
    if (parent.includes('*') || parentLabels.length < 2 || parentLabels.some((l) => l === '')) return false;
    const dot = r.indexOf('.');
    if (dot <= 0) return false; // "*" matches exactly one non-empty label, never the bare parent
    return r.slice(dot + 1) === parent;
}

// RFC 7672 3.1.2 and 3.2: with DANE-TA the leaf must carry a name matching a reference identifier
export function matchesAnyReference(cert: X509Certificate, refs: string[]): string | null {
    const names = certificateDnsNames(cert);
    for (const ref of refs) {
        for (const name of names) {
            if (nameMatches(name, ref)) return ref;
        }
    }
    return null;
}
