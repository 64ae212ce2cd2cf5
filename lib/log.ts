// The delivery log: pino JSON, one line per decision, per delivery attempt and
// per final outcome. The field names below are the documented interface
// (README "Reading the delivery logs"): change them only with the README.
import pino from 'pino'
import type { Decision, HostDecision, HostMode } from './policy'

export interface LogSettings {
    destination: string // 'stdout', 'stderr' or a file path
    level: string
}

export type DaneLogger = pino.Logger

export function createLogger(s: LogSettings): DaneLogger {
    const base = { plugin: 'dane' }
    const opts: pino.LoggerOptions = { level: s.level, base, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' }
    if (s.destination === 'stdout') return pino(opts, pino.destination({ dest: 1, sync: true }))
    if (s.destination === 'stderr') return pino(opts, pino.destination({ dest: 2, sync: true }))
    return pino(opts, pino.destination({ dest: s.destination, sync: true, mkdir: true }))
}

/** What happened on one attempt (C24). */
export type Outcome =
    | 'verified' // DANE authenticated the peer
    | 'unauthenticated-tls' // TLS mandatory, no authentication (C12, policy encrypt)
    | 'opportunistic-tls'
    | 'opportunistic-plaintext'
    | 'plaintext' // policy none
    | 'failed' // this attempt failed; the next MX host is tried
    | 'skipped' // not connected (C7, C11, dane-only)

export interface AttemptFields {
    queue_id?: string
    domain: string
    policy: string
    exception: boolean
    mx_host: string
    address?: string
    tlsa_base?: string
    mode: HostMode
    outcome: Outcome
    matched?: string // the TLSA record that authenticated, presentation form
    depth?: number // 0 = leaf
    matched_name?: string // DANE-TA: the reference identifier the leaf carried (C16)
    result_type?: string // RFC 8460 result type (C25)
    reason: string
    tls_ms?: number
}

export type FinalOutcome = 'delivered' | 'deferred' | 'bounced'

export interface FinalFields {
    queue_id?: string
    domain: string
    policy?: string
    exception?: boolean
    outcome: FinalOutcome
    mx_host?: string
    address?: string
    tls?: Outcome
    tlsa_base?: string
    matched?: string
    depth?: number
    result_type?: string
    reason: string
}

export function decisionFields(d: Decision, queueId: string | undefined, dnsMs: number): Record<string, unknown> {
    return {
        event: 'decision',
        queue_id: queueId,
        domain: d.domain,
        policy: d.policy,
        exception: d.exception,
        mx_secure: d.mxSecure,
        implicit_mx: d.implicitMx,
        action: d.action,
        reason: d.reason,
        result_type: d.resultType,
        dns_ms: dnsMs,
        hosts: d.hosts.map(hostSummary),
    }
}

function hostSummary(h: HostDecision): Record<string, unknown> {
    return {
        mx_host: h.name,
        preference: h.preference,
        addresses: h.addresses,
        address_secure: h.addressSecure,
        failed_families: h.failedFamilies,
        cname: h.cname,
        tlsa_base: h.tlsaBase,
        reference_names: h.mode === 'dane' ? h.referenceNames : undefined,
        tlsa_state: h.tlsa.state,
        tlsa_usable: h.tlsa.usable,
        mode: h.mode,
        reason: h.reason,
    }
}

/** One line per host the decision skipped, so that every MX host gets an attempt line. */
export function skippedAttempts(d: Decision, queueId: string | undefined): AttemptFields[] {
    return d.hosts
        .filter((h) => h.mode === 'skip')
        .map((h) => ({
            queue_id: queueId,
            domain: d.domain,
            policy: d.policy,
            exception: d.exception,
            mx_host: h.name,
            tlsa_base: h.tlsaBase,
            mode: h.mode,
            outcome: 'skipped' as const,
            result_type: h.resultType,
            reason: h.reason,
        }))
}
