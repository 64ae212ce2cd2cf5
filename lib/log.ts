// The delivery log: pino JSON, one line per decision, per delivery attempt and
// per final outcome. The field names below are the documented interface
// (README "Reading the delivery logs"): change them only with the README.
import fs from 'node:fs'
import path from 'node:path'
import pino from 'pino'
import { NOTICE_EVERY_MS, OperatorNotice } from './notice'
import type { Decision, HostDecision, HostMode } from './policy'
import type { ResultType } from './result-type'

export interface LogSettings {
    destination: string // 'stdout', 'stderr' or a file path
    level: string
}

export type DaneLogger = pino.Logger

/** How often, at most, a failing log destination is reported to the operator (lib/notice.ts). */
export const LOG_FAULT_REPORT_MS = NOTICE_EVERY_MS

/** lines are written at most this long after they were logged (one write for all the lines of that time) */
export const LOG_FLUSH_MS = 20

/** lines past this many characters are written at once */
const FLUSH_CHARS = 64 * 1024

/** every destination with lines not yet written: the process writes them before it exits */
const unwritten = new Set<SafeDestination>()
let exitHookInstalled = false
function writeAllAtExit(): void {
    for (const d of [...unwritten]) d.flush()
}

/**
 * C29: the delivery log's destination, which never throws. A write that fails (a full disk, a
 * file system gone read-only, a closed pipe) drops those lines, and the operator is told through
 * `onFault` (Haraka's own log) at once and then at most every LOG_FAULT_REPORT_MS while it lasts;
 * the next write that succeeds says how many lines were lost. Deciding and delivering never wait
 * for it and never change because of it.
 *
 * The lines logged within LOG_FLUSH_MS are written together, in one system call (sooner past
 * FLUSH_CHARS), and whatever is left when the process exits (Haraka's shutdown on SIGINT, an uncaught
 * exception) is written then: a delivery logs three lines, in two turns of the event loop, and a write
 * call for each turn was the largest part of what the log cost in issue 13's CPU profiles; under load
 * one write now carries the lines of several messages. A process ended by a signal it does not handle
 * (SIGKILL; SIGTERM, which Haraka 3.3 handles only as PID 1) can lose the lines of its last LOG_FLUSH_MS.
 */
export class SafeDestination {
    private fd: number | undefined
    private lost = 0
    private lastError = ''
    private readonly notice: OperatorNotice
    private pending: string[] = []
    private pendingChars = 0
    /** closed (the configuration named another destination): a late line is still written, the file not kept open */
    private closed = false

    constructor(
        readonly target: string,
        onFault: (message: string) => void,
        clock: () => number = Date.now,
    ) {
        this.notice = new OperatorNotice(onFault, clock)
    }

    /** pino's entry point: keep the line for the next write (within LOG_FLUSH_MS). Never throws. */
    write(line: string): boolean {
        this.pending.push(line)
        this.pendingChars += line.length
        if (this.pendingChars >= FLUSH_CHARS) {
            this.flush()
            return true
        }
        // a destination in `unwritten` has its flush scheduled already
        if (!unwritten.has(this)) {
            unwritten.add(this)
            if (!exitHookInstalled) {
                exitHookInstalled = true
                process.on('exit', writeAllAtExit)
            }
            setTimeout(() => this.flush(), LOG_FLUSH_MS).unref()
        }
        return true
    }

    /** Write the lines kept so far, now. Never throws. */
    flush(): void {
        unwritten.delete(this)
        if (this.pending.length === 0) return
        const lines = this.pending
        this.pending = []
        this.pendingChars = 0
        try {
            if (this.fd === undefined) this.fd = this.open()
            writeAll(this.fd, lines.join(''))
        } catch (e) {
            this.lost += lines.length
            const err = e as NodeJS.ErrnoException
            this.lastError = err.code ?? err.message ?? String(e)
            // a file descriptor that went bad is opened again on the next write
            if (err.code === 'EBADF' && this.fd !== undefined && this.fd > 2) this.fd = undefined
            this.notice.throttled(
                `haraka-plugin-dane: the delivery log ${this.target} cannot be written (${this.lastError}); ${this.lost} line(s) lost so far. Deliveries go on by policy; this is repeated at most every ${LOG_FAULT_REPORT_MS / 1000} s while it lasts`,
            )
            return
        }
        if (this.lost > 0) {
            this.notice.now(`haraka-plugin-dane: the delivery log ${this.target} is written again; ${this.lost} line(s) were lost (${this.lastError})`)
            this.lost = 0
            this.notice.reset()
        }
        if (this.closed) this.closeFd()
    }

    /** Write what is pending and let the file go; a line logged later (a decision that was under way) is still written. */
    close(): void {
        this.closed = true
        this.flush()
        this.closeFd()
    }

    private closeFd(): void {
        if (this.fd !== undefined && this.fd > 2) {
            try {
                fs.closeSync(this.fd)
            } catch {
                /* already gone */
            }
        }
        this.fd = undefined
    }

    private open(): number {
        if (this.target === 'stdout') return 1
        if (this.target === 'stderr') return 2
        fs.mkdirSync(path.dirname(this.target), { recursive: true })
        return fs.openSync(this.target, 'a')
    }
}

const pause = new Int32Array(new SharedArrayBuffer(4))

// a pipe (stdout under a service manager) may take part of a line, or none for a moment (EAGAIN). The text
// goes to the kernel as a string (node encodes it there, no Buffer made here); only what is left of a
// partial or refused write is made a Buffer
function writeAll(fd: number, text: string): void {
    let buf: Buffer | undefined
    let off = 0
    let busy = 0
    for (;;) {
        try {
            if (buf === undefined) {
                const n = fs.writeSync(fd, text)
                const bytes = Buffer.byteLength(text)
                if (n >= bytes) return
                buf = Buffer.from(text)
                off = n
            }
            if (off >= buf.length) return
            off += fs.writeSync(fd, buf, off, buf.length - off)
        } catch (e) {
            buf ??= Buffer.from(text)
            if ((e as NodeJS.ErrnoException).code !== 'EAGAIN' || ++busy > 20) throw e
            Atomics.wait(pause, 0, 0, 5)
        }
    }
}

/**
 * pino's isoTime, made once per millisecond: a delivery logs three lines, often in the same millisecond as
 * other deliveries' lines under load, and formatting the date was a visible part of what a line cost.
 */
let timeMs = -1
let timeField = ''
function isoTimeField(): string {
    const now = Date.now()
    if (now !== timeMs) {
        timeMs = now
        timeField = `,"time":"${new Date(now).toISOString()}"`
    }
    return timeField
}

export function createLogger(s: LogSettings, onFault: (message: string) => void = () => undefined): DaneLogger {
    const opts: pino.LoggerOptions = { level: s.level, base: { plugin: 'dane', pid: process.pid }, timestamp: isoTimeField, messageKey: 'msg' }
    return pino(opts, new SafeDestination(s.destination, onFault))
}

/** Close the file a logger of createLogger writes to (when the configuration names another). */
export function closeLogger(logger: DaneLogger): void {
    const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym]
    if (stream instanceof SafeDestination) stream.close()
}

/** What happened on one attempt (C24). */
export type Outcome =
    | 'verified' // DANE authenticated the peer
    | 'pkix-verified' // MTA-STS enforce: a PKIX-valid certificate for the MX host name
    | 'unauthenticated-tls' // TLS mandatory, no authentication (C12, policy encrypt)
    | 'opportunistic-tls'
    | 'opportunistic-plaintext'
    | 'plaintext' // policy none
    | 'failed' // this attempt failed; the next MX host is tried
    | 'skipped' // not connected (C7, C11, dane-only)

export interface AttemptFields {
    event: 'attempt'
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
    result_type?: ResultType // RFC 8460 result type (C25)
    sts?: 'enforce' | 'testing' // the MTA-STS mode this host was used under
    pkix?: string // MTA-STS: "valid", or why the certificate is not PKIX-valid for the MX host name
    reason: string
    tls_ms?: number
}

export type FinalOutcome = 'delivered' | 'deferred' | 'bounced'

export interface FinalFields {
    event: 'final'
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
    result_type?: ResultType
    reason: string
}

/** a host as the decision line shows it: made once for a host that many messages' decisions share (lib/policy keeps them) */
const hostSummaries = new WeakMap<HostDecision, Record<string, unknown>>()
function summaryOf(h: HostDecision): Record<string, unknown> {
    let s = hostSummaries.get(h)
    if (!s) {
        s = hostSummary(h)
        hostSummaries.set(h, s)
    }
    return s
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
        hosts: d.hosts.map(summaryOf),
        sts: d.sts && {
            id: d.sts.id,
            mode: d.sts.policy?.mode,
            mx: d.sts.policy?.mx,
            max_age: d.sts.policy?.maxAge,
            result_type: d.sts.resultType,
            reason: d.sts.reason,
        },
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
        sts: h.sts?.mode,
        sts_allowed_by: h.sts?.allowedBy,
        reason: h.reason,
    }
}

/** One line per host the decision skipped, so that every MX host gets an attempt line. */
export function skippedAttempts(d: Decision, queueId: string | undefined): AttemptFields[] {
    return d.hosts
        .filter((h) => h.mode === 'skip')
        .map((h) => ({
            event: 'attempt' as const,
            queue_id: queueId,
            domain: d.domain,
            policy: d.policy,
            exception: d.exception,
            mx_host: h.name,
            tlsa_base: h.tlsaBase,
            mode: h.mode,
            outcome: 'skipped' as const,
            result_type: h.resultType,
            sts: h.sts?.mode,
            reason: h.reason,
        }))
}

// ---------------------------------------------------------------------------
// The delivery log's lines, assembled from what the plugin decided and what the session did
// ---------------------------------------------------------------------------

/** Haraka's own log, where a short human line goes for every attempt. */
export interface OperatorLog {
    lognotice(message: string): void
    loginfo(message: string): void
}

/** What the log needs of one MX host's context (lib/haraka-adapter MxContext). */
export interface HostContext {
    queueId: string
    domain: string
    policy: string
    exception: boolean
    host: string
    mode: HostMode
    tlsaBase?: string
    sts?: { mode?: 'enforce' | 'testing'; allowedBy?: string }
}

/** What the log needs of one connection attempt (lib/haraka-adapter Attempt). */
export interface AttemptRecord {
    ctx: HostContext
    address: string
    verify?: { match?: { record: { text: string }; depth: number }; matchedName?: string }
    pkix?: { ok: true } | { ok: false; code: string; detail: string }
    failure?: { resultType?: ResultType; reason: string }
    tlsMs?: number
}

/** C24: the TLS a delivery had, by the host's mode: DANE authenticated, TLS without authentication, or what Haraka did */
export function tlsOutcome(mode: HostMode, secured: boolean): Outcome {
    switch (mode) {
        case 'dane':
            return 'verified'
        case 'sts':
            return 'pkix-verified'
        case 'encrypt':
            return 'unauthenticated-tls'
        case 'plaintext':
            return 'plaintext'
        default:
            return secured ? 'opportunistic-tls' : 'opportunistic-plaintext'
    }
}

// the fields written out: an object spread in the middle of a literal is slow in V8, and this runs for every attempt;
// a field added to AttemptFields and not here fails to compile
export function attemptFields(a: AttemptRecord, outcome: Outcome): Exhaustive<AttemptFields> {
    const m = a.verify?.match
    const ctx = a.ctx
    return {
        event: 'attempt',
        queue_id: ctx.queueId,
        domain: ctx.domain,
        policy: ctx.policy,
        exception: ctx.exception,
        mx_host: ctx.host,
        tlsa_base: ctx.tlsaBase,
        mode: ctx.mode,
        sts: ctx.sts?.mode,
        address: a.address,
        outcome,
        matched: m?.record.text,
        depth: m?.depth,
        matched_name: a.verify?.matchedName,
        result_type: a.failure?.resultType,
        pkix: a.pkix && (a.pkix.ok ? 'valid' : a.pkix.code),
        reason: a.failure?.reason ?? (m ? `authenticated by TLSA ${m.record.text} at depth ${m.depth}` : stsReason(a, outcome)),
        tls_ms: a.tlsMs,
    }
}

// MTA-STS: what the session's certificate check found (enforced on an sts host, only reported in testing)
function stsReason(a: AttemptRecord, outcome: Outcome): string {
    const p = a.pkix
    if (!p) return outcome
    const allowed = a.ctx.sts?.allowedBy ? `allowed by mx ${a.ctx.sts.allowedBy}` : "not among the policy's mx"
    if (outcome === 'pkix-verified') return `MTA-STS enforce: certificate PKIX-valid for ${a.ctx.host} (${allowed})`
    return `${outcome}; MTA-STS testing (${allowed}): ${p.ok ? `certificate PKIX-valid for ${a.ctx.host}` : p.detail}; reported, not enforced`
}

/** C24: one JSON line per attempt, and a short human line in Haraka's own log */
export function writeAttempt(logger: DaneLogger, operator: OperatorLog, f: AttemptFields): void {
    const level = f.outcome === 'failed' || f.outcome === 'skipped' ? 'warn' : 'info'
    const where = `${f.domain} ${f.mx_host}${f.address ? ` [${f.address}]` : ''}`
    logger[level](f, `${where}: ${f.outcome}: ${f.reason}`)
    const human = `[${f.queue_id ?? '-'}] DANE ${where}: ${f.outcome}: ${f.reason}`
    if (level === 'warn') operator.lognotice(human)
    else operator.loginfo(human)
}

/** every key of T present, optional ones possibly undefined */
type Exhaustive<T> = { [K in keyof Required<T>]: T[K] }

/** C24: the final line of a message the plugin routed */
export function writeFinal(
    logger: DaneLogger,
    d: Decision,
    queueId: string,
    rest: Omit<FinalFields, 'event' | 'queue_id' | 'domain' | 'policy' | 'exception'>,
): void {
    // every field named (no spread, see attemptFields): a field added to FinalFields and not here fails to compile
    const f: Exhaustive<FinalFields> = {
        event: 'final',
        queue_id: queueId,
        domain: d.domain,
        policy: d.policy,
        exception: d.exception,
        outcome: rest.outcome,
        mx_host: rest.mx_host,
        address: rest.address,
        tls: rest.tls,
        tlsa_base: rest.tlsa_base,
        matched: rest.matched,
        depth: rest.depth,
        result_type: rest.result_type,
        reason: rest.reason,
    }
    logger[f.outcome === 'delivered' ? 'info' : 'warn'](f, `${f.domain}: ${f.outcome}: ${f.reason}`)
}

/** The attempt and final lines of a delivered message. */
export function writeDelivered(
    logger: DaneLogger,
    operator: OperatorLog,
    d: Decision,
    queueId: string,
    a: AttemptRecord,
    secured: boolean,
    response: string,
): void {
    const outcome = tlsOutcome(a.ctx.mode, secured)
    const f = attemptFields(a, outcome)
    writeAttempt(logger, operator, f)
    writeFinal(logger, d, queueId, {
        outcome: 'delivered',
        mx_host: a.ctx.host,
        address: a.address,
        tls: outcome,
        tlsa_base: a.ctx.tlsaBase,
        matched: f.matched,
        depth: f.depth,
        reason: `delivered to ${a.ctx.host} [${a.address}]: ${response}`,
    })
}

/** The final line of a deferred message: the decision's reason when it deferred, else Haraka's */
export function writeDeferred(logger: DaneLogger, d: Decision, queueId: string, a: AttemptRecord | undefined, err: unknown, delay: unknown): void {
    writeFinal(logger, d, queueId, {
        outcome: 'deferred',
        result_type: d.resultType ?? a?.failure?.resultType,
        reason: `${d.action === 'defer' ? d.reason : String(err ?? 'temporary failure')}; retry in ${delay ?? '?'} s`,
    })
}
