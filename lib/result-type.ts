// RFC 8460 4.3: the result types of a failed TLS negotiation (C25), the one vocabulary every
// module uses for them: the policy for DNS reasons, the session guard and the verifier for the
// session's, the delivery log and the command for reporting them.
export type ResultType =
    'starttls-not-supported' | 'certificate-host-mismatch' | 'certificate-expired' | 'validation-failure' | 'tlsa-invalid' | 'dnssec-invalid' | 'dane-required'
