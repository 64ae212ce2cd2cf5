// MTA-STS (RFC 8461) on top of the DANE decision: which MX hosts a policy covers and what it asks of
// them. Pure: the decision is lib/policy's, the policy in force lib/mtasts/service's.
//
// The rules, each a conformance item (docs/conformance.md):
//  C37  DANE first (RFC 8461 2: MTA-STS never overrides a failing DANE validation). MTA-STS is asked
//       only under the `dane` policy word, for a decision to deliver, and only for the MX hosts the DNS
//       proved have no DANE (mode opportunistic: no secure TLSA records, or insecure addresses). A host
//       with DANE keeps DANE's rules whatever the policy says; a host skipped for a DNSSEC failure stays
//       skipped (a failed lookup is never "no DANE"); the other words (may, encrypt, none, dane-only, and
//       the exception list, which makes a domain `may`) decide for themselves.
//  C38  enforce: a host the policy's mx patterns do not allow is not used (result validation-failure);
//       an allowed host needs STARTTLS and a PKIX-valid certificate for its MX host name (mode sts);
//       with no host left, the message is deferred (C11).
//  C39  testing: the hosts are used as before; each session's certificate is checked and the outcome,
//       with hosts not allowed, reported (RFC 8460), never enforced. mode none: nothing is restricted.
import { conclude, type Decision, type HostDecision } from '../policy'
import { allowedBy, type StsPolicy } from './policy'
import type { StsPolicyResultType } from './cache-rules'
import type { StsOutcome } from './service'

/** MTA-STS as applied to one decision, for the log, the sessions and the TLS report. */
export interface StsApplied {
    /** the policy in force (mode none included), or none */
    policy?: StsPolicy
    /** the `_mta-sts` record's id, when there is one */
    id?: string
    /** how the policy in force was arrived at, or why there is none */
    reason: string
    /** RFC 8460 4.3.2.2: why no policy could be had (or a refresh failed) */
    resultType?: StsPolicyResultType
}

/** C37: whether MTA-STS has a say in this decision, and why. */
export function stsAsked(d: Decision): { ask: boolean; why: string } {
    if (d.policy !== 'dane') return { ask: false, why: `the operator's policy for this destination is ${d.policy}${d.exception ? ' (exception list)' : ''}` }
    if (d.action !== 'deliver') return { ask: false, why: `the DANE decision is to ${d.action} (${d.reason})` }
    const open = d.hosts.filter((h) => h.mode === 'opportunistic')
    if (open.length === 0) return { ask: false, why: 'DANE (or a failed lookup) decides every MX host this destination uses (RFC 8461 2)' }
    return { ask: true, why: `the DNS shows no DANE for ${open.map((h) => h.name).join(', ')}` }
}

/** C37-C39: the decision with the policy applied to its hosts without DANE; `o` is the policy in force now. */
export function applySts(d: Decision, o: StsOutcome): Decision {
    const sts: StsApplied = { policy: o.inForce, id: o.id, reason: o.reason }
    if (o.resultType) sts.resultType = o.resultType
    const p = o.inForce
    if (!p || p.mode === 'none') return { ...d, sts }
    const hosts = d.hosts.map((h) => (h.mode === 'opportunistic' ? stsHost(h, p) : h))
    return conclude({ ...d, sts, hosts })
}

function stsHost(h: HostDecision, p: StsPolicy): HostDecision {
    const pattern = allowedBy(h.name, p)
    if (p.mode === 'testing') {
        const what = pattern ? `allowed by mx ${pattern}` : `not among the policy's mx (${p.mx.join(', ')})`
        return { ...h, sts: { mode: 'testing', allowedBy: pattern }, reason: `${h.reason}; MTA-STS testing: ${what}; TLS checked and reported, not enforced` }
    }
    if (!pattern)
        return {
            ...h,
            mode: 'skip',
            sts: { mode: 'enforce' },
            reason: `${h.reason}; MTA-STS enforce: not among the policy's mx (${p.mx.join(', ')}): host not used`,
            resultType: 'validation-failure',
        }
    return {
        ...h,
        mode: 'sts',
        sts: { mode: 'enforce', allowedBy: pattern },
        reason: `${h.reason}; MTA-STS enforce (allowed by mx ${pattern}): STARTTLS and a PKIX-valid certificate for ${h.name} required`,
    }
}

/** RFC 8460 4.4 policy-string of an MTA-STS policy: its fields, one line each, as the policy gives them. */
export function stsPolicyStrings(p: StsPolicy): string[] {
    return ['version: STSv1', `mode: ${p.mode}`, ...p.mx.map((m) => `mx: ${m}`), `max_age: ${p.maxAge}`]
}
