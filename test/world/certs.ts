/**
 * Test certificate factory. Builds X.509 v3 certificates directly in DER and
 * signs them with node's crypto: synchronous, no temp files, no openssl CLI,
 * and any notBefore/notAfter (expired and not-yet-valid certificates included).
 *
 * Extensions, in this order, each only when asked for unless said:
 * basicConstraints (critical; always, cA when `ca`, pathLenConstraint with
 * `pathLen`; `basicConstraints: false` leaves it out), keyUsage (critical),
 * extKeyUsage, subjectKeyIdentifier and authorityKeyIdentifier (`keyIds`),
 * nameConstraints (critical), subjectAltName (dNSName, iPAddress, rfc822Name,
 * URI entries), then `extraExtensions` as given. Without `keyIds` the only
 * issuer link OpenSSL checks is the issuer/subject name.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto'

export interface TestCert {
    der: Buffer
    pem: string
    keyPem: string
    x509: X509Certificate
}

export interface CertificateOptions {
    cn: string
    /** DNS names; omit or [] for no subjectAltName extension */
    sans?: string[]
    /** DER of GeneralNames to put in subjectAltName as they are (odd encodings for tests); replaces `sans` */
    sanGeneralNamesDer?: Buffer[]
    /** omitted = self-signed */
    issuer?: TestCert
    ca?: boolean
    notBefore?: Date
    notAfter?: Date
    keyType?: 'ec' | 'rsa'
    /** reuse this private key (PEM) instead of generating one; keyType is then ignored */
    keyPem?: string
    /** basicConstraints pathLenConstraint; needs `ca` */
    pathLen?: number
    /** false: no basicConstraints extension at all (as many real leaves) */
    basicConstraints?: false
    /** keyUsage, critical; [] gives an empty (all bits clear) keyUsage */
    keyUsage?: KeyUsageName[]
    /** extKeyUsage, not critical: 'serverAuth' | 'clientAuth' | 'emailProtection' | 'any' or dotted OIDs */
    extKeyUsage?: string[]
    /** nameConstraints, critical */
    nameConstraints?: { permitted?: Subtree[]; excluded?: Subtree[] }
    /** iPAddress subjectAltName entries (v4 or v6), after the dNSName ones */
    ipSans?: string[]
    /** rfc822Name subjectAltName entries */
    emailSans?: string[]
    /** uniformResourceIdentifier subjectAltName entries */
    uriSans?: string[]
    /** an emailAddress attribute (1.2.840.113549.1.9.1, IA5String) in the subject, after the CN */
    subjectEmail?: string
    /**
     * subjectKeyIdentifier (SHA-1 of the subjectPublicKey bits, RFC 5280 4.2.1.2 method 1) and, when the
     * issuer was made with keyIds too (or for a self-signed certificate), authorityKeyIdentifier = its SKI
     */
    keyIds?: boolean
    /** more extensions, after all others; `value` is the DER inside extnValue's OCTET STRING */
    extraExtensions?: { oid: string; critical?: boolean; value: Buffer }[]
}

export type KeyUsageName = 'digitalSignature' | 'nonRepudiation' | 'keyEncipherment' | 'dataEncipherment' | 'keyAgreement' | 'keyCertSign' | 'cRLSign'

/** a GeneralSubtree base for nameConstraints; `ip` is a CIDR (v4 or v6) */
export type Subtree = { dns: string } | { ip: string } | { email: string } | { uri: string } | { dn: { cn: string } }

// ---- DER encoding (X.690) ---------------------------------------------------

function tlv(tag: number, content: Buffer): Buffer {
    const n = content.length
    let len: Buffer
    if (n < 0x80) len = Buffer.from([n])
    else {
        const bytes: number[] = []
        for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
        len = Buffer.from([0x80 | bytes.length, ...bytes])
    }
    return Buffer.concat([Buffer.from([tag]), len, content])
}

export const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts))
const set = (...parts: Buffer[]): Buffer => tlv(0x31, Buffer.concat(parts))
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner)
const octets = (b: Buffer): Buffer => tlv(0x04, b)
const bitString = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]))
const NULL = Buffer.from([0x05, 0x00])

export function oid(dotted: string): Buffer {
    const arcs = dotted.split('.').map(Number)
    const out: number[] = [arcs[0] * 40 + arcs[1]]
    for (const arc of arcs.slice(2)) {
        const bytes = [arc & 0x7f]
        for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift(0x80 | (v & 0x7f))
        out.push(...bytes)
    }
    return tlv(0x06, Buffer.from(out))
}

function positiveInteger(b: Buffer): Buffer {
    let i = 0
    while (i < b.length - 1 && b[i] === 0) i++
    const v = b.subarray(i)
    return tlv(0x02, v[0] & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v)
}

// RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050
function time(d: Date): Buffer {
    const p = (n: number, w = 2): string => String(n).padStart(w, '0')
    const y = d.getUTCFullYear()
    const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`
    if (y >= 1950 && y < 2050) return tlv(0x17, Buffer.from(`${p(y % 100)}${rest}`, 'latin1'))
    return tlv(0x18, Buffer.from(`${p(y, 4)}${rest}`, 'latin1'))
}

function name(cn: string, email?: string): Buffer {
    const rdns = [set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8'))))]
    if (email !== undefined) rdns.push(set(seq(oid('1.2.840.113549.1.9.1'), tlv(0x16, Buffer.from(email, 'latin1')))))
    return seq(...rdns)
}

function smallInteger(n: number): Buffer {
    if (!Number.isInteger(n) || n < 0) throw new Error(`not a non-negative integer: ${n}`)
    const bytes: number[] = []
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
    return positiveInteger(Buffer.from(bytes.length ? bytes : [0]))
}

// ---- IP addresses -------------------------------------------------------------

function ipv4Bytes(s: string): number[] | null {
    const parts = s.split('.')
    if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) < 256)) return null
    return parts.map(Number)
}

/** the 4 or 16 bytes of an IPv4 or IPv6 address (IPv6 with "::" and a dotted IPv4 tail) */
export function ipBytes(s: string): Buffer {
    const v4 = ipv4Bytes(s)
    if (v4) return Buffer.from(v4)
    const halves = s.split('::')
    if (halves.length > 2) throw new Error(`bad IP address ${s}`)
    const groups = (h: string): number[] => {
        if (h === '') return []
        const out: number[] = []
        const fields = h.split(':')
        fields.forEach((f, i) => {
            const tail = i === fields.length - 1 ? ipv4Bytes(f) : null
            if (tail) out.push((tail[0] << 8) | tail[1], (tail[2] << 8) | tail[3])
            else if (/^[0-9a-f]{1,4}$/i.test(f)) out.push(parseInt(f, 16))
            else throw new Error(`bad IP address ${s}`)
        })
        return out
    }
    const head = groups(halves[0])
    const tail = halves.length === 2 ? groups(halves[1]) : []
    const fill = 8 - head.length - tail.length
    if (halves.length === 2 ? fill < 1 : fill !== 0) throw new Error(`bad IP address ${s}`)
    const all = [...head, ...Array<number>(fill).fill(0), ...tail]
    return Buffer.from(all.flatMap((g) => [g >> 8, g & 0xff]))
}

/** "10.0.0.0/8" → the address then the mask (8 or 32 bytes), as in a nameConstraints iPAddress */
export function cidrBytes(cidr: string): Buffer {
    const [a, p, more] = cidr.split('/')
    if (p === undefined || more !== undefined) throw new Error(`not a CIDR: ${cidr}`)
    const addr = ipBytes(a)
    const bits = Number(p)
    if (!/^\d+$/.test(p) || bits > addr.length * 8) throw new Error(`bad prefix length in ${cidr}`)
    const mask = Buffer.alloc(addr.length)
    for (let i = 0; i < bits; i++) mask[i >> 3] |= 0x80 >> (i & 7)
    return Buffer.concat([addr, mask])
}

// ---- extensions ---------------------------------------------------------------

const KEY_USAGE_BITS: Record<KeyUsageName, number> = {
    digitalSignature: 0,
    nonRepudiation: 1,
    keyEncipherment: 2,
    dataEncipherment: 3,
    keyAgreement: 4,
    keyCertSign: 5,
    cRLSign: 6,
}

/** DER of a named-bit BIT STRING (X.690 11.2.2: trailing zero bits removed, unused-bits count first) */
export function namedBits(bits: number[]): Buffer {
    if (bits.length === 0) return tlv(0x03, Buffer.from([0]))
    const top = Math.max(...bits)
    const bytes = Buffer.alloc((top >> 3) + 1)
    for (const b of bits) bytes[b >> 3] |= 0x80 >> (b & 7)
    const unused = bytes.length * 8 - (top + 1)
    return tlv(0x03, Buffer.concat([Buffer.from([unused]), bytes]))
}

const EKU_OIDS: Record<string, string> = {
    serverAuth: '1.3.6.1.5.5.7.3.1',
    clientAuth: '1.3.6.1.5.5.7.3.2',
    emailProtection: '1.3.6.1.5.5.7.3.4',
    any: '2.5.29.37.0',
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
    return seq(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), octets(value))
}

function subtreeName(t: Subtree): Buffer {
    if ('dns' in t) return tlv(0x82, Buffer.from(t.dns, 'latin1'))
    if ('ip' in t) return tlv(0x87, cidrBytes(t.ip))
    if ('email' in t) return tlv(0x81, Buffer.from(t.email, 'latin1'))
    if ('uri' in t) return tlv(0x86, Buffer.from(t.uri, 'latin1'))
    return tlv(0xa4, name(t.dn.cn)) // directoryName is EXPLICIT (Name is a CHOICE)
}

/** the DER inside a nameConstraints extnValue (RFC 5280 4.2.1.10), no minimum/maximum */
export function nameConstraintsDer(nc: { permitted?: Subtree[]; excluded?: Subtree[] }): Buffer {
    const subtrees = (tag: number, ts: Subtree[]): Buffer => tlv(tag, Buffer.concat(ts.map((t) => seq(subtreeName(t)))))
    const parts: Buffer[] = []
    if (nc.permitted) parts.push(subtrees(0xa0, nc.permitted))
    if (nc.excluded) parts.push(subtrees(0xa1, nc.excluded))
    return seq(...parts)
}

/** the contents of a DER element's value: [tag, value, rest] (short and long lengths) */
function readTlv(b: Buffer): [number, Buffer, Buffer] {
    let len = b[1]
    let off = 2
    if (len & 0x80) {
        const n = len & 0x7f
        len = 0
        for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]
        off = 2 + n
    }
    return [b[0], b.subarray(off, off + len), b.subarray(off + len)]
}

/** subjectKeyIdentifier method 1: SHA-1 of the subjectPublicKey BIT STRING's bits (SPKI given in DER) */
export function keyIdentifier(spki: Buffer): Buffer {
    const [, spkiBody] = readTlv(spki)
    const [, , afterAlg] = readTlv(spkiBody)
    const [tag, bits] = readTlv(afterAlg)
    if (tag !== 0x03) throw new Error('SubjectPublicKeyInfo without a BIT STRING')
    return createHash('sha1').update(bits.subarray(1)).digest()
}

// ---- keys and signatures ------------------------------------------------------

function signatureAlgorithm(key: KeyObject): Buffer {
    if (key.asymmetricKeyType === 'ec') return seq(oid('1.2.840.10045.4.3.2')) // ecdsa-with-SHA256
    if (key.asymmetricKeyType === 'rsa') return seq(oid('1.2.840.113549.1.1.11'), NULL) // sha256WithRSAEncryption
    throw new Error(`unsupported test key type ${key.asymmetricKeyType}`)
}

function newKey(keyType: 'ec' | 'rsa'): KeyObject {
    if (keyType === 'rsa') return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey
}

/** the subject name each factory certificate was made with, for its children's issuer field */
const subjectNames = new WeakMap<TestCert, Buffer>()
/** the subjectKeyIdentifier of each factory certificate made with keyIds, for its children's AKI */
const subjectKeyIds = new WeakMap<TestCert, Buffer>()

const DAY = 86_400_000

export function makeCertificate(opts: CertificateOptions): TestCert {
    const key = opts.keyPem ? createPrivateKey(opts.keyPem) : newKey(opts.keyType ?? 'ec')
    const keyPem = opts.keyPem ?? (key.export({ type: 'pkcs8', format: 'pem' }) as string)
    const spki = createPublicKey(key).export({ type: 'spki', format: 'der' }) as Buffer

    const subject = name(opts.cn, opts.subjectEmail)
    const ski = opts.keyIds ? keyIdentifier(spki) : undefined
    let issuerName = subject
    let signingKey = key
    let aki = ski
    if (opts.issuer) {
        const n = subjectNames.get(opts.issuer)
        if (!n) throw new Error('issuer was not made by makeCertificate')
        issuerName = n
        signingKey = createPrivateKey(opts.issuer.keyPem)
        aki = opts.keyIds ? subjectKeyIds.get(opts.issuer) : undefined
    }
    const now = Date.now()
    const notBefore = opts.notBefore ?? new Date(now - DAY)
    const notAfter = opts.notAfter ?? new Date(now + 365 * DAY)

    if (opts.pathLen !== undefined && (!opts.ca || opts.basicConstraints === false)) throw new Error('pathLen needs ca (and basicConstraints)')
    const exts: Buffer[] = []
    if (opts.basicConstraints !== false) {
        // basicConstraints, critical
        const pathLen = opts.pathLen !== undefined ? [smallInteger(opts.pathLen)] : []
        exts.push(extension('2.5.29.19', true, opts.ca ? seq(tlv(0x01, Buffer.from([0xff])), ...pathLen) : seq()))
    }
    if (opts.keyUsage) exts.push(extension('2.5.29.15', true, namedBits(opts.keyUsage.map((u) => KEY_USAGE_BITS[u]))))
    if (opts.extKeyUsage) exts.push(extension('2.5.29.37', false, seq(...opts.extKeyUsage.map((u) => oid(EKU_OIDS[u] ?? u)))))
    if (ski) exts.push(extension('2.5.29.14', false, octets(ski)))
    if (aki) exts.push(extension('2.5.29.35', false, seq(tlv(0x80, aki))))
    if (opts.nameConstraints) exts.push(extension('2.5.29.30', true, nameConstraintsDer(opts.nameConstraints)))
    if (opts.sanGeneralNamesDer) {
        exts.push(extension('2.5.29.17', false, seq(...opts.sanGeneralNamesDer)))
    } else {
        const names = [
            ...(opts.sans ?? []).map((s) => tlv(0x82, Buffer.from(s, 'latin1'))),
            ...(opts.ipSans ?? []).map((s) => tlv(0x87, ipBytes(s))),
            ...(opts.emailSans ?? []).map((s) => tlv(0x81, Buffer.from(s, 'latin1'))),
            ...(opts.uriSans ?? []).map((s) => tlv(0x86, Buffer.from(s, 'latin1'))),
        ]
        if (names.length > 0) exts.push(extension('2.5.29.17', false, seq(...names)))
    }
    for (const e of opts.extraExtensions ?? []) exts.push(extension(e.oid, !!e.critical, e.value))
    const serial = randomBytes(16)
    serial[0] = (serial[0] & 0x7f) | 0x01
    const sigAlg = signatureAlgorithm(signingKey)
    const tbs = seq(
        explicit(0, tlv(0x02, Buffer.from([2]))), // v3
        positiveInteger(serial),
        sigAlg,
        issuerName,
        seq(time(notBefore), time(notAfter)),
        subject,
        spki,
        explicit(3, seq(...exts)),
    )
    const signature = sign('sha256', tbs, signingKey)
    const der = seq(tbs, sigAlg, bitString(signature))
    const cert = toTestCert(der, keyPem)
    subjectNames.set(cert, subject)
    if (ski) subjectKeyIds.set(cert, ski)
    return cert
}

function toTestCert(der: Buffer, keyPem: string): TestCert {
    const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n')
    return { der, pem: `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`, keyPem, x509: new X509Certificate(der) }
}

/**
 * The same certificate with one bit of its signature flipped: still well-formed DER,
 * but its signature no longer verifies. Keeps the issuer link, for bad-signature tests.
 */
export function withBadSignature(cert: TestCert): TestCert {
    const der = Buffer.from(cert.der)
    der[der.length - 1] ^= 0x01
    const bad = toTestCert(der, cert.keyPem)
    const n = subjectNames.get(cert)
    if (n) subjectNames.set(bad, n)
    const ski = subjectKeyIds.get(cert)
    if (ski) subjectKeyIds.set(bad, ski)
    return bad
}

/** "u s m hex": the TLSA record for this certificate, computed independently of lib/ */
export function tlsaText(cert: TestCert, usage: number, selector: number, mtype: number): string {
    const content = selector === 0 ? cert.der : (cert.x509.publicKey.export({ type: 'spki', format: 'der' }) as Buffer)
    const data = mtype === 0 ? content : mtype === 1 ? createHash('sha256').update(content).digest() : createHash('sha512').update(content).digest()
    return `${usage} ${selector} ${mtype} ${data.toString('hex')}`
}
