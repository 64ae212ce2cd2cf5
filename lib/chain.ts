/**
 * The presented certificate chain, parsed once per connection, and the certificate association data
 * (RFC 6698 2.1.2, 2.1.3) its certificates would carry: what lib/verify matches TLSA records against.
 * Pure, never throws.
 */
import { createHash, X509Certificate } from 'node:crypto'
import { certificateFields } from './names'
import { certificateFact } from './cert-facts'
import type { TlsaRecord } from './tlsa'

export interface ParsedChain {
    certs: X509Certificate[]
    der: Buffer[]
    /** the leaf (or the chain as a whole) is unusable */
    error?: string
    /** certificates above the leaf left out: unreadable, or beyond MAX_CHAIN (DANE-TA cannot use them; DANE-EE never looks) */
    dropped?: string[]
}

/** Presented certificates considered at all (the leaf included); a real chain has a handful */
export const MAX_CHAIN = 20
function errorText(e: unknown): string {
    return e instanceof Error ? e.message : String(e)
}

/**
 * Parse the presented chain once per connection. Never throws. An unusable leaf sets `error`;
 * an unusable certificate above it is dropped (noted in `dropped`), since DANE-EE ignores
 * everything but the leaf (RFC 7672 3.1.1) and DANE-TA simply cannot build through it.
 */
export function parseChain(der: (Buffer | X509Certificate)[]): ParsedChain {
    const out: ParsedChain = { certs: [], der: [] }
    if (!Array.isArray(der)) {
        out.error = 'chain is not an array of DER certificates'
        return out
    }
    for (let i = 0; i < der.length; i++) {
        if (i >= MAX_CHAIN) {
            ;(out.dropped ??= []).push(`${der.length - MAX_CHAIN} certificate(s) beyond the first ${MAX_CHAIN}`)
            break
        }
        const b: unknown = der[i]
        try {
            // a certificate node has already parsed (the chain as the TLS socket hands it over) is not parsed again:
            // constructing an X509Certificate costs more than the DANE checks themselves
            const cert = b instanceof X509Certificate ? b : fromDer(b)
            const buf = cert.raw
            certificateFields(cert) // the public key DANE reads must be readable too
            // the same certificate sent twice is one certificate (path building needs each once)
            if (out.der.some((d) => d.equals(buf))) continue
            out.certs.push(cert)
            out.der.push(buf)
        } catch (e) {
            if (i === 0) {
                out.error = `certificate at position 0 (the leaf): ${errorText(e)}`
                break
            }
            ;(out.dropped ??= []).push(`certificate at position ${i}: ${errorText(e)}`)
        }
    }
    return out
}

function fromDer(b: unknown): X509Certificate {
    if (!(b instanceof Uint8Array)) throw new Error('not a byte buffer or certificate')
    const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
    // parsed once per certificate bytes (lib/cert-facts): node's parse costs more than the DANE checks themselves
    return certificateFact(buf, 'x509', (der) => {
        const cert = new X509Certificate(der)
        // X509Certificate also accepts PEM and ignores bytes after the DER: insist on exactly one DER certificate
        if (cert.raw.length !== der.length || !cert.raw.equals(der)) {
            throw new Error(`not exactly one DER certificate (${der.length} bytes given, certificate is ${cert.raw.length})`)
        }
        return cert
    })
}

// RFC 6698 2.1.2: selector 0 = the whole certificate, 1 = SubjectPublicKeyInfo (both DER)
function selectedContent(cert: X509Certificate | Buffer, selector: number): Buffer {
    if (selector === 0) return Buffer.isBuffer(cert) ? cert : cert.raw
    if (selector === 1) return certificateFields(cert).spki
    throw new RangeError(`unknown TLSA selector ${selector}`)
}

// RFC 6698 2.1.3: matching type 0 = exact, 1 = SHA2-256, 2 = SHA2-512
function matchingDigest(content: Buffer, mtype: number): Buffer {
    if (mtype === 0) return content
    if (mtype === 1) return createHash('sha256').update(content).digest()
    if (mtype === 2) return createHash('sha512').update(content).digest()
    throw new RangeError(`unknown TLSA matching type ${mtype}`)
}

// RFC 6698 2.1: the certificate association data a record would carry for this certificate
export function associationData(cert: X509Certificate | Buffer, selector: number, mtype: number): Buffer {
    return matchingDigest(selectedContent(cert, selector), mtype)
}

/** the association data of each certificate of one chain, computed at most once per (certificate bytes, selector, mtype) (lib/cert-facts) */
export class Matcher {
    constructor(private readonly certs: X509Certificate[]) {}

    data(index: number, selector: number, mtype: number): Buffer {
        return certificateFact(this.certs[index], `tlsa ${selector} ${mtype}`, (der) => associationData(der, selector, mtype))
    }

    matches(index: number, r: TlsaRecord): boolean {
        return this.data(index, r.selector, r.mtype).equals(r.data)
    }
}
