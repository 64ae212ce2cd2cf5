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
//  - MTA-STS (RFC 8461, RFC 8460 4.3.2.2), for hosts without DANE: under a policy in force, a session is
//    counted under the sts policy: an enforced host that verified is a success, one that failed a failure
//    of its kind; in testing mode a session is a failure when the host is not among the policy's mx
//    (validation-failure), its certificate is not PKIX-valid (the certificate-* types) or it offered no
//    STARTTLS, and a success otherwise; a host an enforced policy left out is a validation-failure without
//    a session. When no policy could be had (its fetch failed, it was invalid, its host's certificate was
//    not valid) and none is kept, each session is that failure (sts-policy-fetch-error, sts-policy-invalid,
//    sts-webpki-invalid) under the sts policy type, without a policy string;
//  - where this plugin goes beyond Postfix: an MX host skipped because its TLSA lookup failed validation
//    is a dnssec-invalid failure, and one skipped because policy dane-only found no secure TLSA records a
//    dane-required failure: the two result types RFC 8460 4.3.2.1 defines for exactly these cases (Postfix
//    defers before any session and reports nothing).
import type { HostMode } from '../policy'
import type { ResultType } from '../result-type'
import type { StsPolicy } from '../mtasts/policy'
import type { StsPolicyResultType } from '../mtasts/cache-rules'
import { stsPolicyStrings } from '../mtasts/apply'

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
    outcome: 'verified' | 'pkix-verified' | 'unauthenticated-tls' | 'opportunistic-tls' | 'opportunistic-plaintext' | 'plaintext' | 'failed' | 'skipped'
    resultType?: ResultType
    /** a short code for failure-reason-code (the verifier's failure code, for example) */
    reasonCode?: string
    /** MTA-STS, when the decision asked it for this host (lib/mtasts/apply) */
    sts?: StsFacts
}

/** What a session's TLS report needs of MTA-STS. */
export interface StsFacts {
    /** the policy's mode for this host; undefined when no policy is in force (or mode none) */
    mode?: 'enforce' | 'testing'
    /** the host is among the policy's mx */
    allowed: boolean
    policy?: StsPolicy
    /** why no policy could be had */
    resultType?: StsPolicyResultType
    /** the session's PKIX check (lib/webpki), once TLS was up */
    pkix?: { ok: true } | { ok: false; code: string; resultType: ResultType }
}

/** the reason code of a host an MTA-STS policy does not allow */
export const NOT_IN_STS_POLICY = 'mx-not-in-sts-policy'

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
        if (f.sts?.mode === 'enforce' && f.resultType === 'validation-failure') return failure(stsPolicy(f), 'validation-failure', NOT_IN_STS_POLICY)
        return null
    }
    if (f.sts && (f.mode === 'sts' || f.mode === 'opportunistic')) {
        const r = stsResult(f, f.sts, base, failure)
        if (r !== undefined) return r
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
        case 'pkix-verified':
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

function stsPolicy(f: AttemptFacts): AppliedPolicy {
    const p = f.sts?.policy
    return { type: 'sts', strings: p ? stsPolicyStrings(p) : [], domain: f.recipientDomain, mxHosts: p ? [...p.mx] : [] }
}

/** A session under MTA-STS (see the head of this file); undefined: MTA-STS has nothing to say of it. */
function stsResult(
    f: AttemptFacts,
    sts: StsFacts,
    base: Pick<SessionResult, 'id' | 'at' | 'recipientDomain'>,
    failure: (policy: AppliedPolicy, resultType: ResultType, reasonCode?: string) => SessionResult,
): SessionResult | null | undefined {
    const policy = stsPolicy(f)
    const session = f.outcome === 'opportunistic-tls' || f.outcome === 'opportunistic-plaintext' || f.outcome === 'pkix-verified'
    if (!sts.policy && sts.resultType) return session ? failure(policy, sts.resultType) : undefined
    if (f.mode === 'sts') {
        if (f.outcome === 'pkix-verified') return { ...base, policy, ok: true }
        // dane-required: Haraka itself would not use the offered STARTTLS (enable_tls=false, no_tls_hosts), a fault of this end
        if (f.outcome === 'failed')
            return f.resultType && f.resultType !== 'dane-required'
                ? failure(policy, f.resultType, sts.pkix && !sts.pkix.ok ? sts.pkix.code : f.reasonCode)
                : null
        return null
    }
    if (sts.mode !== 'testing') return undefined
    if (f.outcome === 'opportunistic-plaintext') return failure(policy, 'starttls-not-supported')
    if (f.outcome !== 'opportunistic-tls') return f.outcome === 'failed' && f.resultType ? failure(policy, f.resultType, f.reasonCode) : null
    if (!sts.allowed) return failure(policy, 'validation-failure', NOT_IN_STS_POLICY)
    if (sts.pkix && !sts.pkix.ok) return failure(policy, sts.pkix.resultType, sts.pkix.code)
    return { ...base, policy, ok: true }
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
