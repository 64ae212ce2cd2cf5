// RFC 8460 4: what one delivery attempt contributes to the TLS report of its recipient domain. Pure:
// the facts come from the policy decision and the session guard, the result goes to a store.
//
// What counts, following Postfix's TLSRPT (TLSRPT_README, tlsrpt_wrapper.c) and RFC 8460 4.3:
//  - one result per TLS session: a session that negotiated TLS (success) or failed to under a policy
//    that required it (failure); a connection that never reached TLS for other reasons (refused, closed
//    after the message) is not a TLS result, and neither is a plaintext delivery where no policy asked
//    for TLS (RFC 8460 4.3.4: transient and connection errors need not be reported);
//  - recoverable problems are not failures: a usable TLSA record beside unusable ones authenticates, and
//    the session is a success;
//  - every TLSA record unusable is a failure (tlsa-invalid, "all-TLSA-records-unusable"), even when the
//    message then went out over unauthenticated TLS, as in Postfix; unless the server offered no STARTTLS,
//    which is then the failure (starttls-not-supported, found before the records matter);
//  - where this plugin goes beyond Postfix: an MX host skipped because its TLSA lookup failed validation
//    is a dnssec-invalid failure, and one skipped because policy dane-only found no secure TLSA records a
//    dane-required failure: the two result types RFC 8460 4.3.2.1 defines for exactly these cases (Postfix
//    defers before any session and reports nothing).
import type { HostMode } from '../policy'
import type { ResultType } from '../result-type'

export type PolicyType = 'tlsa' | 'sts' | 'no-policy-found'

/** The policy a result is counted under (RFC 8460 4.4 "policy"). */
export interface AppliedPolicy {
    type: PolicyType
    /** tlsa: each TLSA record of the RRset in presentation form, sorted; sts: the policy's lines */
    strings: string[]
    /** tlsa: the TLSA base domain (RFC 8460 1.1); otherwise the recipient domain */
    domain: string
    /** tlsa: the MX host the records are for */
    mxHosts: string[]
}

/** RFC 8460 4.4 failure-details of one session (without the count, which the report adds up). */
export interface FailureDetails {
    resultType: ResultType
    sendingMtaIp?: string
    receivingMxHostname?: string
    receivingMxHelo?: string
    receivingIp?: string
    additionalInformation?: string
    failureReasonCode?: string
}

/** One session's contribution to the report of `recipientDomain` for the UTC day of `at`. */
export interface SessionResult {
    /** unique: the store counts a result once however often it is offered */
    id: string
    /** milliseconds since the epoch */
    at: number
    recipientDomain: string
    policy: AppliedPolicy
    ok: boolean
    failure?: FailureDetails
}

/** What the plugin knows of an attempt when it ends (lib/haraka-adapter Attempt, lib/policy HostDecision). */
export interface AttemptFacts {
    id: string
    at: number
    recipientDomain: string
    host: string
    mode: HostMode
    tlsaBase?: string
    /** the TLSA records in presentation form, as published (usable or not) */
    tlsaRecords: string[]
    /** how many of them are usable (RFC 7672 3.1) */
    usableRecords: number
    address?: string
    localAddress?: string
    helo?: string
    outcome: 'verified' | 'unauthenticated-tls' | 'opportunistic-tls' | 'opportunistic-plaintext' | 'plaintext' | 'failed' | 'skipped'
    resultType?: ResultType
    /** a short code for failure-reason-code (the verifier's failure code, for example) */
    reasonCode?: string
}

/** The TLSRPT result of one attempt, or null when the attempt is not a TLS result (see above). */
export function sessionResult(f: AttemptFacts): SessionResult | null {
    const allUnusable = f.tlsaRecords.length > 0 && f.usableRecords === 0
    const tlsaPolicy = (): AppliedPolicy => ({ type: 'tlsa', strings: [...f.tlsaRecords].sort(), domain: f.tlsaBase ?? f.host, mxHosts: [f.host] })
    const noPolicy: AppliedPolicy = { type: 'no-policy-found', strings: [], domain: f.recipientDomain, mxHosts: [] }
    const base = { id: f.id, at: f.at, recipientDomain: f.recipientDomain }
    const failure = (policy: AppliedPolicy, resultType: ResultType, reasonCode?: string): SessionResult => ({
        ...base,
        policy,
        ok: false,
        failure: details(f, resultType, reasonCode),
    })

    if (f.outcome === 'skipped') {
        if (f.resultType === 'dnssec-invalid') return failure(tlsaPolicy(), 'dnssec-invalid', f.reasonCode)
        if (f.resultType === 'dane-required') return failure(noPolicy, 'dane-required', f.reasonCode)
        return null
    }
    // every TLSA record unusable: the DANE policy failed, whatever the session did next
    if (allUnusable && (f.mode === 'encrypt' || f.mode === 'dane')) {
        if (f.outcome === 'failed') {
            if (!f.resultType) return null
            // the server offered no TLS at all: that, not the records, is what stopped this session
            if (f.resultType === 'starttls-not-supported') return failure(tlsaPolicy(), 'starttls-not-supported', f.reasonCode)
        }
        return failure(tlsaPolicy(), 'tlsa-invalid', 'all-TLSA-records-unusable')
    }
    const policy = f.mode === 'dane' ? tlsaPolicy() : noPolicy
    switch (f.outcome) {
        case 'verified':
        case 'unauthenticated-tls':
        case 'opportunistic-tls':
            return { ...base, policy, ok: true }
        case 'failed':
            // a failure with no RFC 8460 result type is not a TLS failure (a connection lost mid-message)
            return f.resultType ? failure(policy, f.resultType, f.reasonCode) : null
        default:
            return null
    }
}

function details(f: AttemptFacts, resultType: ResultType, reasonCode?: string): FailureDetails {
    const d: FailureDetails = { resultType }
    if (f.localAddress) d.sendingMtaIp = f.localAddress
    d.receivingMxHostname = f.host
    if (f.helo) d.receivingMxHelo = f.helo
    if (f.address) d.receivingIp = f.address
    if (reasonCode) d.failureReasonCode = reasonCode
    return d
}
