/**
 * The STARTTLS session guard: one SMTP client session to one MX address, as an explicit state
 * machine with no I/O (the model: h11, where every transition lives in one file and the protocol
 * code touches no socket). The Haraka adapter (lib/haraka-adapter.ts) feeds it every raw chunk
 * received, every reply line Haraka is about to read, every command Haraka wants to write, the
 * result of the TLS handshake and the socket's timeout, error and close; it acts on the verdict.
 *
 * States (what the session is waiting for):
 *   greeting       connected, the 220 greeting is due
 *   ehlo           EHLO/HELO/LHLO sent, its reply is due (the STARTTLS offer is read from it)
 *   starttls-sent  STARTTLS sent, its reply is due
 *   handshaking    the STARTTLS reply is complete; the TLS handshake is under way: nothing may arrive
 *   verified       TLS is up and the host's policy accepted it (DANE: authenticated); anything goes
 *   session        the session goes on without TLS (opportunistic host without STARTTLS, policy none)
 *   quitting       QUIT sent: what follows is the ordinary end of a connection
 *   failed         the attempt is over; the adapter ends it and Haraka tries the next MX host
 *
 * Rules, each named by the conformance item it implements (docs/conformance.md):
 *   C26  any byte after the STARTTLS reply's final line and before the handshake, a whole line or
 *        a fragment, fails the attempt, on every host: the line buffer is empty when TLS starts
 *   C27  before TLS on a host where TLS is mandatory, a reply the guard does not accept (malformed,
 *        a bare code, 3xx, 4xx, 5xx) fails the attempt: an unauthenticated peer never bounces or
 *        defers a message. Before TLS every reply is read to the letter of RFC 5321 4.2, bounded in
 *        lines and bytes; after TLS, as Haraka reads it (a sloppy line from a server that took the
 *        message must not become a failed attempt and a second copy elsewhere)
 *   C9   a mandatory-TLS host that does not offer STARTTLS gets no MAIL transaction
 *   C20  no command past EHLO/STARTTLS/QUIT/RSET leaves before the required TLS is up
 *   C24  timeouts and closes are reported with the state they happened in
 * And one repair of Haraka's reading: a bare reply code ("250" alone, valid RFC 5321 4.2) is
 * handed to Haraka as "250 ", which its reply pattern needs, wherever the guard accepts it.
 */

import type { ResultType } from './result-type'

/**
 * What this host's policy requires of the session (from lib/policy's HostMode): authenticated by DANE,
 * authenticated by PKIX (an MTA-STS policy in enforce mode), encrypted without authentication, or not.
 */
export type Requirement = 'authenticated' | 'pkix' | 'encrypted' | 'opportunistic' | 'plaintext'

export type SessionState = 'greeting' | 'ehlo' | 'starttls-sent' | 'handshaking' | 'verified' | 'session' | 'quitting' | 'failed'

export type SessionInput =
    | { kind: 'chunk'; text: string } // raw bytes received (as Haraka's line reader decodes them)
    | { kind: 'line'; text: string } // one line Haraka's line reader is about to hand to Haraka, newline included
    | { kind: 'write'; text: string } // what Haraka wants to send
    | { kind: 'handshake'; ok: true } // the TLS handshake finished and the policy accepted the peer
    | { kind: 'handshake'; ok: false; reason: string; resultType: ResultType } // … or did not accept it
    | { kind: 'timeout' }
    | { kind: 'error'; message: string }
    | { kind: 'close' }

export type Verdict =
    | { action: 'allow'; line?: string } // pass it on (a line possibly rewritten for Haraka)
    | { action: 'fail'; reason: string; resultType?: ResultType } // end the attempt: the next MX host is tried
    | { action: 'drop' } // the attempt is over: swallow it

// ---------------------------------------------------------------------------
// RFC 5321 4.2 replies: the one parser (the guard and the probe of lib/probe.ts)
// ---------------------------------------------------------------------------

export interface ReplyLine {
    code: number
    /** false on a "NNN-" continuation line */
    last: boolean
    /** the text after the code and its separator, without the line ending */
    text: string
    /** "NNN" alone on its line: valid, and the end of a reply */
    bare: boolean
}

// Reply-code = %x32-35 %x30-35 %x30-39; then "-" (more lines), SP text, or the end of the line
const REPLY = /^([2-5][0-5][0-9])(?:([ -])(.*)|)$/

/** One reply line (RFC 5321 4.2), with or without its CRLF; null when it is not one. */
export function parseReplyLine(raw: string): ReplyLine | null {
    const line = raw.replace(/\r?\n$/, '')
    if (line.includes('\n') || line.includes('\r')) return null
    const m = REPLY.exec(line)
    if (!m) return null
    if (m[2] === undefined) return { code: Number(m[1]), last: true, text: '', bare: true }
    return { code: Number(m[1]), last: m[2] === ' ', text: m[3], bare: false }
}

/**
 * An EHLO reply line that offers STARTTLS (RFC 3207 4), read exactly as Haraka reads it (the whole
 * text after the code is the keyword), so that the guard and Haraka agree on whether it was offered.
 */
export function offersStartTls(text: string): boolean {
    // Haraka drops an optional "#" and an enhanced status code before the keyword
    return (/^#?(?:\d\.\d\.\d\s)?(.*)$/s.exec(text)?.[1] ?? '').toUpperCase() === 'STARTTLS'
}

/** Bounds on one reply (an EHLO reply has a dozen lines), and on characters received but not yet a line. */
export const MAX_REPLY_LINES = 100
export const MAX_REPLY_BYTES = 64 * 1024

/**
 * Haraka's own reply pattern (outbound/hmail.js smtp_regexp): what Haraka can read at all. After TLS
 * the guard accepts what Haraka accepts, so that a sloppy line from a server that took the message
 * ("250 queued" CR CR LF) is not turned into a failed attempt and a second copy at the next MX.
 */
const HARAKA_REPLY = /^([2345]\d\d)([ -])#?(?:(\d\.\d\.\d)\s)?(.*)/

/** A whole reply: the lines of one code, the last one final. */
export interface Reply {
    code: number
    lines: string[]
}

/**
 * Collects reply lines into replies: `push` returns a Reply when a line completes one, null while
 * it continues, and an Error for a line that is no reply line or changes the code mid-reply.
 */
export class ReplyAssembler {
    private code = -1
    private lines: string[] = []
    private bytes = 0
    push(raw: string): Reply | null | Error {
        const l = parseReplyLine(raw)
        if (!l) return new Error(`not an SMTP reply line: ${JSON.stringify(raw.replace(/\r?\n$/, '').slice(0, 80))}`)
        if (this.code >= 0 && l.code !== this.code) return new Error(`reply code changed within a multi-line reply (${this.code} then ${l.code})`)
        // a reply that never ends would grow until the MTA runs out of memory
        this.bytes += raw.length
        if (this.lines.length >= MAX_REPLY_LINES || this.bytes > MAX_REPLY_BYTES)
            return new Error(`reply longer than ${MAX_REPLY_LINES} lines or ${MAX_REPLY_BYTES} bytes`)
        this.code = l.code
        this.lines.push(l.text)
        if (!l.last) return null
        const reply = { code: l.code, lines: this.lines }
        this.code = -1
        this.lines = []
        this.bytes = 0
        return reply
    }
    /** a reply has begun and not ended */
    get open(): boolean {
        return this.code >= 0
    }
}

// ---------------------------------------------------------------------------
// The guard
// ---------------------------------------------------------------------------

const PRE_TLS_COMMANDS = /^(EHLO|LHLO|HELO|STARTTLS|QUIT|RSET)\b/i
const ALLOW: Verdict = { action: 'allow' }
const DROP: Verdict = { action: 'drop' }

/** "250" CRLF → "250 " CRLF, which Haraka's reply pattern reads */
function bareForHaraka(text: string): string {
    return `${text.slice(0, 3)} ${text.slice(3)}`
}

function firstWord(text: string): string {
    return (/^\s*(\S+)/.exec(text)?.[1] ?? '').toUpperCase()
}

function shown(text: string, max = 80): string {
    return JSON.stringify(text.replace(/\r?\n$/, '').slice(0, max))
}

/** what the session was waiting for, for a reason a postmaster reads */
const WAITING: Record<SessionState, string> = {
    greeting: 'waiting for the greeting',
    ehlo: 'waiting for the EHLO reply',
    'starttls-sent': 'waiting for the STARTTLS reply',
    handshaking: 'during the TLS handshake',
    verified: 'after TLS was up',
    session: 'in the session without TLS',
    quitting: 'after QUIT',
    failed: 'after the attempt failed',
}

export class SessionGuard {
    state: SessionState = 'greeting'
    /** the EHLO reply offered STARTTLS */
    startTlsOffered = false
    /** the name on the first line of the server's EHLO reply, once seen (RFC 8460 receiving-mx-helo) */
    helo?: string
    /** the failure that ended the attempt, once there is one */
    failure?: { reason: string; resultType?: ResultType; state: SessionState }
    private received = 0 // characters received
    private consumed = 0 // characters handed out as lines
    private continued = 0 // continuation lines of the reply under way, after TLS
    private readonly replies = new ReplyAssembler()

    /** `who` names the peer in reasons, e.g. "mx.example.com [192.0.2.1]" */
    constructor(
        readonly requirement: Requirement,
        private readonly who: string,
    ) {}

    /** TLS is mandatory on this host (DANE, MTA-STS enforce, or policy encrypt) */
    get mandatory(): boolean {
        return this.requirement === 'authenticated' || this.requirement === 'pkix' || this.requirement === 'encrypted'
    }

    /** The one entry point: the verdict on one input; the state moves accordingly. */
    feed(input: SessionInput): Verdict {
        if (this.state === 'failed') return input.kind === 'write' || input.kind === 'line' || input.kind === 'chunk' ? DROP : ALLOW
        switch (input.kind) {
            case 'chunk':
                return this.onChunk(input.text)
            case 'line':
                return this.onLine(input.text)
            case 'write':
                return this.onWrite(input.text)
            case 'handshake':
                if (this.state !== 'handshaking') return this.fail(`a TLS upgrade was requested ${WAITING[this.state]} with ${this.who}`, 'validation-failure')
                if (!input.ok) return this.fail(input.reason, input.resultType)
                this.state = 'verified'
                return ALLOW
            case 'timeout':
                if (this.state === 'quitting') return ALLOW
                return this.fail(`${this.who} timed out ${WAITING[this.state]}`, this.tlsResultType())
            case 'error':
                if (this.state === 'quitting') return ALLOW
                // without mandatory TLS, a connection error is Haraka's to handle (its own opportunistic behaviour)
                if (!this.mandatory) return ALLOW
                if (this.state === 'handshaking') return this.fail(`TLS handshake with ${this.who} failed: ${input.message}`, 'validation-failure')
                return this.fail(`connection to ${this.who} failed ${WAITING[this.state]}: ${input.message}`, this.tlsResultType())
            case 'close':
                if (this.state === 'quitting' || !this.mandatory) return ALLOW
                return this.fail(`${this.who} closed the connection ${WAITING[this.state]}`, this.tlsResultType())
        }
    }

    private fail(reason: string, resultType?: ResultType): Verdict {
        this.failure = { reason, resultType, state: this.state }
        this.state = 'failed'
        return { action: 'fail', reason, resultType }
    }

    // RFC 8460: a session that ended while TLS was being negotiated failed validation
    private tlsResultType(): ResultType | undefined {
        return this.state === 'starttls-sent' || this.state === 'handshaking' ? 'validation-failure' : undefined
    }

    private onChunk(text: string): Verdict {
        // C26: the peer may send nothing between its STARTTLS reply and the TLS handshake
        if (this.state === 'handshaking')
            return this.fail(`${this.who} sent plaintext data after its STARTTLS reply, before the TLS handshake: ${shown(text)}`, 'validation-failure')
        this.received += text.length
        if (this.received - this.consumed > MAX_REPLY_BYTES)
            return this.fail(`${this.who} sent more than ${MAX_REPLY_BYTES} characters without ending a line ${WAITING[this.state]}`, this.tlsResultType())
        return ALLOW
    }

    private onLine(text: string): Verdict {
        if (this.state === 'quitting') return ALLOW
        if (this.state === 'handshaking')
            return this.fail(`${this.who} sent plaintext data after its STARTTLS reply, before the TLS handshake: ${shown(text)}`, 'validation-failure')
        this.consumed += text.length
        const before = this.state
        if (before === 'verified' || before === 'session') return this.asHarakaReads(text)
        // before TLS (every host): RFC 5321 4.2 to the letter, whole replies, bounded
        const line = parseReplyLine(text)
        const reply = this.replies.push(text)
        // a line Haraka could only bounce on: never a reason to bounce, whatever the host
        if (reply instanceof Error)
            return this.fail(`${this.who} ${reply.message} before TLS`, before === 'starttls-sent' ? 'starttls-not-supported' : undefined)
        const l = line as ReplyLine
        if (this.mandatory) {
            // C27: before TLS the peer is unauthenticated: it can end this attempt, never bounce or defer the message
            // (Haraka bounces on 5xx and defers the whole message on 3xx and 4xx)
            const sent = before === 'greeting' ? 'the connection' : before === 'ehlo' ? 'EHLO' : 'STARTTLS'
            const resultType = before === 'starttls-sent' ? 'starttls-not-supported' : undefined
            if (l.bare) return this.fail(`${this.who} answered ${sent} with a bare reply code ${shown(text)} before TLS`, resultType)
            if (l.code >= 300) return this.fail(`${this.who} answered ${sent} with ${shown(text, 120)} before TLS`, resultType)
        }
        let out = text
        // RFC 8460 4.4 receiving-mx-helo: the name the server gives on the first line of its EHLO reply
        if (before === 'ehlo' && this.helo === undefined && l.code === 250) this.helo = (/^\s*(\S+)/.exec(l.text)?.[1] ?? '').slice(0, 255)
        if (before === 'ehlo' && offersStartTls(l.text)) {
            this.startTlsOffered = true
            // policy none: Haraka must not see the offer
            if (this.requirement === 'plaintext') out = text.replace(/STARTTLS/i, 'X-STARTTLS-NOT-USED')
        }
        if (reply !== null && before === 'starttls-sent' && reply.code >= 200 && reply.code < 300) {
            // C26: the STARTTLS reply must be the last thing read in plaintext
            if (this.received > this.consumed) {
                return this.fail(
                    `${this.who} sent ${this.received - this.consumed} more character(s) after its STARTTLS reply, before the TLS handshake (response injection)`,
                    'validation-failure',
                )
            }
            this.state = 'handshaking'
        }
        // Haraka's reply pattern needs a separator after the code; "250" alone is a valid final line
        if (l.bare) out = bareForHaraka(text)
        return out === text ? ALLOW : { action: 'allow', line: out }
    }

    // after TLS (or going on without it): what Haraka can read passes; only what it cannot ends the attempt
    private asHarakaReads(text: string): Verdict {
        // a line Haraka's pattern takes has a separator after its code, so it is never a bare code: asked first
        const m = HARAKA_REPLY.exec(text)
        const bare = m === null && parseReplyLine(text)?.bare === true
        if (!bare && !m) return this.fail(`${this.who} sent a line that is not an SMTP reply ${WAITING[this.state]}: ${shown(text)}`)
        this.continued = m?.[2] === '-' ? this.continued + 1 : 0
        if (this.continued >= MAX_REPLY_LINES) return this.fail(`${this.who} sent a reply longer than ${MAX_REPLY_LINES} lines ${WAITING[this.state]}`)
        return bare ? { action: 'allow', line: bareForHaraka(text) } : ALLOW
    }

    private onWrite(text: string): Verdict {
        if (this.state === 'handshaking')
            return this.fail(`Haraka wrote ${shown(firstWord(text))} to ${this.who} during the TLS handshake`, 'validation-failure')
        if (this.state === 'quitting') return ALLOW
        const preTls = this.state === 'greeting' || this.state === 'ehlo' || this.state === 'starttls-sent'
        if (preTls && PRE_TLS_COMMANDS.test(text)) {
            const verb = firstWord(text)
            if (verb === 'STARTTLS') this.state = 'starttls-sent'
            else if (verb === 'QUIT') this.state = 'quitting'
            else if (verb !== 'RSET') this.state = 'ehlo'
            return ALLOW
        }
        if (preTls) {
            // C9, C20: the MAIL transaction never starts without the required TLS
            if (this.mandatory) {
                const required = this.requirement === 'authenticated' ? 'DANE' : this.requirement === 'pkix' ? 'MTA-STS' : 'policy'
                if (!this.startTlsOffered) return this.fail(`${this.who} did not offer STARTTLS; ${required} requires TLS`, 'starttls-not-supported')
                return this.fail(
                    `Haraka chose not to use the offered STARTTLS with ${this.who} (enable_tls=false or no_tls_hosts); TLS is required`,
                    'dane-required',
                )
            }
            this.state = 'session'
            return ALLOW
        }
        // a QUIT command line (a message body is written in other pieces, never as this line alone)
        if (/^QUIT\r?\n?$/i.test(text)) this.state = 'quitting'
        return ALLOW
    }
}

/** The requirement of a host mode (lib/policy): skip never connects. */
export function requirementOf(mode: 'dane' | 'encrypt' | 'opportunistic' | 'plaintext' | 'sts' | 'skip'): Requirement {
    switch (mode) {
        case 'dane':
            return 'authenticated'
        case 'sts':
            return 'pkix'
        case 'encrypt':
            return 'encrypted'
        case 'plaintext':
            return 'plaintext'
        default:
            return 'opportunistic'
    }
}
