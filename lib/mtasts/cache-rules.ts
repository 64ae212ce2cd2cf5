// MTA-STS (RFC 8461 5, 10.2): which policy is in force for a domain, when to fetch it again, and what
// to keep, as pure rules over the cached entry, the `_mta-sts` TXT answer and a fetch's outcome. The
// store, the resolver and the HTTPS fetch are the caller's. The rule that matters most: nothing an
// attacker can make happen on the path (a TXT record that vanishes or is blocked, a fetch that fails, a
// policy served invalid) erases a policy that has not expired (mailauth drops it: then blocking the TXT
// record erases `enforce`).
import type { StsPolicy, StsRecordLookup } from './policy'

/** A policy as kept, with the id of the record it was fetched under and when it stops applying. */
export interface CachedPolicy {
    policy: StsPolicy
    id: string
    fetchedAt: number
    /** fetchedAt + max_age */
    expires: number
}

/**
 * RFC 8461 10.2: a kept policy is fetched again before it expires, whatever the record says, so that an
 * attacker who blocks the TXT record cannot wait it out: within its last day, or its last half when it
 * lasts under two days. In steady state that is one fetch per domain per max_age.
 */
export const REFRESH_BEFORE_MS = 24 * 3600_000

function dueForRefresh(now: number, kept: CachedPolicy): boolean {
    return kept.expires - now <= Math.min(REFRESH_BEFORE_MS, (kept.expires - kept.fetchedAt) / 2)
}

/** What the TXT lookup said: a record, no (valid) record, or no answer (SERVFAIL, timeout). */
export type TxtOutcome = StsRecordLookup | { kind: 'failed'; reason: string }

export type FetchPlan = { fetch: true; why: string } | { fetch: false; why: string }

/** Whether to fetch the policy now (RFC 8461 5.1): a new or changed id, or a kept policy close to its expiry. */
export function planFetch(now: number, cached: CachedPolicy | undefined, txt: TxtOutcome): FetchPlan {
    const live = cached && cached.expires > now ? cached : undefined
    if (txt.kind === 'record') {
        if (!live) return { fetch: true, why: cached ? 'the kept policy expired' : 'no policy kept' }
        if (live.id !== txt.record.id) return { fetch: true, why: `the record's id changed (${live.id} → ${txt.record.id})` }
        if (dueForRefresh(now, live)) return { fetch: true, why: 'the kept policy is close to its expiry: refreshed' }
        return { fetch: false, why: `the kept policy has the record's id ${live.id}` }
    }
    // no record, or no answer: nothing to fetch on its say; a live policy is refreshed from its host when due
    if (live && dueForRefresh(now, live))
        return { fetch: true, why: `no usable record (${txt.reason}); the kept policy is close to its expiry: refreshed from its host` }
    return { fetch: false, why: live ? `no usable record (${txt.reason}); the kept policy stays until it expires` : `no usable record (${txt.reason})` }
}

/** A fetch's outcome, the policy parsed: a policy, no policy fetched (HTTP, TLS, timeout), or one that is invalid. */
export type FetchOutcome =
    { kind: 'policy'; policy: StsPolicy } | { kind: 'fetch-error'; reason: string; webpki?: boolean } | { kind: 'invalid'; reason: string }

/** RFC 8460 4.3.2.2: why no policy could be had: no fetch, an invalid policy, or the policy host's certificate */
export type StsPolicyResultType = 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid'

export interface StsState {
    /** the policy to apply to this delivery, or none */
    inForce?: StsPolicy
    /** what to keep now (undefined: drop what was kept) */
    keep?: CachedPolicy
    /** why, for the log; and the RFC 8460 result type when a policy could not be had */
    reason: string
    resultType?: StsPolicyResultType
}

/**
 * The policy in force after the TXT lookup and, when planFetch said so, the fetch (`fetched` undefined
 * when none was made). A policy fetched replaces the kept one; a policy with max_age 0 applies to this
 * delivery and is not kept. A failed or invalid fetch leaves the kept policy in force until it expires.
 */
export function stsState(now: number, cached: CachedPolicy | undefined, txt: TxtOutcome, fetched?: FetchOutcome): StsState {
    const live = cached && cached.expires > now ? cached : undefined
    if (fetched?.kind === 'policy') {
        const id = txt.kind === 'record' ? txt.record.id : (live?.id ?? '')
        const keep = fetched.policy.maxAge > 0 ? { policy: fetched.policy, id, fetchedAt: now, expires: now + fetched.policy.maxAge * 1000 } : undefined
        return {
            inForce: fetched.policy,
            keep,
            reason: `policy fetched (id ${id || 'unknown'}, mode ${fetched.policy.mode}, max_age ${fetched.policy.maxAge} s)`,
        }
    }
    if (fetched) {
        // RFC 8460 4.3.2.2: an invalid policy, a policy host that failed PKIX and one that could not be fetched are told apart
        const resultType: StsPolicyResultType =
            fetched.kind === 'invalid' ? 'sts-policy-invalid' : fetched.webpki ? 'sts-webpki-invalid' : 'sts-policy-fetch-error'
        if (live)
            return {
                inForce: live.policy,
                keep: live,
                reason: `the fetch failed (${fetched.reason}); the kept policy (id ${live.id}) stays in force until it expires`,
                resultType,
            }
        return { reason: `no policy: the fetch failed (${fetched.reason})`, resultType }
    }
    if (live) return { inForce: live.policy, keep: live, reason: `the kept policy (id ${live.id}) is in force` }
    return { reason: txt.kind === 'record' ? 'no policy' : `no policy (${txt.reason})` }
}
