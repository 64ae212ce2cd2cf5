// The one place that reaches into Haraka's outbound internals: the Haraka adapter.
//
// Why: Haraka 3.3 has no hook in the outbound TLS stage. Its own "force TLS"
// path cannot serve DANE: it forces rejectUnauthorized (which rejects DANE-EE's
// self-signed certificates), checks only PKIX `authorized`, and a failure there
// defers the whole message instead of trying the next MX (RFC 7672 2.2, C9).
// Its opportunistic path falls back to plaintext when STARTTLS is missing or
// the host was marked "no TLS", and a TLS error marks the host "no TLS" for a
// week (C20). So, for the MX objects the plugin marked, the adapter wraps the
// connected socket before Haraka's SMTP state machine gets it and feeds every
// raw chunk, reply line, command, handshake result, timeout, error and close to
// the session guard (lib/session.ts, a pure state machine holding every rule of
// the session), then acts on its verdict: pass on, pass on rewritten, or end the
// attempt so that Haraka tries the next MX host. It also sets the TLS options
// (SNI = TLSA base domain, no PKIX rejection) and runs the DANE verification.
// Unmarked MX objects (other plugins' routes, LMTP, smarthosts) are untouched;
// a marked message whose MX lost its mark is ended (C28).
//
// Every Haraka internal touched is declared in `HarakaInternals` below and
// proved by behaviour at start-up (`proveInternals`); see the README.
import fs from 'node:fs'
import { randomUUID } from 'node:crypto'
import path from 'node:path'
import { createRequire } from 'node:module'
import type { TLSSocket } from 'node:tls'
import { USAGE, type TlsaRecord } from './tlsa'
import { serverName, type Decision, type HostMode } from './policy'
import { verifyChain, rfc8460ResultType, VerifyResult } from './verify'
import { presentedChain } from './peer-chain'
import { SessionGuard, requirementOf, type SessionInput, type Verdict } from './session'
import type { ResultType } from './result-type'
import { webPkiCheck, type WebPkiCheck } from './webpki'
import type { StsPolicy } from './mtasts/policy'
import type { StsPolicyResultType } from './mtasts/cache-rules'

export const SUPPORTED_HARAKA = /^3\.3\./

/** What the plugin attaches to each HarakaMx it returns from get_mx. */
export interface MxContext {
    queueId: string
    domain: string
    policy: string
    exception: boolean
    host: string // MX host name
    mode: HostMode
    tlsaBase?: string
    referenceNames: string[]
    records: TlsaRecord[]
    /** MTA-STS for this host without DANE (lib/mtasts/apply), when the decision asked it */
    sts?: StsContext
}

/** What a session needs of MTA-STS: the policy's mode for this host, the policy (for TLS reports), the CAs. */
export interface StsContext {
    /** undefined: no policy in force (resultType says why, when a fetch failed) */
    mode?: 'enforce' | 'testing'
    allowedBy?: string
    policy?: StsPolicy
    resultType?: StsPolicyResultType
    /** CA certificates (PEM) for PKIX ([mtasts] ca_file); node's own store when undefined */
    ca?: string | Buffer
}

/** The record of one connection attempt, reported through `onAttemptFailed` and kept for the final line. */
export interface Attempt {
    ctx: MxContext
    address: string
    guard: SessionGuard
    verify?: VerifyResult
    /** MTA-STS: the PKIX check of the session's certificate for the MX host name (enforced in mode sts, reported in testing) */
    pkix?: WebPkiCheck
    failure?: { resultType?: ResultType; reason: string }
    tlsStarted?: number
    tlsMs?: number
    /** this end's address (RFC 8460 sending-mta-ip), when the socket tells it */
    localAddress?: string
    /** one id per attempt, for the TLS report result it makes (RFC 8460: one result per session) */
    id: string
    /** set once the attempt's TLS report result was taken (at the handshake, or at its failure) */
    reported?: boolean
}

export interface GlueEvents {
    /** A connection attempt ended in failure (the next MX host will be tried). */
    onAttemptFailed(hmail: HmailLike, attempt: Attempt): void
    /** A connection attempt could not connect at all. */
    onConnectFailed(ctx: MxContext, address: string, err: string): void
    /** A message the plugin routed reached a connection whose MX carries no DANE context (C28). */
    onContextLost(hmail: HmailLike, address: string): void
    /** The TLS handshake of an attempt completed and passed the guard (DANE verified, where DANE applies). */
    onTlsEstablished(hmail: HmailLike, attempt: Attempt): void
    /** Attempts need this end's address (TLS reports, RFC 8460 sending-mta-ip): asking the socket costs a system call. */
    wantsLocalAddress(): boolean
}

export interface HmailLike {
    todo: { uuid: string; domain: string; notes?: Record<string, unknown> }
    dane_attempt?: Attempt
    /** set by get_mx: this message's MX hosts were decided by the plugin */
    dane_decision?: unknown
}

// ---------------------------------------------------------------------------
// The slices of Haraka the plugin uses: nothing else of Haraka is touched
// ---------------------------------------------------------------------------

/** Haraka's outbound socket (tls_socket's pluggable stream, with the line reader of haraka-net-utils). */
export interface HarakaSocket {
    write: (...args: unknown[]) => boolean
    emit: (event: string, ...args: unknown[]) => boolean
    upgrade: (options: Record<string, unknown>, cb?: (...args: unknown[]) => void) => void
    cleartext?: TLSSocket
    destroy?: () => void
    /** tls_socket copies these from the TCP socket it wraps, when that socket has them */
    localAddress?: string
    targetsocket?: { localAddress?: string }
}

/** An MX as Haraka carries it (haraka-net-utils HarakaMx), with the plugin's mark. */
export interface HarakaMxObject {
    exchange: string
    priority?: number
    from_dns?: string
    dane?: MxContext
}

type TryDeliverHostOnSocket = (this: HmailLike & { force_tls?: boolean }, mx: HarakaMxObject, host: string, port: number, socket: HarakaSocket) => unknown
type GetClient = (mx: HarakaMxObject, cb: (err: unknown, socket: unknown) => void) => unknown
type CheckTlsNogo = (host: string, ok: () => void, nogo: (when: string) => void) => unknown

export interface HarakaInternals {
    version: string
    /** outbound/hmail: each connection to an MX address starts in try_deliver_host_on_socket (wrapped) */
    HMailItem: { prototype: { try_deliver_host_on_socket: TryDeliverHostOnSocket } }
    /** outbound/client_pool: get_client (wrapped, to log connection failures) */
    clientPool: { get_client: GetClient }
    /** outbound/tls: the TLS NO-GO check (wrapped: no mark stops a mandatory-TLS attempt) */
    outboundTls: { check_tls_nogo: CheckTlsNogo }
    /** outbound/config: outbound.ini as Haraka reads it (enable_tls, read only) */
    outboundConfig: { cfg?: { enable_tls?: boolean } }
    /** haraka-net-utils as Haraka loads it: the HarakaMx class (get_mx_respond keeps instances) and resolve_mx_hosts */
    HarakaMx: new (obj: Record<string, unknown>) => HarakaMxObject
    resolveMxHosts: (mxs: HarakaMxObject[]) => Promise<HarakaMxObject[]>
    /**
     * outbound (loaded when first needed): send_email queues a message the plugin makes itself (TLS
     * reports, RFC 8460 5.3), with transaction notes. Only reporting needs it: when it is missing the
     * reports are not sent (and Haraka's log says why), nothing else changes.
     */
    sendEmail: () => SendEmail | undefined
}

export type SendEmail = (
    from: string,
    to: string,
    contents: string,
    next: (code: number, msg?: string) => void,
    options: { notes?: Record<string, unknown> },
) => void

/**
 * Find Haraka's own modules (not a second copy from our node_modules): the
 * HMailItem class, the client pool and the HarakaMx class of the
 * haraka-net-utils that Haraka itself loads (get_mx_respond uses instanceof).
 * Throws a clear error when they are not what this plugin was written for.
 */
export function loadHarakaInternals(harakaRequire: (name: string) => unknown): HarakaInternals {
    const HMailItem = harakaRequire('outbound/hmail') as HarakaInternals['HMailItem']
    const clientPool = harakaRequire('outbound/client_pool') as HarakaInternals['clientPool']
    const outboundTls = harakaRequire('outbound/tls') as HarakaInternals['outboundTls']
    const outboundConfig = harakaRequire('outbound/config') as HarakaInternals['outboundConfig']
    const hmailPath = Object.keys(require.cache).find((k) => k.endsWith(path.join('outbound', 'hmail.js')) && require.cache[k]?.exports === HMailItem)
    if (!hmailPath) throw new Error('haraka-plugin-dane: cannot locate Haraka outbound/hmail.js')
    const harakaDir = path.resolve(path.dirname(hmailPath), '..')
    const req = createRequire(hmailPath)
    const version = (req(path.join(harakaDir, 'package.json')) as { version: string }).version
    const netUtils = req('haraka-net-utils') as { HarakaMx?: HarakaInternals['HarakaMx']; resolve_mx_hosts?: HarakaInternals['resolveMxHosts'] }
    const missing: string[] = []
    if (!SUPPORTED_HARAKA.test(version)) missing.push(`Haraka ${version} (supported: 3.3.x)`)
    if (typeof HMailItem?.prototype?.try_deliver_host_on_socket !== 'function') missing.push('HMailItem.try_deliver_host_on_socket')
    if (typeof clientPool?.get_client !== 'function') missing.push('outbound/client_pool.get_client')
    if (typeof outboundTls?.check_tls_nogo !== 'function') missing.push('outbound/tls.check_tls_nogo')
    if (typeof netUtils.HarakaMx !== 'function') missing.push('haraka-net-utils HarakaMx')
    if (typeof netUtils.resolve_mx_hosts !== 'function') missing.push('haraka-net-utils resolve_mx_hosts')
    if (missing.length) throw new Error(`haraka-plugin-dane: Haraka internals it relies on are missing or changed: ${missing.join(', ')}`)
    const sendEmail = (): SendEmail | undefined => {
        const outbound = harakaRequire('outbound') as { send_email?: SendEmail } | undefined
        if (typeof outbound?.send_email !== 'function') return undefined
        // the notes as Haraka's own transactions carry them (transaction.js: a haraka-notes instance with
        // skip_plugins), for the plugins its pre_send_trans_email hook runs (DKIM signing): Haraka reads
        // notes.skip_plugins before each of them, and without it no such hook runs and nothing is queued
        const Notes = req('haraka-notes') as new (o?: Record<string, unknown>) => Record<string, unknown>
        const notesOf = (o: Record<string, unknown>): Record<string, unknown> => {
            const n = new Notes(o)
            n.skip_plugins = []
            return n
        }
        return (from, to, contents, next, options) =>
            outbound.send_email!(from, to, contents, next, { ...options, notes: options.notes && notesOf(options.notes) })
    }
    return { version, HMailItem, clientPool, outboundTls, outboundConfig, HarakaMx: netUtils.HarakaMx!, resolveMxHosts: netUtils.resolve_mx_hosts!, sendEmail }
}

/**
 * C28: prove by behaviour, before any delivery, that Haraka passes the plugin's MX objects through
 * unchanged from get_mx to the connection: get_mx_respond wraps each answer in `new HarakaMx(obj)`,
 * found_mx runs resolve_mx_hosts on the list. If either copied the object, the DANE context would be
 * lost and the delivery would be Haraka's opportunistic one. Resolves null when they pass, else why not.
 */
export async function proveInternals(h: HarakaInternals): Promise<string | null> {
    const mark = { probe: true } as unknown as MxContext
    try {
        const mx = new h.HarakaMx({ exchange: '192.0.2.1', priority: 10, from_dns: 'probe.invalid' })
        mx.dane = mark
        const kept = new h.HarakaMx(mx as unknown as Record<string, unknown>)
        if (kept !== mx || kept.dane !== mark) return 'new HarakaMx(mx) no longer returns the same object: the DANE context would be lost'
        const resolved = await h.resolveMxHosts([mx])
        if (resolved.length !== 1 || resolved[0] !== mx || resolved[0].dane !== mark) {
            return 'resolve_mx_hosts no longer passes an MX with an address through unchanged: the DANE context would be lost'
        }
        if (!(h.HMailItem.prototype as unknown as Record<symbol, unknown>)[INSTALLED]) return 'the connection wrapper is not installed on HMailItem'
        return null
    } catch (e) {
        return `proving Haraka's internals failed: ${e instanceof Error ? e.message : String(e)}`
    }
}

const INSTALLED = Symbol.for('haraka-plugin-dane.glue')

/** Install the wrappers once per process. */
export function installGlue(h: HarakaInternals, events: GlueEvents): void {
    const proto = h.HMailItem.prototype as HarakaInternals['HMailItem']['prototype'] & Record<symbol, unknown>
    if (proto[INSTALLED]) {
        ;(proto[INSTALLED] as { events: GlueEvents }).events = events
        return
    }
    const state = { events }
    proto[INSTALLED] = state

    const origTry = proto.try_deliver_host_on_socket
    proto.try_deliver_host_on_socket = function (mx, host, port, socket) {
        delete this.dane_attempt
        if (mx?.dane) {
            // the plugin enforces TLS itself on the hosts it marked; Haraka's force_tls_hosts path would require
            // PKIX (rejecting DANE-EE) and defer the whole message on a failure instead of trying the next MX
            if (mx.dane.mode !== 'opportunistic') this.force_tls = false
            guardSocket(this, mx.dane, mx.exchange, socket, state.events)
            return origTry.call(this, mx, host, port, socket)
        }
        const result = origTry.call(this, mx, host, port, socket)
        // C28: a message the plugin routed whose MX lost its mark is never delivered opportunistically
        if (this.dane_decision !== undefined) {
            state.events.onContextLost(this, mx?.exchange ?? host)
            socket.emit('error', new Error('DANE: the MX for this message lost its DANE context; connection ended'))
            socket.destroy?.()
        }
        return result
    }

    // C20: a TLS NO-GO mark (left by an opportunistic delivery to the same address, or from before the
    // plugin was installed) must not stop a mandatory-TLS attempt from trying STARTTLS. Haraka asks
    // check_tls_nogo synchronously while it handles the EHLO reply, inside the emit wrapper below.
    const origNogo = h.outboundTls.check_tls_nogo
    h.outboundTls.check_tls_nogo = function (this: unknown, host: string, ok: () => void, nogo: (when: string) => void) {
        if (mandatoryLineInProgress) return ok()
        return origNogo.call(this, host, ok, nogo)
    }

    // connection failures happen before try_deliver_host_on_socket; see them here
    const origGet = h.clientPool.get_client
    h.clientPool.get_client = function (mx, cb) {
        if (!mx?.dane) return origGet(mx, cb)
        return origGet(mx, (err, socket) => {
            if (err) state.events.onConnectFailed(mx.dane!, mx.exchange, String(err))
            cb(err, socket)
        })
    }
}

/** True while Haraka handles a reply line on a mandatory-TLS socket (see check_tls_nogo above). */
let mandatoryLineInProgress = false

/**
 * Feed one socket to a SessionGuard (lib/session.ts) and act on its verdicts. Everything the guard
 * decides, it decides; this function only translates between Haraka's socket and the guard.
 */
export function guardSocket(hmail: HmailLike, ctx: MxContext, address: string, socket: HarakaSocket, events: GlueEvents): Attempt {
    const who = `${ctx.host} [${address}]`
    const guard = new SessionGuard(requirementOf(ctx.mode), who)
    const attempt: Attempt = { ctx, address, guard, id: randomUUID() }
    hmail.dane_attempt = attempt
    const origWrite = socket.write.bind(socket)
    const origEmit = socket.emit.bind(socket)
    const origUpgrade = socket.upgrade.bind(socket)

    const report = (): void => {
        try {
            events.onAttemptFailed(hmail, attempt)
        } catch {
            /* logging must never stall delivery */
        }
    }
    // end this attempt: Haraka's own error handler releases the socket and tries the next MX host
    const end = (v: Verdict & { action: 'fail' }, emitError = true): void => {
        attempt.failure = { reason: v.reason, resultType: v.resultType }
        try {
            if (emitError) origEmit('error', new Error(`DANE: ${v.reason}`))
        } finally {
            socket.destroy?.()
            report()
        }
    }
    const judge = (input: SessionInput): Verdict => {
        const v = guard.feed(input)
        if (v.action === 'fail') end(v, input.kind !== 'close')
        return v
    }

    // every event of the socket passes here: no rest arguments or spreads (an array each), the usual
    // events answered from their first argument, the others passed on as they came (`arguments`, uncopied)
    /* eslint-disable prefer-rest-params */
    socket.emit = function (event: string, first?: unknown): boolean {
        switch (event) {
            case 'data': {
                // Haraka's line reader appends each chunk as a string (haraka-net-utils line_socket)
                const v = judge({ kind: 'chunk', text: typeof first === 'string' ? first : String(first) })
                return v.action === 'allow' ? passOn(arguments) : true
            }
            case 'line': {
                if (typeof first !== 'string') break
                if (attempt.localAddress === undefined && events.wantsLocalAddress())
                    attempt.localAddress = socket.targetsocket?.localAddress ?? socket.localAddress ?? ''
                const v = judge({ kind: 'line', text: first })
                if (v.action !== 'allow') return true
                const line = v.line ?? first
                if (!guard.mandatory) return passOn(arguments, line)
                mandatoryLineInProgress = true
                try {
                    return passOn(arguments, line)
                } finally {
                    mandatoryLineInProgress = false
                }
            }
            case 'timeout': {
                // Haraka turns a timeout into an error of its own; the guard's failure replaces it
                const v = judge({ kind: 'timeout' })
                return v.action === 'allow' ? passOn(arguments) : true
            }
            case 'error': {
                const err = first as { source?: string; message?: string } | string | undefined
                // C20: never let Haraka mark a DANE or encrypt host "no TLS" for later deliveries
                // (Haraka tags every error of the raw socket with source 'tls', not only TLS ones)
                if (guard.mandatory && err && typeof err === 'object') delete err.source
                if (guard.state === 'failed') return passOn(arguments)
                const message = typeof err === 'string' ? err : String(err?.message ?? err)
                const v = judge({ kind: 'error', message: message.trim() })
                return v.action === 'allow' ? passOn(arguments) : true
            }
            case 'close':
                judge({ kind: 'close' })
                break
        }
        return passOn(arguments)
    }
    /** the event as it came (its first argument replaced when `first` is given); the usual one-argument event called directly */
    const passOn = (args: IArguments, first?: string): boolean => {
        if (args.length === 2) return origEmit(args[0] as string, first === undefined ? args[1] : first)
        if (first === undefined) return Reflect.apply(origEmit, undefined, args) as boolean
        const a = Array.prototype.slice.call(args) as unknown[]
        a[1] = first
        return Reflect.apply(origEmit, undefined, a) as boolean
    }

    socket.write = function (data?: unknown): boolean {
        // a command line is at most 512 octets (RFC 5321 4.5.3.1.4): a larger buffer is message data, of
        // which the guard needs no more than that to see it is no command
        const text = typeof data === 'string' ? data : Buffer.isBuffer(data) ? data.toString('latin1', 0, 512) : ''
        const v = judge({ kind: 'write', text })
        return v.action === 'allow' ? (Reflect.apply(origWrite, undefined, arguments) as boolean) : false
    }
    /* eslint-enable prefer-rest-params */

    // MTA-STS (RFC 8461 4.2): PKIX for the MX host name, required on an sts host and checked for the report in testing
    const sts = ctx.sts
    const pkixChecked = ctx.mode === 'sts' || (sts?.mode === 'testing' && ctx.mode === 'opportunistic')
    // DANE-EE records alone: the leaf is all that is matched (lib/peer-chain)
    const eeOnly = ctx.mode === 'dane' && ctx.records.every((r) => r.usage === USAGE.DANE_EE)
    socket.upgrade = (options: Record<string, unknown>, cb?: (...a: unknown[]) => void) => {
        attempt.tlsStarted = Date.now()
        let tlsOptions = options
        if (guard.mandatory)
            tlsOptions = {
                ...options,
                // C19: SNI carries the TLSA base domain on DANE connections, the MX host name on MTA-STS ones
                servername: serverName(ctx) ?? options.servername,
                // authentication is DANE's or MTA-STS's, checked below (or, for encrypt, deliberately none): no
                // rejection inside the handshake, so that a failure is the guard's, named, and the next MX is tried
                rejectUnauthorized: false,
                checkServerIdentity: () => undefined,
            }
        // the CAs MTA-STS trusts ([mtasts] ca_file, else node's store), whatever Haraka's tls.ini says; a testing
        // session keeps Haraka's own rejection setting (when that is on, Haraka's rules decide as before)
        if (ctx.mode === 'sts') tlsOptions.ca = sts?.ca
        else if (pkixChecked && options.rejectUnauthorized !== true) tlsOptions = { ...tlsOptions, ca: sts?.ca }
        origUpgrade(tlsOptions, (...cbArgs: unknown[]) => {
            if (guard.state === 'failed') return
            attempt.tlsMs = Date.now() - (attempt.tlsStarted ?? Date.now())
            let input: SessionInput = { kind: 'handshake', ok: true }
            if (ctx.mode === 'dane') {
                const chain = presentedChain(socket.cleartext, eeOnly)
                const result = verifyChain({ chain, records: ctx.records, referenceNames: ctx.referenceNames })
                attempt.verify = result
                if (!result.authenticated) {
                    const f = result.failure
                    input = {
                        kind: 'handshake',
                        ok: false,
                        reason: `DANE verification of ${who} failed: ${f.code}: ${f.detail}`,
                        resultType: rfc8460ResultType(f.code),
                    }
                }
            } else if (pkixChecked) {
                const check = webPkiCheck(ctx.host, socket.cleartext)
                attempt.pkix = check
                if (ctx.mode === 'sts' && !check.ok)
                    input = { kind: 'handshake', ok: false, reason: `MTA-STS: ${who}: ${check.detail}`, resultType: check.resultType }
            }
            if (judge(input).action !== 'allow') return
            try {
                events.onTlsEstablished(hmail, attempt)
            } catch {
                /* reporting must never stall delivery */
            }
            cb?.(...cbArgs)
        })
    }
    return attempt
}

// ---------------------------------------------------------------------------
// Between the plugin's hooks and Haraka: the MX objects get_mx answers with, the delivered hook's
// parameters, and where a configuration file came from
// ---------------------------------------------------------------------------

/**
 * C7: one HarakaMx per validated address, Haraka's own class (get_mx_respond keeps instances), each carrying
 * its host's context; `stsCa` the CAs MTA-STS trusts ([mtasts] ca_file), for hosts MTA-STS covers.
 */
export function harakaMxList(HarakaMx: HarakaInternals['HarakaMx'], d: Decision, queueId: string, stsCa?: string | Buffer): HarakaMxObject[] {
    const out: HarakaMxObject[] = []
    for (const h of d.hosts) {
        if (h.mode === 'skip') continue
        const sts: StsContext | undefined =
            d.sts && (h.mode === 'sts' || h.mode === 'opportunistic')
                ? { mode: h.sts?.mode, allowedBy: h.sts?.allowedBy, policy: d.sts.policy, resultType: d.sts.resultType, ca: stsCa }
                : undefined
        const ctx: MxContext = {
            queueId,
            domain: d.domain,
            policy: d.policy,
            exception: d.exception,
            host: h.name,
            mode: h.mode,
            tlsaBase: h.tlsaBase,
            referenceNames: h.referenceNames,
            records: h.tlsa.records,
        }
        if (sts) ctx.sts = sts
        // only the addresses the resolver validated
        for (const address of h.addresses) {
            const mx = new HarakaMx({ exchange: address, priority: h.preference, from_dns: h.name })
            mx.dane = ctx
            out.push(mx)
        }
    }
    return out
}

/**
 * Haraka's delivered hook passes its facts by position (outbound/hmail.js: host, ip, response, delay,
 * port, mode, ok_recips, secured, authenticated): the two the log needs, by name.
 */
export function deliveredFacts(params: unknown[]): { response: string; secured: boolean } {
    return { response: String(params?.[2] ?? ''), secured: !!params?.[7] }
}

/** A plugin's configuration as haraka-config holds it: the shipped defaults' directory and the overrides' (Haraka's config/). */
export interface PluginConfig {
    get: (name: string, type: string, cb?: () => void) => unknown
    root_path?: string
    overrides_path?: string
}

/**
 * C23: a configuration file's lines (re-read through haraka-config when it changes) and the file they
 * came from, for error messages. The file follows haraka-config's own rule for `data` files: an
 * override that is not empty replaces the shipped default; an empty one leaves the default in force.
 */
export function configSource(config: PluginConfig, name: string, onChange: () => void): { file: string; lines: string[] } {
    const lines = (config.get(name, 'data', onChange) as string[] | null) ?? []
    const override = config.overrides_path ? path.join(config.overrides_path, name) : undefined
    const fromOverride = override !== undefined && fs.existsSync(override) && fs.readFileSync(override, 'utf8') !== ''
    const file = fromOverride ? override : path.join(config.root_path ?? '.', name)
    return { file, lines }
}
