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
import type { X509Certificate } from 'node:crypto'

import { readTlv, children, contents, readTime, readString, certificateParts, certificateExtensions } from './der'
import { certificateFact } from './cert-facts'

const OID_CN = Buffer.from([0x55, 0x04, 0x03]) // 2.5.4.3 id-at-commonName
const OID_SAN = '2.5.29.17' // id-ce-subjectAltName

export interface CertificateFields {
    /** SubjectPublicKeyInfo, the exact DER bytes of the certificate (RFC 6698 2.1.2 selector 1) */
    spki: Buffer
    /** validity; undefined when the dates cannot be read (`validityError` says why) */
    notBefore?: Date
    notAfter?: Date
    validityError?: string
    /** every CN attribute of the subject, in order */
    subjectCommonNames: string[]
    /** dNSName entries of the subjectAltName extension(s); empty when there are none */
    dnsNames: string[]
    /**
     * a subjectAltName holds a dNSName we could not read (OpenSSL also takes the constructed
     * [2] form), or the extension itself is unreadable: the certificate then has DNS-IDs we do
     * not know, so the CN must not stand in for them and no name matches
     */
    dnsNamesUnreadable?: string
}

/**
 * RFC 5280 4.1: the fields DANE needs, read from the certificate's DER.
 * Throws only when the structure up to the SubjectPublicKeyInfo is not a certificate (all that
 * DANE-EE needs); unreadable dates or subjectAltNames are reported in the result instead, so
 * that they fail only the checks that use them. Read once per certificate (lib/cert-facts).
 */
export function certificateFields(cert: X509Certificate | Buffer): CertificateFields {
    return certificateFact(cert, 'fields', readFields)
}

function readFields(der: Buffer): CertificateFields {
    const parts = certificateParts(der)
    const out: CertificateFields = { spki: der.subarray(parts.spki.start, parts.spki.end), subjectCommonNames: [], dnsNames: [] }
    try {
        const [nb, na] = children(der, parts.validity)
        if (!nb || !na) throw new Error('bad validity')
        out.notBefore = readTime(der, nb)
        out.notAfter = readTime(der, na)
    } catch (e) {
        out.notBefore = out.notAfter = undefined
        out.validityError = e instanceof Error ? e.message : String(e)
    }

    try {
        const subject = parts.subject
        for (const rdn of children(subject, readTlv(subject, 0))) {
            for (const atv of children(subject, rdn)) {
                const [oid, value] = children(subject, atv)
                if (oid?.tag === 0x06 && value && contents(subject, oid).equals(OID_CN)) {
                    const str = readString(subject, value)
                    if (str !== null) out.subjectCommonNames.push(str)
                }
            }
        }
    } catch {
        out.subjectCommonNames = []
    }

    try {
        for (const e of certificateExtensions(der, parts)) {
            if (e.oid !== OID_SAN) continue
            const names = readTlv(e.value, 0)
            for (const gn of children(e.value, names)) {
                // GeneralName dNSName [2] IA5String, implicitly tagged (0x82); OpenSSL also reads a constructed [2] (0xa2)
                if (gn.tag === 0x82) out.dnsNames.push(contents(e.value, gn).toString('latin1'))
                else if (gn.tag === 0xa2) out.dnsNamesUnreadable = 'a subjectAltName dNSName in constructed form'
            }
        }
    } catch (e) {
        out.dnsNamesUnreadable = `unreadable subjectAltName: ${e instanceof Error ? e.message : String(e)}`
    }
    Object.freeze(out.subjectCommonNames)
    Object.freeze(out.dnsNames)
    return out
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/**
 * A subject CN that is a host name, by OpenSSL's rule for taking a CN as a DNS-ID (v3_ncons.c cn2dnsid):
 * letters, digits and "_", with "-" and "." only inside, no empty label, at least two labels, no
 * trailing dot; and, for matching (X509_check_host), a whole left-most "*" label. One rule for both
 * uses: a CN that name constraints do not see can never be matched as a name either.
 */
export function isDnsIdCommonName(cn: string): boolean {
    const name = cn.startsWith('*.') ? cn.slice(2) : cn
    return /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)+$/.test(name)
}

// RFC 6125 6.4.4 / RFC 7672 3.2: DNS-IDs from subjectAltName; the CN only when there is no DNS-ID
export function certificateDnsNames(cert: X509Certificate): string[] {
    let f: CertificateFields
    try {
        f = certificateFields(cert)
    } catch {
        return []
    }
    // DNS-IDs we cannot read: neither they nor the CN may be matched
    if (f.dnsNamesUnreadable) return [...f.dnsNames]
    return f.dnsNames.length > 0 ? [...f.dnsNames] : f.subjectCommonNames.filter(isDnsIdCommonName)
}

// RFC 4343: DNS names compare case-insensitively in ASCII only; a trailing root dot is ignored.
// Non-ASCII input is refused (null) rather than folded: String.toLowerCase() maps e.g. U+212A
// KELVIN SIGN to "k", which would let a non-DNS name match an ASCII one.
function canonicalName(name: string): string | null {
    if (typeof name !== 'string') return null
    let n = name.endsWith('.') ? name.slice(0, -1) : name
    if (n.length === 0 || n.length > 253 || !/^[\x21-\x7e]+$/.test(n)) return null
    n = n.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32))
    return n
}

// RFC 6125 6.4.3 as restricted by RFC 7672 3.2: "*" only as the whole left-most label, matching one label
export function nameMatches(pattern: string, reference: string): boolean {
    const p = canonicalName(pattern)
    const r = canonicalName(reference)
    if (p === null || r === null) return false
    if (r.includes('*')) return false // a reference identifier is a host name, never a pattern
    if (!p.includes('*')) return p === r
    if (!p.startsWith('*.')) return false // partial-label ("f*.example") or non-left-most wildcard
    const parent = p.slice(2)
    const parentLabels = parent.split('.')
    // the wildcard must sit above at least two labels (no "*.com"), none empty, and be the only "*"
    if (parent.includes('*') || parentLabels.length < 2 || parentLabels.some((l) => l === '')) return false
    const dot = r.indexOf('.')
    if (dot <= 0) return false // "*" matches exactly one non-empty label, never the bare parent
    return r.slice(dot + 1) === parent
}

// RFC 7672 3.1.2 and 3.2: with DANE-TA the leaf must carry a name matching a reference identifier
export function matchesAnyReference(cert: X509Certificate, refs: string[]): string | null {
    const names = certificateDnsNames(cert)
    for (const ref of refs) {
        for (const name of names) {
            if (nameMatches(name, ref)) return ref
        }
    }
    return null
}
