/**
 * The transport (C1, C2): one exchange of a query for a reply with the configured resolver, over
 * UDP or, after TC, over TCP. What a received message means is decided in one place, judge(), for
 * both; the UDP and TCP parts only do the socket work: a fresh connected UDP socket per attempt
 * (random source port, RFC 5452 §9.2), TCP with the 2-byte length prefix (RFC 1035 §4.2.2,
 * RFC 7766 §8) reassembled from split reads. Every attempt gets a fresh random 16-bit ID
 * (crypto.randomInt, RFC 5452 §4.3). Retries and the meaning of a reply are not decided here.
 */
import { randomInt } from 'node:crypto'
import * as dgram from 'node:dgram'
import * as net from 'node:net'
import { classifyReply, encodeQuery, type DecodedReply } from './wire'

/** How one exchange ended. */
export type Exchange =
    | { kind: 'reply'; reply: DecodedReply; buf: Buffer }
    | { kind: 'truncated' }
    | { kind: 'timeout'; sawMalformed: boolean }
    | { kind: 'failed'; reason: string }

/** What one received message means for the exchange waiting for it: keep waiting, or finish with an outcome. */
export type Verdict = { wait: true; undecodable: boolean } | { wait: false; outcome: Exchange }

/** The counters the transport keeps (they are the resolver's stats). */
export interface TransportCounters {
    /** UDP queries sent on the wire */
    udp: number
    /** TCP queries sent on the wire */
    tcp: number
    /** messages discarded: not from the resolver, not our question, or undecodable */
    discarded: number
}

export interface TransportTarget {
    address: string
    port: number
    /** per exchange */
    timeoutMs: number
}

/**
 * C2: the one judge of a message received on an exchange, UDP and TCP alike. A reply that does not
 * match (ID, question, class: RFC 5452 §9.1) is discarded and the wait goes on; so is an undecodable
 * one, which cannot be attributed to us (remembered: if nothing else comes, the timeout says
 * 'malformed reply'). A matching reply whose body is malformed ends the exchange at once.
 */
export function judge(msg: Buffer, id: number, qname: string, qtype: number): Verdict {
    const c = classifyReply(msg, id, qname, qtype)
    switch (c.kind) {
        case 'unmatchable':
            return { wait: true, undecodable: true }
        case 'mismatch':
            return { wait: true, undecodable: false }
        case 'malformed':
            return { wait: false, outcome: { kind: 'failed', reason: 'malformed reply' } }
        case 'truncated':
            // over UDP: asked again over TCP; over TCP (RFC 7766 §8: TC has no meaning there) unusable
            return { wait: false, outcome: { kind: 'truncated' } }
        case 'reply':
            return { wait: false, outcome: { kind: 'reply', reply: c.reply, buf: c.buf } }
    }
}

function networkReason(err: NodeJS.ErrnoException, transport: 'udp' | 'tcp'): string {
    if (err.code === 'ECONNREFUSED') return transport === 'udp' ? 'connection refused' : 'connection refused (tcp)'
    return `network error (${transport}): ${err.code ?? err.message}`
}

/** What the shared exchange offers the socket parts. */
interface Hooks {
    /** false once the exchange is over */
    readonly waiting: boolean
    /** a whole DNS message from the resolver: judged */
    message(msg: Buffer): void
    /** a message from someone else: discarded */
    stray(): void
    /** the socket failed: the exchange ends with this reason */
    fail(reason: string): void
}

/** A socket part: created with its handlers attached, then started; closed when the exchange ends. */
interface Link {
    start(): void
    close(): void
}

export class Transport {
    private readonly family: 4 | 6
    private readonly server = new net.BlockList()
    /** aborts of the exchanges in progress */
    private readonly active = new Set<() => void>()

    constructor(
        private readonly target: TransportTarget,
        private readonly counters: TransportCounters,
    ) {
        this.family = net.isIP(target.address) === 6 ? 6 : 4
        this.server.addAddress(target.address, this.family === 6 ? 'ipv6' : 'ipv4')
    }

    /** Ends every exchange in progress as failed 'resolver closed'. */
    close(): void {
        for (const abort of [...this.active]) abort()
    }

    /** One UDP attempt on a fresh connected socket. */
    udp(qname: string, qtype: number): Promise<Exchange> {
        return this.exchange(qname, qtype, (query, ex) => {
            const sock = dgram.createSocket(this.family === 6 ? 'udp6' : 'udp4')
            // C2: ICMP port unreachable surfaces as ECONNREFUSED on a connected socket: fail fast.
            sock.on('error', (err: NodeJS.ErrnoException) => ex.fail(networkReason(err, 'udp')))
            sock.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
                // C2: only the configured resolver may answer (the connected socket filters too).
                if (rinfo.port !== this.target.port || !this.isServer(rinfo.address)) return ex.stray()
                ex.message(msg)
            })
            // A connected socket only accepts datagrams from the resolver and reports ICMP errors.
            // (No callback on connect(): with one, node hands a connect error to it instead of 'error'.)
            sock.once('connect', () => {
                if (!ex.waiting) return
                this.counters.udp++
                try {
                    sock.send(query, (err) => {
                        if (err) ex.fail(networkReason(err, 'udp'))
                    })
                } catch (err) {
                    ex.fail(networkReason(err as NodeJS.ErrnoException, 'udp'))
                }
            })
            return {
                start: () => sock.connect(this.target.port, this.target.address),
                close: () => {
                    try {
                        sock.close()
                    } catch {
                        /* already closed */
                    }
                },
            }
        })
    }

    /** One TCP attempt (RFC 1035 §4.2.2 / RFC 7766 §8: 2-byte length prefix). */
    tcp(qname: string, qtype: number): Promise<Exchange> {
        return this.exchange(qname, qtype, (query, ex) => {
            const frame = Buffer.alloc(2 + query.length)
            frame.writeUInt16BE(query.length, 0)
            query.copy(frame, 2)
            let pending: Buffer = Buffer.alloc(0)
            const sock = net.connect({ host: this.target.address, port: this.target.port })
            sock.setNoDelay(true)
            sock.on('connect', () => {
                this.counters.tcp++
                sock.write(frame)
            })
            sock.on('error', (err: NodeJS.ErrnoException) => ex.fail(networkReason(err, 'tcp')))
            sock.on('close', () => ex.fail('tcp connection closed before a reply'))
            sock.on('data', (chunk: Buffer) => {
                // a read may hold part of a message (even of its length prefix), or several
                pending = pending.length ? Buffer.concat([pending, chunk]) : chunk
                while (ex.waiting && pending.length >= 2) {
                    const len = pending.readUInt16BE(0)
                    if (pending.length < 2 + len) break
                    const msg = pending.subarray(2, 2 + len)
                    pending = pending.subarray(2 + len)
                    ex.message(msg)
                }
            })
            return { start: () => undefined, close: () => sock.destroy() }
        })
    }

    private isServer(address: string): boolean {
        return this.server.check(address, this.family === 6 ? 'ipv6' : 'ipv4')
    }

    /**
     * The exchange both transports share: a fresh ID and query, the timer, the abort that close()
     * calls, the judging of each message, and one finish that closes the socket and settles.
     */
    private exchange(qname: string, qtype: number, open: (query: Buffer, ex: Hooks) => Link): Promise<Exchange> {
        return new Promise<Exchange>((resolve) => {
            const id = randomInt(0x10000)
            const query = encodeQuery(id, qname, qtype)
            let done = false
            let sawMalformed = false
            const finish = (r: Exchange): void => {
                if (done) return
                done = true
                clearTimeout(timer)
                this.active.delete(abort)
                link.close()
                resolve(r)
            }
            const abort = (): void => finish({ kind: 'failed', reason: 'resolver closed' })
            const hooks: Hooks = {
                get waiting() {
                    return !done
                },
                message: (msg) => {
                    if (done) return
                    const v = judge(msg, id, qname, qtype)
                    if (!v.wait) return finish(v.outcome)
                    sawMalformed ||= v.undecodable
                    this.counters.discarded++
                },
                stray: () => {
                    if (!done) this.counters.discarded++
                },
                fail: (reason) => finish({ kind: 'failed', reason }),
            }
            // the socket first (its events all come later), then the abort and the timer, then the query
            const link = open(query, hooks)
            this.active.add(abort)
            const timer = setTimeout(() => finish({ kind: 'timeout', sawMalformed }), this.target.timeoutMs)
            link.start()
        })
    }
}
