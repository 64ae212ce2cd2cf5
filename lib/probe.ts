// A live STARTTLS probe of one SMTP server address, for the command-line tool:
// TCP → 220 greeting → EHLO → STARTTLS (if offered) → TLS handshake with the
// SNI the plugin would send (C19) and no PKIX rejection → the presented chain
// → QUIT. Every step has its own timeout; nothing throws: each failure comes
// back as data naming the step it happened in. No verification here: the
// caller runs verifyChain() on `tls.chain`, exactly as the Haraka glue does.
import net from 'node:net'
import os from 'node:os'
import tls from 'node:tls'
import { presentedChain } from './peer-chain'
import { webPkiCheck, type WebPkiCheck } from './webpki'
import { ReplyAssembler, offersStartTls, MAX_REPLY_BYTES } from './session'

export type ProbeStep = 'connect' | 'greeting' | 'ehlo' | 'starttls' | 'tls' | 'quit'

export interface ProbeOptions {
    address: string
    /** default 25 */
    port?: number
    /** SNI for the TLS handshake; omitted or an IP address → no SNI */
    servername?: string
    /** EHLO argument; default the local host name */
    ehloName?: string
    /** per step (connect, each SMTP reply, the TLS handshake); default 10000 */
    timeoutMs?: number
    /** MTA-STS: also check the chain by PKIX for this host name, against these CAs (node's store when undefined) */
    pkixFor?: { host: string; ca?: string | Buffer }
    /**
     * Offer only this family's signature algorithms, so that a server with an RSA and an ECDSA certificate
     * presents that one (RFC 8446 4.2.3; OpenSSL picks the certificate by them in TLS 1.2 too)
     */
    certType?: CertType
}

export type CertType = 'ECDSA' | 'RSA'

/** The signature algorithms offered for each certificate type (OpenSSL names). */
export const SIGALGS: Record<CertType, string> = {
    ECDSA: 'ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:ecdsa_secp521r1_sha512:ed25519:ed448',
    RSA: 'rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:rsa_pss_pss_sha256:rsa_pkcs1_sha256:rsa_pkcs1_sha384:rsa_pkcs1_sha512',
}

export type { Reply as SmtpReply } from './session'
import type { Reply as SmtpReply } from './session'

export interface ProbeTls {
    protocol: string | null
    cipher: string
    servername?: string
    /** DER, leaf first (presentedChain) */
    chain: Buffer[]
    /** ms for the handshake */
    handshakeMs: number
    /** the PKIX check ProbeOptions.pkixFor asked for */
    pkix?: WebPkiCheck
    /** the presented leaf's key: ECDSA, RSA, Ed25519, ... */
    keyType?: string
}

const KEY_TYPES: Record<string, string> = { ec: 'ECDSA', rsa: 'RSA', 'rsa-pss': 'RSA', ed25519: 'Ed25519', ed448: 'Ed448', dsa: 'DSA' }

export interface ProbeResult {
    address: string
    port: number
    /** the certificate type asked for (ProbeOptions.certType), when one was */
    certType?: CertType
    /** TCP connection established */
    connected: boolean
    greeting?: SmtpReply
    ehlo?: SmtpReply
    /** undefined when the EHLO step was not reached */
    startTlsOffered?: boolean
    startTlsReply?: SmtpReply
    tls?: ProbeTls
    /** the first step that failed; absent when every step that applied succeeded */
    error?: { step: ProbeStep; message: string }
    ms: number
}

const DEFAULT_TIMEOUT_MS = 10000

class StepError extends Error {
    constructor(
        readonly step: ProbeStep,
        message: string,
    ) {
        super(message)
    }
}

/** Reads SMTP replies (RFC 5321 4.2) from a plain or TLS socket. */
class ReplyReader {
    private buf = ''
    private waiter?: { resolve: (r: SmtpReply) => void; reject: (e: Error) => void }
    private failure?: Error
    private readonly onData = (chunk: Buffer): void => {
        this.buf += chunk.toString('latin1')
        if (this.buf.length > MAX_REPLY_BYTES) this.fail(new Error('reply too long'))
        else this.pump()
    }
    private readonly onEnd = (): void => this.fail(new Error('connection closed by the server'))
    private readonly onError = (err: Error): void => this.fail(err)

    constructor(private sock: net.Socket) {
        this.attach(sock)
    }

    private attach(sock: net.Socket): void {
        sock.on('data', this.onData)
        sock.on('end', this.onEnd)
        sock.on('close', this.onEnd)
        sock.on('error', this.onError)
    }

    detach(): void {
        this.sock.off('data', this.onData)
        this.sock.off('end', this.onEnd)
        this.sock.off('close', this.onEnd)
        this.sock.off('error', this.onError)
    }

    /** Bytes received after the last complete reply (must be empty before STARTTLS, RFC 3207 / CVE-2011-0411). */
    pending(): string {
        return this.buf
    }

    switchTo(sock: net.Socket): void {
        this.detach()
        this.sock = sock
        this.buf = ''
        this.failure = undefined
        this.attach(sock)
    }

    private fail(err: Error): void {
        if (!this.failure) this.failure = err
        const w = this.waiter
        this.waiter = undefined
        w?.reject(err)
    }

    private pump(): void {
        if (!this.waiter) return
        const reply = this.take()
        if (reply instanceof Error) return this.fail(reply)
        if (reply) {
            const w = this.waiter
            this.waiter = undefined
            w.resolve(reply)
        }
    }

    /** One complete reply from the buffer, null if incomplete, Error if malformed (the guard's parser, lib/session). */
    private take(): SmtpReply | Error | null {
        const replies = new ReplyAssembler()
        let pos = 0
        for (;;) {
            const nl = this.buf.indexOf('\n', pos)
            if (nl < 0) return null
            const reply = replies.push(this.buf.slice(pos, nl + 1))
            pos = nl + 1
            if (reply instanceof Error) return reply
            if (reply) {
                this.buf = this.buf.slice(pos)
                return reply
            }
        }
    }

    read(step: ProbeStep, timeoutMs: number): Promise<SmtpReply> {
        return new Promise<SmtpReply>((resolve, reject) => {
            const timer = setTimeout(() => {
                this.waiter = undefined
                reject(new StepError(step, `no complete reply within ${timeoutMs} ms`))
            }, timeoutMs)
            const done =
                <T>(f: (v: T) => void) =>
                (v: T) => {
                    clearTimeout(timer)
                    f(v)
                }
            this.waiter = {
                resolve: done(resolve),
                reject: done((e: Error) => reject(e instanceof StepError ? e : new StepError(step, e.message))),
            }
            if (this.failure) return this.fail(this.failure)
            this.pump()
        })
    }
}

/**
 * Resolve with `sock` once it emits `ready`; reject with a StepError on its first error or when
 * `timeoutMs` passes first (the socket is destroyed then). Later errors are the reply reader's.
 */
function settle<S extends net.Socket>(
    sock: S,
    ready: string,
    step: ProbeStep,
    timeoutMs: number,
    late: string,
    errorText: (err: Error & { code?: string; reason?: string }) => string,
): Promise<S> {
    return new Promise<S>((resolve, reject) => {
        const timer = setTimeout(() => {
            sock.destroy()
            reject(new StepError(step, `${late} within ${timeoutMs} ms`))
        }, timeoutMs)
        sock.once(ready, () => {
            clearTimeout(timer)
            sock.removeAllListeners('error')
            sock.on('error', () => undefined) // the reply reader reports errors from here on
            resolve(sock)
        })
        sock.once('error', (err: Error & { code?: string; reason?: string }) => {
            clearTimeout(timer)
            sock.destroy()
            reject(new StepError(step, errorText(err)))
        })
    })
}

function connect(address: string, port: number, timeoutMs: number): Promise<net.Socket> {
    return settle(net.connect({ host: address, port }), 'connect', 'connect', timeoutMs, 'no TCP connection', (err) =>
        err.code ? `${err.code}: ${err.message}` : err.message,
    )
}

function handshake(sock: net.Socket, servername: string | undefined, timeoutMs: number, ca?: string | Buffer, certType?: CertType): Promise<tls.TLSSocket> {
    const secure = tls.connect({
        socket: sock,
        servername,
        ...(certType ? { sigalgs: SIGALGS[certType] } : {}),
        // the CAs a PKIX check (MTA-STS) trusts; the handshake itself never rejects
        ...(ca ? { ca } : {}),
        // DANE (or, for encrypt hosts, deliberately nothing) authenticates, not PKIX
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
    })
    // OpenSSL's message is a multi-line dump; its reason and code say the same in one line
    return settle(secure, 'secureConnect', 'tls', timeoutMs, 'no TLS handshake', (err) =>
        err.reason ? `${err.reason}${err.code ? ` (${err.code})` : ''}` : err.message.replace(/\s+/g, ' ').trim(),
    )
}

function replyText(r: SmtpReply): string {
    return `${r.code} ${r.lines.join(' / ')}`
}

/** Probe one address. Never throws or rejects. */
export async function probe(opts: ProbeOptions): Promise<ProbeResult> {
    const port = opts.port ?? 25
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const ehloName = opts.ehloName ?? (os.hostname() || 'localhost')
    const started = Date.now()
    const result: ProbeResult = { address: opts.address, port, connected: false, ms: 0, ...(opts.certType ? { certType: opts.certType } : {}) }
    let sock: net.Socket | undefined
    let secure: tls.TLSSocket | undefined
    let reader: ReplyReader | undefined
    const send = (line: string): void => {
        ;(secure ?? sock)?.write(`${line}\r\n`)
    }
    try {
        sock = await connect(opts.address, port, timeoutMs)
        result.connected = true
        reader = new ReplyReader(sock)

        // RFC 5321 4.3.1: the greeting is 220; 554 means "no service here"
        result.greeting = await reader.read('greeting', timeoutMs)
        if (result.greeting.code !== 220) throw new StepError('greeting', `greeting is not 220: ${replyText(result.greeting)}`)

        send(`EHLO ${ehloName}`)
        result.ehlo = await reader.read('ehlo', timeoutMs)
        if (result.ehlo.code !== 250) throw new StepError('ehlo', `EHLO refused: ${replyText(result.ehlo)}`)
        // RFC 3207 4: the STARTTLS keyword in the EHLO reply (the first line is the greeting text)
        result.startTlsOffered = result.ehlo.lines.some(offersStartTls)
        if (!result.startTlsOffered) {
            send('QUIT')
            await reader.read('quit', Math.min(timeoutMs, 2000)).catch(() => undefined)
            return result
        }

        send('STARTTLS')
        result.startTlsReply = await reader.read('starttls', timeoutMs)
        if (result.startTlsReply.code !== 220) throw new StepError('starttls', `STARTTLS refused: ${replyText(result.startTlsReply)}`)
        // RFC 3207 / CVE-2011-0411: nothing may follow the 220 in the clear
        if (reader.pending().length > 0) throw new StepError('starttls', 'the server sent data after its STARTTLS reply, before the TLS handshake')
        reader.detach()

        const servername = opts.servername && net.isIP(opts.servername) === 0 ? opts.servername : undefined
        const t0 = Date.now()
        secure = await handshake(sock, servername, timeoutMs, opts.pkixFor?.ca, opts.certType)
        // before presentedChain, after which node's getPeerCertificate() has nothing left to give (lib/peer-chain)
        const pkix = opts.pkixFor ? webPkiCheck(opts.pkixFor.host, secure) : undefined
        const presented = presentedChain(secure)
        const leafKey = presented[0]?.publicKey.asymmetricKeyType
        result.tls = {
            protocol: secure.getProtocol(),
            cipher: secure.getCipher()?.name ?? '',
            servername,
            chain: presented.map((c) => c.raw),
            handshakeMs: Date.now() - t0,
            ...(leafKey ? { keyType: KEY_TYPES[leafKey] ?? leafKey } : {}),
        }
        if (pkix) result.tls.pkix = pkix
        reader.switchTo(secure)
        send('QUIT')
        // a server that hangs up without a 221 is not a failure worth reporting
        await reader.read('quit', Math.min(timeoutMs, 2000)).catch(() => undefined)
        return result
    } catch (e) {
        const err = e instanceof StepError ? e : new StepError('connect', e instanceof Error ? e.message : String(e))
        result.error = { step: err.step, message: err.message }
        return result
    } finally {
        reader?.detach()
        secure?.destroy()
        sock?.destroy()
        result.ms = Date.now() - started
    }
}
