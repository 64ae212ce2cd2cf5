// The one place that reaches into Haraka's outbound internals.
//
// Why: Haraka 3.3 has no hook in the outbound TLS stage. Its own "force TLS"
// path cannot serve DANE: it forces rejectUnauthorized (which rejects DANE-EE's
// self-signed certificates), checks only PKIX `authorized`, and a failure there
// defers the whole message instead of trying the next MX (RFC 7672 2.2, C9).
// Its opportunistic path falls back to plaintext when STARTTLS is missing or
// the host was marked "no TLS", and a TLS error marks the host "no TLS" for a
// week (C20). So, for the MX objects the plugin marked (and only those), we
// wrap three things on the connected socket before Haraka's SMTP state machine
// gets it:
//   - upgrade(): our TLS options (SNI = TLSA base domain, no PKIX rejection),
//     then the DANE verification of the presented chain; failure ends this
//     attempt and Haraka tries the next MX host;
//   - write(): a guard that lets no SMTP command past EHLO/STARTTLS leave the
//     socket until the required TLS is up and verified (no downgrade, C20);
//   - emit(): to see the EHLO reply (was STARTTLS offered?), to hide STARTTLS
//     for policy `none`, and to strip `source: 'tls'` from errors so a failed
//     DANE host is never marked "no TLS".
// Unmarked MX objects (other plugins' routes, LMTP, smarthosts) are untouched.
import path from 'node:path'
import { createRequire } from 'node:module'
import type { TLSSocket } from 'node:tls'
import type { TlsaRecord } from './tlsa'
import type { HostMode } from './policy'
import { verifyChain, rfc8460ResultType, VerifyResult } from './verify'
import { presentedChain } from './peer-chain'

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
}

/** The record of one connection attempt, reported through `onAttemptFailed` and kept for the final line. */
export interface Attempt {
    ctx: MxContext
    address: string
    startTlsOffered: boolean
    tlsUp: boolean
    verify?: VerifyResult
    failure?: { resultType?: string; reason: string }
    tlsStarted?: number
    tlsMs?: number
    ended: boolean
    /** QUIT was sent after TLS: errors from here on are the ordinary end of a connection */
    quitting?: boolean
}

export interface GlueEvents {
    /** A connection attempt ended in failure (the next MX host will be tried). */
    onAttemptFailed(hmail: HmailLike, attempt: Attempt): void
    /** A connection attempt could not connect at all. */
    onConnectFailed(ctx: MxContext, address: string, err: string): void
}

export interface HmailLike {
    todo: { uuid: string; domain: string }
    dane_attempt?: Attempt
}

interface SocketLike {
    write: (...args: unknown[]) => boolean
    emit: (event: string, ...args: unknown[]) => boolean
    upgrade: (options: Record<string, unknown>, cb?: (...args: unknown[]) => void) => void
    cleartext?: TLSSocket
    destroy?: () => void
}

interface HarakaInternals {
    version: string
    HMailItem: { prototype: Record<string, unknown> }
    clientPool: Record<string, unknown>
    /** Haraka's outbound TLS singleton (its TLS NO-GO list) */
    outboundTls: Record<string, unknown>
    /** Haraka's outbound.ini, as Haraka reads it */
    outboundConfig: { cfg?: { enable_tls?: boolean } }
    HarakaMx: new (obj: Record<string, unknown>) => Record<string, unknown>
}

/**
 * Find Haraka's own modules (not a second copy from our node_modules): the
 * HMailItem class, the client pool and the HarakaMx class of the
 * haraka-net-utils that Haraka itself loads (get_mx_respond uses instanceof).
 * Throws a clear error when they are not what this plugin was written for.
 */
export function loadHarakaInternals(harakaRequire: (name: string) => unknown): HarakaInternals {
    const HMailItem = harakaRequire('outbound/hmail') as HarakaInternals['HMailItem']
    const clientPool = harakaRequire('outbound/client_pool') as Record<string, unknown>
    const outboundTls = harakaRequire('outbound/tls') as Record<string, unknown>
    const outboundConfig = harakaRequire('outbound/config') as HarakaInternals['outboundConfig']
    const hmailPath = Object.keys(require.cache).find((k) => k.endsWith(path.join('outbound', 'hmail.js')) && require.cache[k]?.exports === HMailItem)
    if (!hmailPath) throw new Error('haraka-plugin-dane: cannot locate Haraka outbound/hmail.js')
    const harakaDir = path.resolve(path.dirname(hmailPath), '..')
    const req = createRequire(hmailPath)
    const version = (req(path.join(harakaDir, 'package.json')) as { version: string }).version
    const netUtils = req('haraka-net-utils') as { HarakaMx?: HarakaInternals['HarakaMx'] }
    const missing: string[] = []
    if (!SUPPORTED_HARAKA.test(version)) missing.push(`Haraka ${version} (supported: 3.3.x)`)
    if (typeof HMailItem?.prototype?.try_deliver_host_on_socket !== 'function') missing.push('HMailItem.try_deliver_host_on_socket')
    if (typeof clientPool?.get_client !== 'function') missing.push('outbound/client_pool.get_client')
    if (typeof outboundTls?.check_tls_nogo !== 'function') missing.push('outbound/tls.check_tls_nogo')
    if (typeof netUtils.HarakaMx !== 'function') missing.push('haraka-net-utils HarakaMx')
    if (missing.length) throw new Error(`haraka-plugin-dane: Haraka internals it relies on are missing or changed: ${missing.join(', ')}`)
    return { version, HMailItem, clientPool, outboundTls, outboundConfig, HarakaMx: netUtils.HarakaMx! }
}

const INSTALLED = Symbol.for('haraka-plugin-dane.glue')

/** Install the wrappers once per process. */
export function installGlue(h: HarakaInternals, events: GlueEvents): void {
    const proto = h.HMailItem.prototype as Record<string | symbol, unknown>
    if (proto[INSTALLED]) {
        ;(proto[INSTALLED] as { events: GlueEvents }).events = events
        return
    }
    const state = { events }
    proto[INSTALLED] = state

    const origTry = proto.try_deliver_host_on_socket as (this: HmailLike, ...a: unknown[]) => unknown
    proto.try_deliver_host_on_socket = function (this: HmailLike & { force_tls?: boolean }, mx: { dane?: MxContext; exchange: string }, host: string, port: number, socket: SocketLike) {
        delete this.dane_attempt
        if (mx?.dane) {
            // the plugin enforces TLS itself on the hosts it marked; Haraka's force_tls_hosts path would require
            // PKIX (rejecting DANE-EE) and defer the whole message on a failure instead of trying the next MX
            if (mx.dane.mode !== 'opportunistic') this.force_tls = false
            guardSocket(this, mx.dane, mx.exchange, socket, state.events)
        }
        return origTry.call(this, mx, host, port, socket)
    }

    // C20: a TLS NO-GO mark (left by an opportunistic delivery to the same address, or from before the
    // plugin was installed) must not stop a mandatory-TLS attempt from trying STARTTLS. Haraka asks
    // check_tls_nogo synchronously while it handles the EHLO reply, inside our emit wrapper below.
    const origNogo = h.outboundTls.check_tls_nogo as (host: string, ok: () => void, nogo: (when: string) => void) => void
    h.outboundTls.check_tls_nogo = function (this: unknown, host: string, ok: () => void, nogo: (when: string) => void) {
        if (mandatoryLineInProgress) return ok()
        return origNogo.call(this, host, ok, nogo)
    }

    // connection failures happen before try_deliver_host_on_socket; see them here
    const origGet = h.clientPool.get_client as (mx: Record<string, unknown>, cb: (err: unknown, s: unknown) => void) => void
    h.clientPool.get_client = function (mx: { dane?: MxContext; exchange: string }, cb: (err: unknown, s: unknown) => void) {
        if (!mx?.dane) return origGet(mx, cb)
        return origGet(mx, (err, socket) => {
            if (err) state.events.onConnectFailed(mx.dane!, mx.exchange, String(err))
            cb(err, socket)
        })
    }
}

const PRE_TLS_COMMANDS = /^(EHLO|LHLO|HELO|STARTTLS|QUIT|RSET)\b/i
// RFC 5321 4.2: a reply line is three digits, then a space, a hyphen or the end of the line
const REPLY_LINE = /^[2-5]\d\d([ -]|\r?\n?$)/

/** True while Haraka handles a reply line on a mandatory-TLS socket (see check_tls_nogo above). */
let mandatoryLineInProgress = false

// C9, C19, C20: enforce mandatory (and, for DANE, authenticated) TLS on one attempt
export function guardSocket(hmail: HmailLike, ctx: MxContext, address: string, socket: SocketLike, events: GlueEvents): Attempt {
    const attempt: Attempt = { ctx, address, startTlsOffered: false, tlsUp: false, ended: false }
    hmail.dane_attempt = attempt
    const mandatory = ctx.mode === 'dane' || ctx.mode === 'encrypt'
    const origWrite = socket.write.bind(socket)
    const origEmit = socket.emit.bind(socket)
    const origUpgrade = socket.upgrade.bind(socket)
    let lastCommand = ''

    // end this attempt: Haraka's own error handler releases the socket and tries the next MX host
    const fail = (reason: string, resultType?: string) => {
        if (attempt.ended) return
        attempt.ended = true
        attempt.failure = { resultType, reason }
        try {
            origEmit('error', new Error(`DANE: ${reason}`))
        } finally {
            socket.destroy?.()
            try {
                events.onAttemptFailed(hmail, attempt)
            } catch {
                /* logging must never stall delivery */
            }
        }
    }
    const who = `${ctx.host} [${address}]`

    socket.emit = (event: string, ...args: unknown[]) => {
        if (event === 'line' && typeof args[0] === 'string') {
            if (attempt.ended) return true
            const line = args[0] as string
            if (mandatory) {
                // lines that arrive after the STARTTLS reply and before TLS is up were injected in plaintext
                if (attempt.tlsStarted !== undefined && !attempt.tlsUp) {
                    fail(`plaintext data from ${who} after its STARTTLS reply: ${JSON.stringify(line.trim().slice(0, 80))}`, 'validation-failure')
                    return true
                }
                // before TLS, any reply but 2xx ends the attempt (next MX) instead of bouncing or deferring the message
                if (!attempt.tlsUp && !/^2\d\d[ -]?/.test(line)) {
                    const resultType = /^STARTTLS/i.test(lastCommand) ? 'starttls-not-supported' : undefined
                    fail(`${who} answered ${lastCommand ? `${lastCommand.split(/\s/)[0]} ` : 'the connection '}with ${JSON.stringify(line.trim().slice(0, 120))} before TLS`, resultType)
                    return true
                }
                if (!REPLY_LINE.test(line)) {
                    fail(`${who} sent a line that is not an SMTP reply: ${JSON.stringify(line.trim().slice(0, 80))}`)
                    return true
                }
            }
            if (/^250[ -]STARTTLS\s*$/i.test(line)) {
                attempt.startTlsOffered = true
                // policy none: Haraka must not see the offer
                if (ctx.mode === 'plaintext') args[0] = line.replace(/STARTTLS/i, 'X-STARTTLS-NOT-USED')
            }
            if (!mandatory) return origEmit(event, ...args)
            mandatoryLineInProgress = true
            try {
                return origEmit(event, ...args)
            } finally {
                mandatoryLineInProgress = false
            }
        }
        if (event === 'error' && mandatory && args[0] && typeof args[0] === 'object') {
            const err = args[0] as { source?: string; message?: string }
            // C20: never let Haraka mark a DANE or encrypt host "no TLS" for later deliveries
            // (Haraka tags every error of the raw socket with source 'tls', not only TLS ones)
            delete err.source
            if (!attempt.ended && !attempt.quitting) {
                const msg = String(err.message ?? err).trim()
                if (attempt.tlsStarted !== undefined && !attempt.tlsUp) fail(`TLS handshake with ${who} failed: ${msg}`, 'validation-failure')
                else fail(`connection to ${who} failed${attempt.tlsUp ? ' after TLS was up' : ' before TLS'}: ${msg}`)
                return true
            }
        }
        // C24: a connection the receiver closes before the message went through is an attempt of its own
        if (event === 'close' && mandatory && !attempt.ended && !attempt.quitting) {
            attempt.ended = true
            attempt.failure = { reason: `${who} closed the connection ${attempt.tlsUp ? 'after TLS was up' : 'before TLS'}` }
            try {
                events.onAttemptFailed(hmail, attempt)
            } catch {
                /* logging must never stall delivery */
            }
        }
        return origEmit(event, ...args)
    }

    if (!mandatory) return attempt

    socket.write = (...args: unknown[]) => {
        if (attempt.ended) return false
        const data = typeof args[0] === 'string' ? args[0] : Buffer.isBuffer(args[0]) ? args[0].toString('latin1') : ''
        if (!attempt.tlsUp) {
            if (!PRE_TLS_COMMANDS.test(data)) {
                // C9, C20: the MAIL transaction never starts without the required TLS
                if (!attempt.startTlsOffered) {
                    fail(`${who} did not offer STARTTLS; ${ctx.mode === 'dane' ? 'DANE' : 'policy'} requires TLS`, 'starttls-not-supported')
                } else {
                    fail(`Haraka chose not to use the offered STARTTLS with ${who} (enable_tls=false or no_tls_hosts); TLS is required`, 'dane-required')
                }
                return false
            }
            lastCommand = data.trim()
        } else if (/^QUIT\b/i.test(data)) {
            attempt.quitting = true
        }
        return origWrite(...args)
    }

    socket.upgrade = (options: Record<string, unknown>, cb?: (...a: unknown[]) => void) => {
        if (attempt.tlsStarted !== undefined) {
            fail(`a second TLS upgrade was requested on the connection to ${who}`, 'validation-failure')
            return
        }
        attempt.tlsStarted = Date.now()
        const tlsOptions: Record<string, unknown> = {
            ...options,
            // C19: SNI carries the TLSA base domain on DANE connections
            servername: ctx.mode === 'dane' && ctx.tlsaBase ? ctx.tlsaBase : options.servername,
            // authentication is DANE's (or, for encrypt, deliberately none): no PKIX rejection
            rejectUnauthorized: false,
            checkServerIdentity: () => undefined,
        }
        origUpgrade(tlsOptions, (...cbArgs: unknown[]) => {
            if (attempt.ended) return
            attempt.tlsMs = Date.now() - (attempt.tlsStarted ?? Date.now())
            if (ctx.mode === 'dane') {
                const chain = presentedChain(socket.cleartext)
                const result = verifyChain({ chain, records: ctx.records, referenceNames: ctx.referenceNames })
                attempt.verify = result
                if (!result.authenticated) {
                    const f = result.failure ?? { code: 'no-match' as const, detail: 'no TLSA record matched' }
                    fail(`DANE verification of ${who} failed: ${f.code}: ${f.detail}`, rfc8460ResultType(f.code))
                    return
                }
            }
            attempt.tlsUp = true
            cb?.(...cbArgs)
        })
    }
    return attempt
}

