// RFC 8460 4.3: the result types of a failed TLS negotiation (C25), the one vocabulary every
// module uses for them: the policy for DNS reasons, the session guard and the verifiers for the
// session's, MTA-STS for its policy's, the delivery log and the command for reporting them.
export type ResultType =
    | 'starttls-not-supported'
    | 'certificate-host-mismatch'
    | 'certificate-expired'
    | 'certificate-not-trusted'
    | 'validation-failure'
    | 'tlsa-invalid'
    | 'dnssec-invalid'
    | 'dane-required'
    | 'sts-policy-fetch-error'
    | 'sts-policy-invalid'
    | 'sts-webpki-invalid'
