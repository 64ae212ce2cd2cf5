// PKIX ("WebPKI") authentication of a TLS server, as MTA-STS asks it (RFC 8461 4.2): the chain valid to
// a trusted CA (node's store, or the CA file the operator names) and the certificate valid for the host
// name (RFC 6125, a wildcard for one left-most label), and the RFC 8460 4.3 result type of each way it
// fails. The one place such failures are named, for the MX hosts of an MTA-STS policy and for the policy
// host itself. Pure: it reads what node's TLS already found.
import { checkServerIdentity, type PeerCertificate } from 'node:tls'
import type { ResultType } from './result-type'

export type WebPkiCheck = { ok: true } | { ok: false; code: string; detail: string; resultType: ResultType }

// OpenSSL's verification errors, as node names them, by what RFC 8460 4.3.1 calls them
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID'])
const NOT_TRUSTED = new Set([
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'UNABLE_TO_GET_ISSUER_CERT',
    'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'CERT_UNTRUSTED',
    'CERT_REJECTED',
])
const HOST_MISMATCH = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH'])
const OTHER = new Set([
    'CERT_SIGNATURE_FAILURE',
    'CERT_CHAIN_TOO_LONG',
    'CERT_REVOKED',
    'INVALID_CA',
    'PATH_LENGTH_EXCEEDED',
    'INVALID_PURPOSE',
    'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
    'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
    'ERROR_IN_CERT_NOT_BEFORE_FIELD',
    'ERROR_IN_CERT_NOT_AFTER_FIELD',
])

/** A verification error code of node's TLS (a certificate that is not PKIX-valid), or not. */
export function isCertificateError(code: string | undefined): boolean {
    return code !== undefined && (EXPIRED.has(code) || NOT_TRUSTED.has(code) || HOST_MISMATCH.has(code) || OTHER.has(code))
}

/** RFC 8460 4.3.1: the result type of a certificate verification error. */
export function certificateResultType(code: string): ResultType {
    if (EXPIRED.has(code)) return 'certificate-expired'
    if (NOT_TRUSTED.has(code)) return 'certificate-not-trusted'
    if (HOST_MISMATCH.has(code)) return 'certificate-host-mismatch'
    return 'validation-failure'
}

/** What a TLS client socket tells of its peer (node's TLSSocket has these). */
export interface PeerFacts {
    authorized: boolean
    authorizationError?: unknown
    getPeerCertificate(detailed?: boolean): PeerCertificate | Record<string, never>
}

/**
 * RFC 8461 4.2: the peer's chain valid to a trusted CA, and its certificate valid for `host`. Never throws.
 * Call it before lib/peer-chain's presentedChain on the same socket (after which node gives no certificate).
 */
export function webPkiCheck(host: string, peer: PeerFacts | undefined): WebPkiCheck {
    if (!peer) return { ok: false, code: 'NO_TLS_SOCKET', detail: 'no TLS socket to check', resultType: 'validation-failure' }
    try {
        if (!peer.authorized) {
            const e = peer.authorizationError as { code?: string; message?: string } | string | undefined
            const code = typeof e === 'string' ? e : (e?.code ?? String(e?.message ?? 'UNKNOWN'))
            const message = typeof e === 'string' ? e : (e?.message ?? code)
            return {
                ok: false,
                code,
                detail: `the certificate chain is not valid: ${message}${message === code ? '' : ` (${code})`}`,
                resultType: certificateResultType(code),
            }
        }
        const cert = peer.getPeerCertificate(false)
        if (!cert || Object.keys(cert).length === 0)
            return { ok: false, code: 'NO_CERTIFICATE', detail: 'the server presented no certificate', resultType: 'validation-failure' }
        const mismatch = checkServerIdentity(host, cert as PeerCertificate)
        if (mismatch) {
            const code = (mismatch as NodeJS.ErrnoException).code ?? 'ERR_TLS_CERT_ALTNAME_INVALID'
            return { ok: false, code, detail: `the certificate is not valid for ${host}: ${mismatch.message}`, resultType: 'certificate-host-mismatch' }
        }
        return { ok: true }
    } catch (e) {
        return {
            ok: false,
            code: 'CHECK_FAILED',
            detail: `the certificate could not be checked: ${(e as Error)?.message ?? e}`,
            resultType: 'validation-failure',
        }
    }
}
