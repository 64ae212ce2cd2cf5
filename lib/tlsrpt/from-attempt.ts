// The plugin's own records of an attempt (lib/haraka-adapter Attempt, lib/policy HostDecision) as the
// facts lib/tlsrpt/result counts. Pure.
import { randomUUID } from 'node:crypto'
import type { HostDecision } from '../policy'
import type { ResultType } from '../result-type'
import { unusableReason, type TlsaRecord } from '../tlsa'
import type { Outcome } from '../log'
import { sessionResult, type SessionResult, type StsFacts } from './result'
import type { StsApplied } from '../mtasts/apply'
import type { StsContext } from '../haraka-adapter'

/** What lib/haraka-adapter's Attempt holds that a report needs. */
export interface AttemptLike {
    id: string
    ctx: { domain: string; host: string; mode: HostDecision['mode']; tlsaBase?: string; records: TlsaRecord[]; sts?: StsContext }
    address: string
    localAddress?: string
    guard: { helo?: string }
    verify?: { authenticated: boolean; failure?: { code: string } }
    pkix?: StsFacts['pkix']
    failure?: { resultType?: ResultType }
}

function usableCount(records: TlsaRecord[]): number {
    return records.filter((r) => unusableReason(r) === null).length
}

/** The result of a connection attempt that ended (delivered, or failed and the next MX host tried). */
export function resultOfAttempt(a: AttemptLike, outcome: Outcome, at: number = Date.now()): SessionResult | null {
    const verifyCode = a.verify && !a.verify.authenticated ? a.verify.failure?.code : undefined
    return sessionResult({
        id: a.id,
        at,
        recipientDomain: a.ctx.domain,
        host: a.ctx.host,
        mode: a.ctx.mode,
        tlsaBase: a.ctx.tlsaBase,
        tlsaRecords: a.ctx.records.map((r) => r.text),
        usableRecords: usableCount(a.ctx.records),
        address: a.address,
        localAddress: a.localAddress || undefined,
        helo: a.guard.helo || undefined,
        outcome,
        resultType: a.failure?.resultType,
        reasonCode: verifyCode,
        sts: a.ctx.sts && {
            mode: a.ctx.sts.mode,
            allowed: a.ctx.sts.allowedBy !== undefined,
            policy: a.ctx.sts.policy,
            resultType: a.ctx.sts.resultType,
            pkix: a.pkix,
        },
    })
}

/** The result of an MX host the decision skipped (no connection made). */
export function resultOfSkippedHost(domain: string, h: HostDecision, sts?: StsApplied, at: number = Date.now()): SessionResult | null {
    // dnssec-invalid is about the TLSA answer (RFC 8460 4.3.2.1); a host skipped for a bogus address answer is not reported
    if (h.resultType === 'dnssec-invalid' && h.tlsa.state !== 'failed') return null
    return sessionResult({
        id: randomUUID(),
        at,
        recipientDomain: domain,
        host: h.name,
        mode: h.mode,
        tlsaBase: h.tlsaBase ?? h.name,
        tlsaRecords: h.tlsa.records.map((r) => r.text),
        usableRecords: h.tlsa.usable,
        outcome: 'skipped',
        resultType: h.resultType,
        reasonCode: h.tlsa.state === 'failed' ? 'tlsa-lookup-failed' : undefined,
        sts: h.sts && { mode: h.sts.mode, allowed: h.sts.allowedBy !== undefined, policy: sts?.policy },
    })
}
