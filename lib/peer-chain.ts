// The certificate chain a TLS peer presented, as DER, for DANE verification.
// Shared by the Haraka glue (lib/haraka-tls.ts) and the live probe of the
// command-line tool (lib/probe.ts), so both verify exactly the same bytes.
import type { TLSSocket, PeerCertificate, DetailedPeerCertificate } from 'node:tls'

/** DER certificates as presented (leaf first, then the issuers OpenSSL found among them). */
export function presentedChain(sock: TLSSocket | undefined): Buffer[] {
    if (!sock) return []
    const out: Buffer[] = []
    let cert: PeerCertificate | DetailedPeerCertificate | undefined = sock.getPeerCertificate(true)
    const seen = new Set<string>()
    while (cert && cert.raw && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256)
        out.push(cert.raw)
        cert = (cert as DetailedPeerCertificate).issuerCertificate
    }
    return out
}
