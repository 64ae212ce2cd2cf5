// Receiving MTAs of the test world: real SMTP listeners (smtp-server) on
// 127.0.0.x port 25, each with its own certificate chain and switches for the
// failures a DANE client must handle. They record what arrived, over which TLS
// session, and which SNI name the client sent.
import net from 'node:net'
import tls from 'node:tls'
import { SMTPServer, SMTPServerOptions } from 'smtp-server'

export interface ListenerOptions {
    address: string // 127.0.0.x
    port?: number // 25 unless a test says otherwise
    /** PEM: the leaf first, then any intermediates, exactly as presented. */
    certChainPem?: string
    keyPem?: string
    /** a second certificate chain and key of the other type (RSA beside ECDSA): the client's signature algorithms pick one */
    also?: { certChainPem: string; keyPem: string }
    noStartTls?: boolean // do not advertise STARTTLS
    failHandshake?: boolean // abort every TLS handshake
    /**
     * A scripted server instead of smtp-server: offers STARTTLS, then answers it with these lines
     * (e.g. "454 4.7.0 TLS not available", or "220 go" followed by an injected plaintext line) and stays in plaintext.
     */
    starttlsReply?: string[]
    /** A hostile scripted server: raw replies written exactly as given (bare codes, fragments without CRLF). */
    script?: Script
}

/**
 * A scripted receiver. Each field is raw text written as it is; what follows the STARTTLS reply:
 * 'tls' a real TLS handshake (certChainPem/keyPem), then a minimal SMTP server inside TLS that accepts
 * and records the message; 'stall' nothing at all (the handshake never completes); 'plain' the session
 * goes on in plaintext (a client that sends its envelope there is recorded as having delivered).
 */
export interface Script {
    greeting?: string
    ehlo?: string
    starttls?: string
    after: 'tls' | 'stall' | 'plain'
}

export interface Received {
    listener: string
    from: string
    to: string[]
    body: string
    secure: boolean
    servername?: string
    cipher?: string
}

export interface Connection {
    startedTls: boolean
    servername?: string
}

export class Listener {
    readonly address: string
    readonly port: number
    readonly received: Received[] = []
    readonly connections: Connection[] = []
    readonly sniSeen: string[] = []
    private server?: SMTPServer
    private raw?: net.Server
    private rawSockets = new Set<net.Socket>()

    constructor(readonly opts: ListenerOptions) {
        this.address = opts.address
        this.port = opts.port ?? 25
    }

    async start(): Promise<void> {
        if (this.server || this.raw) return // already listening
        if (this.opts.starttlsReply)
            return this.startHostile({
                ehlo: `250-mx-${this.address}\r\n250-STARTTLS\r\n250 8BITMIME\r\n`,
                starttls: this.opts.starttlsReply.map((l) => `${l}\r\n`).join(''),
                after: 'plain',
            })
        if (this.opts.script) return this.startHostile(this.opts.script)
        const o = this.opts
        const options: SMTPServerOptions = {
            secure: false,
            authOptional: true,
            disabledCommands: ['AUTH'],
            hideSTARTTLS: !!o.noStartTls,
            name: `mx-${this.address}`,
            logger: false,
            key: o.also ? ([o.keyPem, o.also.keyPem] as string[]) : o.keyPem,
            cert: o.also ? ([o.certChainPem, o.also.certChainPem] as string[]) : o.certChainPem,
            // failHandshake: an ECDSA certificate with only RSA-authenticated TLS 1.2 suites → "no shared cipher"
            ...(o.failHandshake ? { maxVersion: 'TLSv1.2' as const, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' } : {}),
            SNICallback: (servername, cb) => {
                this.sniSeen.push(servername)
                cb(null, undefined)
            },
            onConnect: (_session, cb) => {
                this.connections.push({ startedTls: false })
                cb()
            },
            onSecure: (_socket, session, cb) => {
                const c = this.connections[this.connections.length - 1]
                if (c) {
                    c.startedTls = true
                    c.servername = session.servername || undefined
                }
                cb()
            },
            onData: (stream, session, cb) => {
                const chunks: Buffer[] = []
                stream.on('data', (d: Buffer) => chunks.push(d))
                stream.on('end', () => {
                    this.received.push({
                        listener: this.address,
                        from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
                        to: session.envelope.rcptTo.map((r) => r.address),
                        body: Buffer.concat(chunks).toString('utf8'),
                        secure: session.secure,
                        servername: session.servername || undefined,
                        cipher: session.tlsOptions ? session.tlsOptions.name : undefined,
                    })
                    cb()
                })
            },
        }
        this.server = new SMTPServer(options)
        this.server.on('error', () => {
            /* a client that drops the connection mid-handshake is expected here */
        })
        await new Promise<void>((resolve, reject) => {
            this.server!.once('error', reject)
            this.server!.listen(this.port, this.address, () => {
                this.server!.removeListener('error', reject)
                resolve()
            })
        })
    }

    private async startHostile(script: Script): Promise<void> {
        const sockets = this.rawSockets
        const o = this.opts
        this.raw = net.createServer((sock) => {
            sockets.add(sock)
            sock.on('close', () => sockets.delete(sock))
            sock.on('error', () => undefined)
            const conn: Connection = { startedTls: false }
            this.connections.push(conn)
            sock.write(script.greeting ?? `220 mx-${this.address} ESMTP hostile\r\n`)
            this.commands(sock, false, (cmd) => {
                if (cmd.startsWith('EHLO') || cmd.startsWith('HELO')) sock.write(script.ehlo ?? `250-mx-${this.address}\r\n250 STARTTLS\r\n`)
                else if (cmd.startsWith('STARTTLS')) {
                    sock.write(script.starttls ?? '220 2.0.0 go\r\n')
                    if (script.after === 'plain') return
                    sock.removeAllListeners('data')
                    if (script.after === 'stall') return
                    const secure = new tls.TLSSocket(sock, {
                        isServer: true,
                        key: o.keyPem,
                        cert: o.certChainPem,
                        SNICallback: (name, cb) => {
                            conn.servername = name
                            this.sniSeen.push(name)
                            cb(null, undefined)
                        },
                    })
                    secure.on('error', () => undefined)
                    secure.on('secure', () => (conn.startedTls = true))
                    this.commands(secure, true, (c) => {
                        if (c.startsWith('EHLO') || c.startsWith('HELO')) secure.write(`250-mx-${this.address}\r\n250 8BITMIME\r\n`)
                        else if (c.startsWith('QUIT')) secure.end('221 bye\r\n')
                        else secure.write('250 ok\r\n')
                    })
                } else if (cmd.startsWith('QUIT')) sock.end('221 bye\r\n')
                else if (cmd.startsWith('MAIL') || cmd.startsWith('RCPT') || cmd.startsWith('DATA')) {
                    // a client that got this far sent envelope data in plaintext: record it as received
                    this.received.push({ listener: this.address, from: cmd, to: [], body: '', secure: false })
                    sock.write('250 ok\r\n')
                } else sock.write('502 not here\r\n')
            })
        })
        const server = this.raw
        await new Promise<void>((resolve, reject) => {
            server.once('error', reject)
            server.listen(this.port, this.address, () => resolve())
        })
    }

    /** A command loop; DATA collects the message up to "." and records it (a message received over `secure`). */
    private commands(sock: net.Socket, secure: boolean, onCommand: (cmd: string) => void): void {
        let buf = ''
        let data: string | undefined
        let from = ''
        const to: string[] = []
        sock.on('data', (d: Buffer) => {
            buf += d.toString('latin1')
            for (;;) {
                if (data !== undefined) {
                    const end = buf.indexOf('\r\n.\r\n')
                    if (end < 0) return
                    data += buf.slice(0, end + 2)
                    buf = buf.slice(end + 5)
                    const body = Buffer.from(data.replace(/^\.\./gm, '.'), 'latin1').toString('utf8')
                    this.received.push({ listener: this.address, from, to: [...to], body, secure })
                    data = undefined
                    sock.write('250 2.0.0 ok\r\n')
                    continue
                }
                const i = buf.indexOf('\r\n')
                if (i < 0) return
                const line = buf.slice(0, i)
                buf = buf.slice(i + 2)
                const cmd = line.toUpperCase()
                if (cmd.startsWith('MAIL FROM:')) from = /<([^>]*)>/.exec(line)?.[1] ?? ''
                if (cmd.startsWith('RCPT TO:')) to.push(/<([^>]*)>/.exec(line)?.[1] ?? '')
                if (cmd === 'DATA' && secure) {
                    data = ''
                    sock.write('354 go ahead\r\n')
                    continue
                }
                onCommand(cmd)
            }
        })
    }

    async stop(): Promise<void> {
        const s = this.server
        this.server = undefined
        if (s) await new Promise<void>((resolve) => s.close(() => resolve()))
        const r = this.raw
        this.raw = undefined
        if (r) {
            this.rawSockets.forEach((x) => x.destroy())
            await new Promise<void>((resolve) => r.close(() => resolve()))
        }
    }
}
