/**
 * RFC 5280 6.1 certification path validation below a DANE-TA(2) trust anchor
 * (RFC 6698 2.1.1: with usage 2 the server's certificate "MUST pass PKIX certification path
 * validation", the matched certificate or key being the trust anchor). Pure: no I/O, no clock
 * but the `now` it is given, never throws.
 *
 * What it checks, as OpenSSL 3 does for DANE-TA (the reference Postfix uses; each rule was
 * compared with `openssl s_client -dane_tlsa_rrdata` on the same chains, test/e2e/openssl-dane.test.ts):
 *  - every certificate below the anchor within its validity dates (6.1.3 (a)(2)); the anchor's
 *    own dates are not checked (RFC 7671 5.2: it is trusted because DNSSEC says so);
 *  - every intermediate a CA (basicConstraints cA, 6.1.4 (k)), with keyCertSign when it has a
 *    keyUsage (6.1.4 (n)), and pathLenConstraint counted over non-self-issued intermediates
 *    (6.1.4 (l), (m)), the anchor certificate's own pathLenConstraint included (RFC 7671 5.2.1);
 *  - name constraints (6.1.3 (b), (c), 6.1.4 (g), 4.2.1.10) from every CA on the path and from
 *    the anchor certificate: dNSName, rfc822Name (the subject's emailAddress too), iPAddress,
 *    uniformResourceIdentifier and directoryName (every string type decoded before comparing);
 *    the leaf's CN when it has no DNS SAN and is a host name (lib/names.ts isDnsIdCommonName, the
 *    same rule that lets a CN be matched at all); a constraint of any other name form that meets a
 *    name of that form fails; a wildcard SAN is excluded when one of the names it stands for is
 *    (stricter than OpenSSL, which compares the "*" as a label);
 *  - certificate policies are not evaluated, as OpenSSL does not evaluate them unless asked
 *    (X509_V_FLAG_POLICY_CHECK, which Postfix does not set): the policy extensions count as
 *    processed, so a critical one does not fail the path, and requireExplicitPolicy is not enforced;
 *  - a critical extension this module does not process fails (6.1.4 (o)), as does a repeated one;
 *  - the purpose "TLS server", as OpenSSL's `sslserver`: an extendedKeyUsage (leaf and CAs) must
 *    include serverAuth or anyExtendedKeyUsage; a leaf keyUsage must allow digitalSignature,
 *    keyEncipherment or keyAgreement; a Netscape cert type must allow SSL server on a leaf, and SSL CA
 *    on a CA that nothing else makes one (OpenSSL's check_ssl_ca).
 *    One deliberate difference: OpenSSL 3.0 refuses a leaf whose extendedKeyUsage is anyExtendedKeyUsage
 *    alone; RFC 5280 4.2.1.12 says that key may serve any purpose, and this validator accepts it.
 * The anchor certificate's critical extensions and purpose count as they do for OpenSSL, which keeps it
 * in the chain it checks, and it must be a CA by OpenSSL's X509_check_ca. A bare key given in DNS (`2 1 0`) carries no constraints: only the
 * certificates below it count; where a presented certificate carrying that key issued the path, that
 * certificate is the anchor instead (lib/verify.ts), as OpenSSL makes it.
 */
import type { X509Certificate } from 'node:crypto'
import {
    certificateParts,
    certificateExtensions,
    children,
    contents,
    oidText,
    readString,
    readTlv,
    smallInteger,
    typedContents,
    type RawExtension,
    type Tlv,
} from './der'
import { certificateFields, isDnsIdCommonName } from './names'
import { certificateFact } from './cert-facts'
import { nameConstraintFailure, type GeneralName, type Subtrees } from './name-constraints'

export type PkixFailureCode =
    | 'expired'
    | 'not-yet-valid'
    | 'bad-certificate'
    | 'not-a-ca'
    | 'path-length-exceeded'
    | 'name-constraint-violation'
    | 'unhandled-critical-extension'
    | 'not-for-tls-server'

export interface PkixFailure {
    code: PkixFailureCode
    detail: string
}

// ---------------------------------------------------------------------------
// The extensions path validation reads (RFC 5280 4.2.1)
// ---------------------------------------------------------------------------

const OID = {
    keyUsage: '2.5.29.15',
    subjectAltName: '2.5.29.17',
    basicConstraints: '2.5.29.19',
    nameConstraints: '2.5.29.30',
    certificatePolicies: '2.5.29.32',
    policyMappings: '2.5.29.33',
    authorityKeyIdentifier: '2.5.29.35',
    policyConstraints: '2.5.29.36',
    extKeyUsage: '2.5.29.37',
    inhibitAnyPolicy: '2.5.29.54',
    subjectKeyIdentifier: '2.5.29.14',
    netscapeCertType: '2.16.840.1.113730.1.1',
    emailAddress: '1.2.840.113549.1.9.1',
    commonName: '2.5.4.3',
    serverAuth: '1.3.6.1.5.5.7.3.1',
    anyExtendedKeyUsage: '2.5.29.37.0',
} as const

/** Critical extensions this module processes (RFC 5280 6.1.4 (o)); any other critical one fails the path. */
const PROCESSED = new Set<string>([
    OID.keyUsage,
    OID.subjectAltName,
    OID.basicConstraints,
    OID.nameConstraints,
    OID.certificatePolicies,
    OID.policyMappings,
    OID.policyConstraints,
    OID.extKeyUsage,
    OID.inhibitAnyPolicy,
    OID.netscapeCertType,
])

// RFC 5280 4.2.1.3: KeyUsage bits, bit 0 first (the most significant bit of the first octet)
const KU = { digitalSignature: 0, keyEncipherment: 2, keyAgreement: 4, keyCertSign: 5 } as const
// Netscape cert type (OpenSSL's ns_reject): bit 1 SSL server, bits 5-7 SSL, S/MIME and object-signing CA
const NS = { sslServer: 1, sslCa: 5, smimeCa: 6, objCa: 7 } as const

export interface PkixProfile {
    version: number
    selfIssued: boolean
    subjectRdns: string[]
    subjectEmails: string[]
    subjectCommonNames: string[]
    /** undefined: no subjectAltName extension */
    altNames?: GeneralName[]
    basicConstraints?: { ca: boolean; pathLen?: number }
    keyUsage?: Buffer
    extKeyUsage?: string[]
    netscapeCertType?: Buffer
    nameConstraints?: Subtrees
    subjectKeyId?: Buffer
    authorityKeyId?: Buffer
    criticalUnprocessed: string[]
    /** the certificate or one of its extensions could not be read: the path fails closed */
    error?: string
}

function bitSet(bits: Buffer | undefined, bit: number): boolean {
    if (!bits || bits.length < 1) return false
    const byte = 1 + (bit >> 3) // bits[0] is the unused-bits count
    return byte < bits.length && (bits[byte] & (0x80 >> (bit & 7))) !== 0
}

/**
 * RFC 5280 7.1 (simplified as OpenSSL's canonical form): one key per RDN, from the attribute
 * types and their string values folded to lower case with spaces collapsed; other values as hex.
 */
function rdnKeys(der: Buffer, name: Tlv): string[] {
    const out: string[] = []
    for (const rdn of children(der, name)) {
        const atvs = children(der, rdn).map((atv) => {
            const [type, value] = children(der, atv)
            if (type?.tag !== 0x06 || !value) throw new Error('malformed AttributeTypeAndValue')
            // every string type decoded first, as OpenSSL does, so that a BMPString cannot dodge a PrintableString constraint
            const str = readString(der, value)
            const text = str !== null ? str.trim().replace(/\s+/g, ' ').toLowerCase() : `#${contents(der, value).toString('hex')}`
            return `${oidText(contents(der, type))}=${text}`
        })
        out.push(atvs.sort().join('+'))
    }
    return out
}

function ia5(der: Buffer, t: Tlv): string {
    return contents(der, t).toString('latin1')
}

// RFC 5280 4.2.1.6 GeneralName, implicitly tagged
function generalName(der: Buffer, t: Tlv): GeneralName {
    switch (t.tag) {
        case 0x81:
            return { form: 'email', text: ia5(der, t) }
        case 0x82:
            return { form: 'dns', text: ia5(der, t) }
        case 0x86:
            return { form: 'uri', text: ia5(der, t) }
        case 0x87:
            return { form: 'ip', octets: Buffer.from(contents(der, t)) }
        case 0xa4: {
            const [inner] = children(der, t)
            if (!inner || inner.tag !== 0x30) throw new Error('malformed directoryName')
            return { form: 'dn', rdns: rdnKeys(der, inner) }
        }
        default:
            return { form: 'other', tag: t.tag }
    }
}

function parseExtension(p: PkixProfile, e: RawExtension): void {
    if (!PROCESSED.has(e.oid) && e.oid !== OID.subjectKeyIdentifier && e.oid !== OID.authorityKeyIdentifier) return
    const der = e.value
    const top = readTlv(der, 0)
    if (top.end !== der.length) throw new Error('trailing bytes')
    switch (e.oid) {
        case OID.basicConstraints: {
            // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL }
            let ca = false
            let pathLen: number | undefined
            for (const c of children(der, top)) {
                if (c.tag === 0x01) {
                    if (c.end - c.contentStart !== 1) throw new Error('bad BOOLEAN')
                    ca = der[c.contentStart] !== 0
                } else if (c.tag === 0x02) {
                    const v = smallInteger(contents(der, c))
                    if (v === null) throw new Error('bad pathLenConstraint')
                    pathLen = v
                } else throw new Error('unexpected field')
            }
            p.basicConstraints = { ca, pathLen }
            return
        }
        case OID.keyUsage:
            p.keyUsage = Buffer.from(typedContents(der, top, 0x03, 'a BIT STRING'))
            return
        case OID.netscapeCertType:
            p.netscapeCertType = Buffer.from(typedContents(der, top, 0x03, 'a BIT STRING'))
            return
        case OID.extKeyUsage:
            p.extKeyUsage = children(der, top).map((c) => oidText(typedContents(der, c, 0x06, 'an OBJECT IDENTIFIER')))
            return
        case OID.subjectAltName:
            p.altNames = children(der, top).map((c) => generalName(der, c))
            return
        case OID.nameConstraints: {
            // NameConstraints ::= SEQUENCE { permittedSubtrees [0], excludedSubtrees [1] } of GeneralSubtree { base, [0] min, [1] max }
            const nc: Subtrees = { permitted: [], excluded: [] }
            for (const c of children(der, top)) {
                if (c.tag !== 0xa0 && c.tag !== 0xa1) throw new Error('unexpected field')
                for (const subtree of children(der, c)) {
                    const [base, ...rest] = children(der, subtree)
                    if (!base) throw new Error('empty GeneralSubtree')
                    // RFC 5280 4.2.1.10: minimum MUST be zero and maximum absent; anything else is not processed
                    if (rest.some((r) => r.tag !== 0x80 || contents(der, r).some((b) => b !== 0))) throw new Error('minimum/maximum in a GeneralSubtree')
                    ;(c.tag === 0xa0 ? nc.permitted : nc.excluded).push(generalName(der, base))
                }
            }
            p.nameConstraints = nc
            return
        }
        case OID.subjectKeyIdentifier:
            p.subjectKeyId = Buffer.from(typedContents(der, top, 0x04, 'an OCTET STRING'))
            return
        case OID.authorityKeyIdentifier:
            for (const c of children(der, top)) if (c.tag === 0x80) p.authorityKeyId = Buffer.from(contents(der, c))
            return
    }
}

/** The RFC 5280 fields of one certificate, read once per certificate (lib/cert-facts). Never throws: `error` says what could not be read. */
export function pkixProfile(cert: X509Certificate): PkixProfile {
    return certificateFact(cert, 'pkix', (der) => readProfile(cert, der))
}

function readProfile(cert: X509Certificate, der: Buffer): PkixProfile {
    const p: PkixProfile = { version: 3, selfIssued: false, subjectRdns: [], subjectEmails: [], subjectCommonNames: [], criticalUnprocessed: [] }
    try {
        const parts = certificateParts(der)
        p.version = parts.version
        p.selfIssued = parts.issuer.equals(parts.subject)
        const subject = readTlv(parts.subject, 0)
        p.subjectRdns = rdnKeys(parts.subject, subject)
        for (const rdn of children(parts.subject, subject)) {
            for (const atv of children(parts.subject, rdn)) {
                const [type, value] = children(parts.subject, atv)
                const oid = oidText(contents(parts.subject, type))
                if (oid === OID.emailAddress) p.subjectEmails.push(ia5(parts.subject, value))
            }
        }
        p.subjectCommonNames = certificateFields(cert).subjectCommonNames
        const seen = new Set<string>()
        for (const e of certificateExtensions(der, parts)) {
            // RFC 5280 4.2: a certificate MUST NOT include more than one instance of an extension
            if (seen.has(e.oid)) throw new Error(`extension ${e.oid} appears twice`)
            seen.add(e.oid)
            // RFC 5280 6.1.4 (o): a critical extension that is not processed fails the path
            if (e.critical && !PROCESSED.has(e.oid)) p.criticalUnprocessed.push(e.oid)
            try {
                parseExtension(p, e)
            } catch (err) {
                throw new Error(`extension ${e.oid}${e.critical ? ' (critical)' : ''} unreadable: ${err instanceof Error ? err.message : String(err)}`)
            }
        }
    } catch (err) {
        p.error = err instanceof Error ? err.message : String(err)
    }
    return p
}

/** OpenSSL's issuer preference among same-name candidates: the authority key identifier names the issuer's key. */
export function keyIdentifiersMatch(child: X509Certificate, issuer: X509Certificate): boolean | undefined {
    const a = pkixProfile(child).authorityKeyId
    const s = pkixProfile(issuer).subjectKeyId
    return a && s ? a.equals(s) : undefined
}

/** The names of a certificate that name constraints apply to (RFC 5280 6.1.3 (b), (c); OpenSSL's check of a leaf's CN). */
function constrainedNames(p: PkixProfile, leaf: boolean): GeneralName[] {
    const names: GeneralName[] = [...(p.altNames ?? [])]
    if (p.subjectRdns.length > 0) names.push({ form: 'dn', rdns: p.subjectRdns })
    for (const e of p.subjectEmails) names.push({ form: 'email', text: e })
    if (leaf && !names.some((n) => n.form === 'dns')) {
        // the very CNs lib/names.ts would match against a reference identifier
        for (const cn of p.subjectCommonNames) if (isDnsIdCommonName(cn)) names.push({ form: 'dns', text: cn })
    }
    return names
}

// ---------------------------------------------------------------------------
// The path
// ---------------------------------------------------------------------------

function subjectOf(c: X509Certificate): string {
    return c.subject.replace(/\n/g, ', ')
}

/**
 * OpenSSL's X509_check_ca, for the anchor certificate: basicConstraints decides when present;
 * without it, a v1 self-signed certificate, a keyUsage with keyCertSign, or a Netscape CA type.
 * (An intermediate must carry basicConstraints cA, RFC 5280 6.1.4 (k).)
 */
function caByOpenssl(p: PkixProfile): boolean {
    if (p.basicConstraints) return p.basicConstraints.ca
    if (p.version === 1 && p.selfIssued) return true
    if (p.keyUsage) return bitSet(p.keyUsage, KU.keyCertSign)
    if (p.netscapeCertType) return [NS.sslCa, NS.smimeCa, NS.objCa].some((b) => bitSet(p.netscapeCertType, b))
    return false
}

// OpenSSL's `sslserver` purpose: extendedKeyUsage on every certificate, keyUsage and cert type by role
function purposeFailure(p: PkixProfile, leaf: boolean): string | null {
    if (p.extKeyUsage && !p.extKeyUsage.includes(OID.serverAuth) && !p.extKeyUsage.includes(OID.anyExtendedKeyUsage)) {
        return `its extendedKeyUsage (${p.extKeyUsage.join(', ')}) does not include serverAuth`
    }
    // the cert type counts on a leaf, and on a CA only when nothing else makes it one (OpenSSL's check_ssl_ca)
    if (leaf && p.netscapeCertType && !bitSet(p.netscapeCertType, NS.sslServer)) return 'its Netscape cert type does not allow SSL server use'
    if (!leaf && !p.basicConstraints && !p.keyUsage && p.netscapeCertType && !bitSet(p.netscapeCertType, NS.sslCa))
        return 'its Netscape cert type does not allow SSL CA use'
    if (leaf && p.keyUsage && ![KU.digitalSignature, KU.keyEncipherment, KU.keyAgreement].some((b) => bitSet(p.keyUsage, b))) {
        return 'its keyUsage allows neither digitalSignature, keyEncipherment nor keyAgreement'
    }
    return null
}

/**
 * RFC 5280 6.1 over `path` (leaf first, the trust anchor not included) below `anchor`: the anchor
 * certificate (presented, or given in full by `2 0 0`) or undefined for a bare key (`2 1 0`).
 * Returns null when the path is valid, else the first rule it breaks, naming the certificate.
 */
export function validatePath(path: X509Certificate[], anchor: X509Certificate | undefined, now: Date): PkixFailure | null {
    const fail = (code: PkixFailureCode, depth: number, what: string): PkixFailure => ({ code, detail: `${subjectOf(path[depth])} at depth ${depth} ${what}` })
    const n = path.length
    // working state (RFC 5280 6.1.2), seeded from the anchor certificate as RFC 7671 5.2.1 advises
    let maxPathLength = n
    const layers: { from: string; nc: Subtrees }[] = []
    if (anchor) {
        const a = pkixProfile(anchor)
        if (a.error) return { code: 'bad-certificate', detail: `the trust anchor ${subjectOf(anchor)}: ${a.error}` }
        if (!caByOpenssl(a))
            return {
                code: 'not-a-ca',
                detail: `the trust anchor ${subjectOf(anchor)} is not a CA certificate (basicConstraints, keyUsage), so it cannot issue the certificate below it`,
            }
        // OpenSSL keeps the anchor certificate in the chain it checks: its critical extensions and purpose count, not its dates
        if (a.criticalUnprocessed.length) {
            return {
                code: 'unhandled-critical-extension',
                detail: `the trust anchor ${subjectOf(anchor)} has a critical extension this validator does not process (${a.criticalUnprocessed.join(', ')})`,
            }
        }
        const purpose = purposeFailure(a, false)
        if (purpose) return { code: 'not-for-tls-server', detail: `the trust anchor ${subjectOf(anchor)} is not for TLS server use: ${purpose}` }
        if (a.basicConstraints?.pathLen !== undefined) maxPathLength = a.basicConstraints.pathLen
        if (a.nameConstraints) layers.push({ from: `the trust anchor ${subjectOf(anchor)}`, nc: a.nameConstraints })
    }
    for (let depth = n - 1; depth >= 0; depth--) {
        const cert = path[depth]
        const leaf = depth === 0
        const p = pkixProfile(cert)
        if (p.error) return fail('bad-certificate', depth, `cannot be read: ${p.error}`)

        // (a)(2) validity
        const f = certificateFields(cert)
        if (f.notBefore === undefined || f.notAfter === undefined) return fail('bad-certificate', depth, `has unreadable validity dates (${f.validityError})`)
        if (f.notBefore.getTime() > now.getTime()) return fail('not-yet-valid', depth, `is not valid before ${f.notBefore.toISOString()}`)
        if (f.notAfter.getTime() < now.getTime()) return fail('expired', depth, `expired ${f.notAfter.toISOString()}`)

        // (b), (c) name constraints; a self-issued intermediate is exempt
        if (leaf || !p.selfIssued) {
            const broken = nameConstraintFailure(constrainedNames(p, leaf), layers)
            if (broken) return fail('name-constraint-violation', depth, `breaks a name constraint: ${broken}`)
        }

        if (p.criticalUnprocessed.length)
            return fail(
                'unhandled-critical-extension',
                depth,
                `has a critical extension this validator does not process (${p.criticalUnprocessed.join(', ')}), so it must be rejected`,
            )
        const purpose = purposeFailure(p, leaf)
        if (purpose) return fail('not-for-tls-server', depth, `is not for TLS server use: ${purpose}`)

        if (!leaf) {
            // (k) a CA; (n) allowed to sign certificates
            if (!p.basicConstraints?.ca) return fail('not-a-ca', depth, `issues ${subjectOf(path[depth - 1])} but is not a CA (basicConstraints cA)`)
            if (p.keyUsage && !bitSet(p.keyUsage, KU.keyCertSign)) return fail('not-a-ca', depth, 'has a keyUsage without keyCertSign')
            // (l), (m) path length
            if (!p.selfIssued) {
                if (maxPathLength <= 0) return fail('path-length-exceeded', depth, 'is one CA too many: a pathLenConstraint above it allows no further CA')
                maxPathLength--
            }
            if (p.basicConstraints.pathLen !== undefined) maxPathLength = Math.min(maxPathLength, p.basicConstraints.pathLen)
            // (g) its name constraints bind everything below it
            if (p.nameConstraints) layers.push({ from: subjectOf(cert), nc: p.nameConstraints })
        }
    }
    return null
}
