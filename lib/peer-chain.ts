// The certificate chain a TLS peer presented, as DER, for DANE verification.
// Shared by the Haraka glue (lib/haraka-adapter.ts) and the live probe of the
// command-line tool (lib/probe.ts), so both verify exactly the same bytes.
//
// Why getPeerX509Certificate() and not getPeerCertificate(true): node 20's
// getPeerCertificate(true) rebuilds the chain itself (src/crypto/crypto_common.cc,
// GetPeerCert → AddIssuerChainToObject): from the presented list it takes, for each
// certificate, the FIRST other one that X509_check_issued accepts (names, key
// identifiers, keyUsage; no signature check), drops every certificate that is not
// picked, and then appends issuers from the local trust store that the server never
// sent. A same-named decoy ahead of the real intermediate therefore hides the real one.
// getPeerX509Certificate() (src/crypto/crypto_x509.cc, X509Certificate::GetPeerCert)
// links `issuerCertificate` in the order the certificates arrived, every one of them,
// nothing added: the Certificate message as sent. It moves the certificates out of the
// SSL object's peer chain, so it can be called once per connection, and
// getPeerCertificate() returns {} afterwards: call this after Haraka has read the
// peer certificate (it does so before the upgrade callback this glue wraps).
import type { TLSSocket } from 'node:tls'
import type { X509Certificate } from 'node:crypto'

/** More than any real chain; the verifier considers only the first MAX_CHAIN (lib/verify.ts) anyway. */
const MAX_WALK = 64

/**
 * The certificates in the order the peer sent them, leaf first, as node parsed them. Call once per connection
 * (see above). `leafOnly`: the leaf alone, for TLSA records that are all DANE-EE, which look at nothing else
 * (RFC 7672 3.1.1): the rest of the chain is not walked, nor parsed and checked after it.
 */
export function presentedChain(sock: TLSSocket | undefined, leafOnly = false): X509Certificate[] {
    if (!sock) return []
    let cert: X509Certificate | undefined = sock.getPeerX509Certificate()
    if (leafOnly) return cert ? [cert] : []
    const out: X509Certificate[] = []
    const seen = new Set<X509Certificate>()
    while (cert && !seen.has(cert) && out.length < MAX_WALK) {
        seen.add(cert)
        out.push(cert)
        cert = cert.issuerCertificate
    }
    return out
}
