/**
 * lib/resolver.ts against an in-process fake DNS server on 127.0.0.1 (UDP + TCP
 * on one random free port). Replies are encoded with dns2's Packet, or by hand
 * where a test needs bytes dns2 would not produce (malformed data, TTL with the
 * top bit set). Test titles name the conformance items they prove.
 */
import { strict as assert } from 'node:assert'
import * as dgram from 'node:dgram'
import * as net from 'node:net'
import DNS from 'dns2'
import { resolverSettings, resolverSettingsOrThrow, type ResolverInput } from '../../lib/config'
import { Resolver, ResolverConfigError, Answer } from '../../lib/resolver'

// ---------------------------------------------------------------------------
// dns2 codec, loosely typed for building test replies
// ---------------------------------------------------------------------------

interface LooseQuestion {
    name: string
    type: number
    class: number
}
interface LoosePacket {
    header: Record<string, number>
    questions: LooseQuestion[]
    answers: Record<string, unknown>[]
    authorities: Record<string, unknown>[]
    additionals: Record<string, unknown>[]
    toBuffer(): Buffer
}
interface LooseCodec {
    new (): LoosePacket
    parse(buf: Buffer): LoosePacket
    Resource: { EDNS(rdata: unknown[], opts: { udpPayloadSize?: number; doFlag?: boolean }): Record<string, unknown> }
}
const Packet = DNS.Packet as unknown as LooseCodec

const T = { A: 1, CNAME: 5, SOA: 6, MX: 15, AAAA: 28, RRSIG: 46, TLSA: 52 } as const

type RRSpec = { name: string; type: number; ttl?: number; class?: number } & Record<string, unknown>

interface ReplyOpts {
    id?: number
    rcode?: number
    ad?: boolean
    tc?: boolean
    qname?: string
    qtype?: number
    qclass?: number
    answers?: RRSpec[]
    authorities?: RRSpec[]
}

function buildReply(q: LoosePacket, o: ReplyOpts = {}): Buffer {
    const p = new Packet()
    p.header = {
        id: o.id ?? q.header.id,
        qr: 1,
        opcode: 0,
        aa: 0,
        tc: o.tc ? 1 : 0,
        rd: 1,
        ra: 1,
        z: 0,
        ad: o.ad ? 1 : 0,
        cd: 0,
        rcode: o.rcode ?? 0,
    }
    p.questions = [{ name: o.qname ?? q.questions[0].name, type: o.qtype ?? q.questions[0].type, class: o.qclass ?? 1 }]
    p.answers = (o.answers ?? []).map((r) => ({ class: 1, ttl: 300, ...r }))
    p.authorities = (o.authorities ?? []).map((r) => ({ class: 1, ttl: 300, ...r }))
    p.additionals = [Packet.Resource.EDNS([], { udpPayloadSize: 1232, doFlag: true })]
    return p.toBuffer()
}

const soa = (name: string, ttl: number, minimum: number): RRSpec => ({
    name,
    type: T.SOA,
    ttl,
    primary: 'ns1.' + name,
    admin: 'hostmaster.' + name,
    serial: 1,
    refresh: 3600,
    retry: 600,
    expiration: 86400,
    minimum,
})

// Hand-made wire pieces (RFC 1035 §4.1) for replies dns2 would not encode.
function rawName(name: string): Buffer {
    const parts = name.split('.').filter(Boolean)
    return Buffer.concat([...parts.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])), Buffer.from([0])])
}
function rawRR(name: string, type: number, ttl: number, rdata: Buffer): Buffer {
    const fixed = Buffer.alloc(10)
    fixed.writeUInt16BE(type, 0)
    fixed.writeUInt16BE(1, 2)
    fixed.writeUInt32BE(ttl >>> 0, 4)
    fixed.writeUInt16BE(rdata.length, 8)
    return Buffer.concat([rawName(name), fixed, rdata])
}
function rawReply(q: LoosePacket, answers: Buffer[], opts: { ancount?: number; ad?: boolean } = {}): Buffer {
    const h = Buffer.alloc(12)
    h.writeUInt16BE(q.header.id, 0)
    h.writeUInt16BE(0x8180 | (opts.ad ? 0x0020 : 0), 2) // QR RD RA (+AD), NOERROR
    h.writeUInt16BE(1, 4)
    h.writeUInt16BE(opts.ancount ?? answers.length, 6)
    const qs = Buffer.alloc(4)
    qs.writeUInt16BE(q.questions[0].type, 0)
    qs.writeUInt16BE(1, 2)
    return Buffer.concat([h, rawName(q.questions[0].name), qs, ...answers])
}

// ---------------------------------------------------------------------------
// Fake DNS server
// ---------------------------------------------------------------------------

type Transport = 'udp' | 'tcp'
interface Received {
    transport: Transport
    buf: Buffer
    packet: LoosePacket
    port: number
}
type Handler = (q: LoosePacket, transport: Transport) => Buffer[] | Promise<Buffer[]>

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

class FakeDns {
    port = 0
    received: Received[] = []
    handler: Handler = () => []
    /** write TCP replies in small pieces (splits the 2-byte length prefix) */
    tcpSplit = false
    private udp?: dgram.Socket
    private tcp?: net.Server
    private conns = new Set<net.Socket>()

    async start(): Promise<void> {
        for (let i = 0; i < 20; i++) {
            const udp = dgram.createSocket('udp4')
            await new Promise<void>((res, rej) => {
                udp.once('error', rej)
                udp.bind(0, '127.0.0.1', () => res())
            })
            const port = udp.address().port
            const tcp = net.createServer((s) => this.onTcp(s))
            try {
                await new Promise<void>((res, rej) => {
                    tcp.once('error', rej)
                    tcp.listen(port, '127.0.0.1', () => res())
                })
            } catch {
                udp.close()
                continue
            }
            this.udp = udp
            this.tcp = tcp
            this.port = port
            udp.on('message', (msg, rinfo) => void this.onUdp(msg, rinfo))
            return
        }
        throw new Error('no free port for the fake DNS server')
    }

    reset(): void {
        this.received = []
        this.handler = () => []
        this.tcpSplit = false
    }

    private record(transport: Transport, buf: Buffer, port: number): LoosePacket | undefined {
        let packet: LoosePacket
        try {
            packet = Packet.parse(buf)
        } catch {
            return undefined
        }
        this.received.push({ transport, buf, packet, port })
        return packet
    }

    private async onUdp(msg: Buffer, rinfo: dgram.RemoteInfo): Promise<void> {
        const q = this.record('udp', msg, rinfo.port)
        if (!q || !this.udp) return
        const replies = await this.handler(q, 'udp')
        for (const r of replies) {
            await new Promise<void>((res) => this.udp?.send(r, rinfo.port, rinfo.address, () => res()))
        }
    }

    private onTcp(sock: net.Socket): void {
        this.conns.add(sock)
        sock.setNoDelay(true)
        sock.on('close', () => this.conns.delete(sock))
        sock.on('error', () => undefined)
        let pending = Buffer.alloc(0)
        sock.on('data', async (chunk) => {
            pending = Buffer.concat([pending, chunk])
            while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
                const len = pending.readUInt16BE(0)
                const msg = pending.subarray(2, 2 + len)
                pending = pending.subarray(2 + len)
                const q = this.record('tcp', msg, sock.remotePort ?? 0)
                if (!q) continue
                const replies = await this.handler(q, 'tcp')
                const out = Buffer.concat(
                    replies.map((r) => {
                        const l = Buffer.alloc(2)
                        l.writeUInt16BE(r.length, 0)
                        return Buffer.concat([l, r])
                    }),
                )
                if (!this.tcpSplit) {
                    sock.write(out)
                } else {
                    // first piece splits the 2-byte length prefix, then 500-byte pieces
                    const cuts = [0, 1]
                    for (let i = 1 + 500; i < out.length; i += 500) cuts.push(i)
                    cuts.push(out.length)
                    for (let i = 0; i + 1 < cuts.length; i++) {
                        if (sock.destroyed) return
                        sock.write(out.subarray(cuts[i], cuts[i + 1]))
                        await sleep(5)
                    }
                }
            }
        })
    }

    async stop(): Promise<void> {
        for (const s of this.conns) s.destroy()
        await new Promise<void>((res) => (this.udp ? this.udp.close(() => res()) : res()))
        await new Promise<void>((res) => (this.tcp ? this.tcp.close(() => res()) : res()))
    }
}

// ---------------------------------------------------------------------------

describe('resolver (C1–C3)', function () {
    this.timeout(5000)
    const server = new FakeDns()
    const resolvers: Resolver[] = []

    const settings = (over: Partial<ResolverInput> = {}): ResolverInput => ({
        address: '127.0.0.1',
        port: server.port,
        timeoutMs: 1000,
        retries: 1,
        cacheSize: 100,
        ...over,
    })

    /** A resolver built as the plugin and the command build one: through the settings check (lib/config.ts), which throws ResolverConfigError. */
    function make(over: Partial<ResolverInput> = {}): Resolver {
        const r = new Resolver(resolverSettingsOrThrow(settings(over)))
        resolvers.push(r)
        return r
    }

    /** A handler that answers every question with one A record 192.0.2.1 and the given AD bit. */
    const answerA =
        (ad = true, ttl = 300) =>
        (q: LoosePacket, _t?: Transport): Buffer[] => [buildReply(q, { ad, answers: [{ name: q.questions[0].name, type: T.A, ttl, address: '192.0.2.1' }] })]

    before(async () => {
        await server.start()
    })
    after(async () => {
        await server.stop()
    })
    beforeEach(() => server.reset())
    afterEach(() => {
        while (resolvers.length) resolvers.pop()?.close()
    })

    // ---- C1 -----------------------------------------------------------------

    it('C1: the wire query has RD, one IN question, EDNS0 OPT with payload 1232 and the DO bit', async () => {
        server.handler = answerA()
        const r = make()
        await r.lookup('mx.example.org', 'MX')
        assert.equal(server.received.length, 1)
        const { packet, buf, transport } = server.received[0]
        assert.equal(transport, 'udp')
        assert.equal(packet.header.rd, 1)
        assert.equal(packet.header.qr, 0)
        assert.deepEqual(
            packet.questions.map((q) => ({ ...q })),
            [{ name: 'mx.example.org', type: T.MX, class: 1 }],
        )
        const opt = packet.additionals.filter((a) => a.type === 41)
        assert.equal(opt.length, 1)
        assert.equal(opt[0].class, 1232, 'EDNS0 UDP payload size')
        assert.equal(opt[0].doFlag, true, 'DO bit')
        assert.equal(opt[0].version, 0)
        // the same, read straight off the wire: root owner, type 41, class 1232, TTL 0x00008000, rdlen 0
        assert.equal(buf.subarray(-11).toString('hex'), '00002904d0000080000000')
    })

    it('C1: the AD bit of the reply sets secure; without it the answer is insecure', async () => {
        server.handler = (q) => [
            buildReply(q, {
                ad: q.questions[0].name.startsWith('signed'),
                answers: [{ name: q.questions[0].name, type: T.A, address: '192.0.2.7' }],
            }),
        ]
        const r = make()
        const s = await r.lookup('signed.example', 'A')
        const i = await r.lookup('unsigned.example', 'A')
        assert.equal(s.status, 'ok')
        assert.equal(s.secure, true)
        assert.equal(i.status, 'ok')
        assert.equal(i.secure, false)
        assert.deepEqual(i.addresses, ['192.0.2.7'])
    })

    it('C1: the root (".", the command\'s resolver self-test) is asked as one zero octet and its reply matched', async () => {
        server.handler = (q) => [buildReply(q, { ad: true, answers: [] })]
        const r = make()
        const a = await r.lookup('.', 'A')
        assert.equal(server.received.length, 1)
        // after the 12-byte header: the root name (00), type A (0001), class IN (0001)
        assert.equal(server.received[0].buf.subarray(12, 17).toString('hex'), '0000010001')
        assert.deepEqual([a.status, a.secure, a.name], ['nodata', true, ''])
        assert.equal((await r.lookup('', 'A')).status, 'failed', 'an empty name is not the root')
    })

    it('C1: loopback resolvers (127.0.0.0/8, ::1) are accepted', () => {
        for (const address of ['127.0.0.1', '127.0.0.53', '127.255.255.254', '::1']) {
            assert.doesNotThrow(() => make({ address, port: 53 }), address)
        }
    })

    it('C1: a ::1 resolver is queried over udp6', async () => {
        const v6 = dgram.createSocket('udp6')
        const bound = await new Promise<string>((res) => {
            v6.once('error', (e) => res(String(e)))
            v6.bind(0, '::1', () => res(''))
        })
        assert.equal(bound, '', 'this machine has IPv6 loopback (::1), which the plugin supports as a resolver address')
        const seen: string[] = []
        v6.on('message', (msg, rinfo) => {
            seen.push(rinfo.address)
            v6.send(answerA(true)(Packet.parse(msg))[0], rinfo.port, rinfo.address)
        })
        try {
            const a = await make({ address: '::1', port: v6.address().port }).lookup('six.example', 'A')
            assert.equal(a.status, 'ok')
            assert.equal(a.secure, true)
            assert.deepEqual(seen, ['::1'])
        } finally {
            await new Promise<void>((res) => v6.close(() => res()))
        }
    })

    it('C1: a non-loopback resolver is refused at construction', () => {
        for (const address of ['192.0.2.53', '10.0.0.1', '2001:db8::53', '::']) {
            assert.throws(() => make({ address, port: 53 }), ResolverConfigError, address)
            // the refusal is the settings check's: it names C1's reason and nothing else
            const checked = resolverSettings(settings({ address, port: 53 }))
            assert.ok('errors' in checked, address)
            assert.deepEqual(
                checked.errors.map((e) => [e.field, e.kind]),
                [['address', 'not-loopback']],
            )
            assert.match(checked.errors[0].message, /is not loopback \(127\.0\.0\.0\/8 or ::1\); its AD bit cannot be trusted/)
        }
    })

    it('C1: a Resolver is built only from checked settings (a plain object does not type-check)', () => {
        // compile-time proof, never called: the constructor takes ResolverSettings, which only resolverSettings() gives
        const unchecked = (): Resolver =>
            // @ts-expect-error a plain object is not ResolverSettings
            new Resolver({ address: '192.0.2.53', port: 53, timeoutMs: 1000, retries: 1, cacheSize: 100, cacheMaxBytes: 1 << 20, trustNonLoopback: false })
        assert.equal(typeof unchecked, 'function')
        const checked = resolverSettings(settings())
        assert.ok('settings' in checked)
        assert.ok(Object.isFrozen(checked.settings), 'the checked settings cannot be changed afterwards')
        const r = new Resolver(checked.settings)
        resolvers.push(r)
        assert.equal(r.stats().queries, 0)
    })

    it('C1: a non-loopback resolver is allowed with trustNonLoopback (constructed only, never queried)', () => {
        let r: Resolver | undefined
        assert.doesNotThrow(() => {
            r = make({ address: '192.0.2.53', port: 53, trustNonLoopback: true })
        })
        assert.ok(r instanceof Resolver)
        assert.deepEqual(r?.stats().udp, 0)
    })

    it('C1/C23: a non-IP address or a bad port is refused at construction', () => {
        for (const address of ['localhost', 'unbound.example', '', '127.1', '127.0.0.1:53']) {
            assert.throws(() => make({ address }), ResolverConfigError, address)
        }
        for (const port of [0, -1, 65536, 53.5, NaN]) {
            assert.throws(() => make({ port }), ResolverConfigError, String(port))
        }
    })

    it('C2: each query gets a fresh random ID and a fresh socket (source port)', async () => {
        server.handler = answerA()
        const r = make({ cacheSize: 0 })
        for (let i = 0; i < 6; i++) await r.lookup(`n${i}.example`, 'A')
        assert.equal(server.received.length, 6)
        const ids = new Set(server.received.map((x) => x.packet.header.id))
        const ports = new Set(server.received.map((x) => x.port))
        assert.ok(ids.size >= 5, `ids ${[...ids]}`)
        assert.ok(ports.size >= 5, `ports ${[...ports]}`)
    })

    // ---- C2 -----------------------------------------------------------------

    it('C2: a truncated reply is retried over TCP (2-byte framing, reassembled from pieces)', async () => {
        const many = Array.from({ length: 120 }, (_, i) => `198.51.100.${i}`)
        server.tcpSplit = true
        server.handler = (q, transport) =>
            transport === 'udp'
                ? [buildReply(q, { tc: true, ad: true })]
                : [buildReply(q, { ad: true, answers: many.map((address) => ({ name: 'big.example', type: T.A, address })) })]
        const r = make()
        const a = await r.lookup('big.example', 'A')
        assert.equal(a.status, 'ok')
        assert.equal(a.secure, true)
        assert.deepEqual(a.addresses, many)
        assert.deepEqual(
            server.received.map((x) => [x.transport, x.packet.questions[0].name, x.packet.questions[0].type]),
            [
                ['udp', 'big.example', T.A],
                ['tcp', 'big.example', T.A],
            ],
        )
        const st = r.stats()
        assert.equal(st.udp, 1)
        assert.equal(st.tcp, 1)
    })

    it('C2: a truncated reply whose sections are cut short is still retried over TCP, not called malformed', async () => {
        server.handler = (q, transport) => {
            if (transport === 'udp') {
                const cut = rawReply(q, [], { ancount: 3 }) // says 3 answers, carries none
                cut.writeUInt16BE(cut.readUInt16BE(2) | 0x0200, 2) // TC
                return [cut]
            }
            return [buildReply(q, { ad: true, answers: [{ name: 'cut.example', type: T.A, address: '192.0.2.44' }] })]
        }
        const r = make()
        const a = await r.lookup('cut.example', 'A')
        assert.equal(a.status, 'ok')
        assert.deepEqual(a.addresses, ['192.0.2.44'])
        assert.equal(r.stats().tcp, 1)
    })

    it('C10: records of the asked type at a name the CNAME chain does not reach fail closed (never a secure NODATA)', async () => {
        server.handler = (q) => [
            buildReply(q, {
                ad: true,
                answers: [
                    { name: 'alias.example', type: T.CNAME, domain: 'target.example' },
                    { name: 'elsewhere.example', type: T.A, address: '192.0.2.45' },
                ],
            }),
        ]
        const a = await make().lookup('alias.example', 'A')
        assert.equal(a.status, 'failed')
        assert.equal(a.reason, 'malformed reply')
        assert.equal(a.secure, false)
    })

    it('C2: over TCP, a reply with the wrong ID is discarded and the right one that follows accepted', async () => {
        server.handler = (q, transport) =>
            transport === 'udp'
                ? [buildReply(q, { tc: true })]
                : [
                      buildReply(q, { id: (q.header.id + 1) & 0xffff, answers: [{ name: 'tcp.example', type: T.A, address: '192.0.2.66' }] }),
                      buildReply(q, { answers: [{ name: 'tcp.example', type: T.A, address: '192.0.2.1' }] }),
                  ]
        const r = make()
        const a = await r.lookup('tcp.example', 'A')
        assert.equal(a.status, 'ok')
        assert.deepEqual(a.addresses, ['192.0.2.1'])
        assert.equal(r.stats().discarded, 1)
    })

    it('C2: a reply with the wrong ID is discarded and we keep waiting for the right one', async () => {
        server.handler = (q) => [
            buildReply(q, { id: (q.header.id + 1) & 0xffff, answers: [{ name: 'id.example', type: T.A, address: '192.0.2.66' }] }),
            buildReply(q, { answers: [{ name: 'id.example', type: T.A, address: '192.0.2.1' }] }),
        ]
        const r = make()
        const a = await r.lookup('id.example', 'A')
        assert.equal(a.status, 'ok')
        assert.deepEqual(a.addresses, ['192.0.2.1'])
        assert.equal(r.stats().discarded, 1)
        assert.equal(server.received.length, 1)
    })

    it('C2: replies with the wrong question name, type or class are discarded', async () => {
        const spoof = [{ name: 'q.example', type: T.A, address: '192.0.2.66' }]
        server.handler = (q) => [
            buildReply(q, { qname: 'other.example', answers: spoof }),
            buildReply(q, { qtype: T.AAAA, answers: spoof }),
            buildReply(q, { qclass: 3, answers: spoof }),
            buildReply(q, { answers: [{ name: 'q.example', type: T.A, address: '192.0.2.1' }] }),
        ]
        const r = make()
        const a = await r.lookup('q.example', 'A')
        assert.equal(a.status, 'ok')
        assert.deepEqual(a.addresses, ['192.0.2.1'])
        assert.equal(r.stats().discarded, 3)
    })

    it('C2: a question echoed in another case still matches (names compare case-insensitively)', async () => {
        server.handler = (q) => [buildReply(q, { qname: 'CaSe.ExAmple', answers: [{ name: 'CASE.example', type: T.A, address: '192.0.2.9' }] })]
        const a = await make().lookup('case.example', 'A')
        assert.equal(a.status, 'ok')
        assert.deepEqual(a.addresses, ['192.0.2.9'])
    })

    it('C2: timeouts are retried `retries` times, then failed "timeout"', async () => {
        server.handler = () => []
        const r = make({ timeoutMs: 100, retries: 2 })
        const a = await r.lookup('silent.example', 'TLSA')
        assert.equal(a.status, 'failed')
        assert.equal(a.reason, 'timeout')
        assert.equal(a.secure, false)
        assert.equal(a.ttl, 0)
        assert.equal(server.received.length, 3, 'one query plus two retries')
        assert.equal(r.stats().timeouts, 3)
    })

    it('C2: a retry after a timeout can succeed', async () => {
        let n = 0
        server.handler = (q) => (n++ === 0 ? [] : answerA(true)(q))
        const r = make({ timeoutMs: 100, retries: 1 })
        const a = await r.lookup('late.example', 'A')
        assert.equal(a.status, 'ok')
        assert.equal(server.received.length, 2)
    })

    it('C2: SERVFAIL → failed "servfail", never secure even with AD set', async () => {
        server.handler = (q) => [buildReply(q, { rcode: 2, ad: true })]
        const a = await make().lookup('bogus.example', 'TLSA')
        assert.equal(a.status, 'failed')
        assert.equal(a.reason, 'servfail')
        assert.equal(a.rcode, 2)
        assert.equal(a.secure, false)
    })

    it('C2: REFUSED and other error RCODEs → failed', async () => {
        server.handler = (q) => [buildReply(q, { rcode: q.questions[0].name === 'refused.example' ? 5 : 4 })]
        const r = make()
        const refused = await r.lookup('refused.example', 'A')
        const notimp = await r.lookup('notimp.example', 'A')
        assert.equal(refused.status, 'failed')
        assert.equal(refused.reason, 'refused')
        assert.equal(notimp.status, 'failed')
        assert.equal(notimp.reason, 'rcode 4')
    })

    it('C2: NXDOMAIN → status "nxdomain" with the AD bit and SOA-based TTL', async () => {
        server.handler = (q) => [buildReply(q, { rcode: 3, ad: true, authorities: [soa('example', 900, 120)] })]
        const a = await make().lookup('nope.example', 'MX')
        assert.equal(a.status, 'nxdomain')
        assert.equal(a.rcode, 3)
        assert.equal(a.secure, true)
        assert.equal(a.ttl, 120)
    })

    it('C2: NOERROR without the asked type at the name → "nodata" (other types and RRSIGs ignored)', async () => {
        // (the asked type at an unrelated name is not ignored: see the C10 fail-closed test)
        server.handler = (q) => [
            buildReply(q, {
                ad: true,
                answers: [
                    { name: 'host.example', type: T.A, address: '192.0.2.1' },
                    { name: 'host.example', type: T.RRSIG, data: Buffer.alloc(30, 1) },
                    { name: 'elsewhere.example', type: T.A, address: '192.0.2.2' },
                ],
                authorities: [soa('example', 300, 60)],
            }),
        ]
        const a = await make().lookup('host.example', 'AAAA')
        assert.equal(a.status, 'nodata')
        assert.equal(a.secure, true)
        assert.equal(a.addresses, undefined)
        assert.equal(a.ttl, 60)
    })

    it('C2: a matching reply that cannot be decoded → failed "malformed reply" at once', async () => {
        // header says one answer, the message ends after the question
        server.handler = (q) => [rawReply(q, [], { ancount: 1 })]
        const r = make({ timeoutMs: 2000, retries: 2 })
        const a = await r.lookup('broken.example', 'A')
        assert.equal(a.status, 'failed')
        assert.equal(a.reason, 'malformed reply')
        assert.equal(r.stats().timeouts, 0, 'did not wait for the timeout')
        assert.equal(server.received.length, 1, 'and did not retry')
    })

    it('C2: an A record with 5 bytes of rdata → failed "malformed reply"', async () => {
        server.handler = (q) => [rawReply(q, [rawRR('five.example', T.A, 300, Buffer.from([192, 0, 2, 1, 9]))])]
        const a = await make().lookup('five.example', 'A')
        assert.equal(a.status, 'failed')
        assert.equal(a.reason, 'malformed reply')
    })

    it('C2: an undecodable datagram is discarded and the good reply after it accepted', async () => {
        server.handler = (q) => [Buffer.from('junk'), ...answerA(true)(q)]
        const r = make()
        const a = await r.lookup('junk.example', 'A')
        assert.equal(a.status, 'ok')
        assert.equal(r.stats().discarded, 1)
    })

    it('C2: nothing but undecodable datagrams until the timeout → failed "malformed reply"', async () => {
        server.handler = () => [Buffer.from([0xde, 0xad])]
        const r = make({ timeoutMs: 100, retries: 0 })
        const a = await r.lookup('garbage.example', 'A')
        assert.equal(a.status, 'failed')
        assert.equal(a.reason, 'malformed reply')
    })

    it('C2: nothing listening (ICMP port unreachable) → failed fast, well before the timeout', async () => {
        const probe = dgram.createSocket('udp4')
        await new Promise<void>((res) => probe.bind(0, '127.0.0.1', () => res()))
        const port = probe.address().port
        await new Promise<void>((res) => probe.close(() => res()))
        const r = make({ port, timeoutMs: 3000, retries: 2 })
        const a = await r.lookup('nobody.example', 'A')
        assert.equal(a.status, 'failed')
        assert.match(a.reason ?? '', /refused/)
        assert.equal(r.stats().timeouts, 0, 'ended by the ICMP error, not by a timeout')
    })

    it('C2: a CNAME chain in the answer is followed from the question name', async () => {
        server.handler = (q) => [
            buildReply(q, {
                ad: true,
                answers: [
                    { name: 'www.example', type: T.CNAME, ttl: 500, domain: 'a.example' },
                    { name: 'a.example', type: T.CNAME, ttl: 200, domain: 'B.Example' },
                    { name: 'b.example', type: T.A, ttl: 400, address: '192.0.2.20' },
                    { name: 'b.example', type: T.RRSIG, data: Buffer.alloc(20, 2) },
                    { name: 'www.example', type: T.A, address: '192.0.2.99' },
                    { name: 'unrelated.example', type: T.A, address: '192.0.2.98' },
                ],
            }),
        ]
        const a = await make().lookup('WWW.example.', 'A')
        assert.equal(a.status, 'ok')
        assert.equal(a.name, 'www.example')
        assert.equal(a.canonicalName, 'b.example')
        assert.deepEqual(a.cnames, ['www.example', 'a.example', 'b.example'])
        assert.deepEqual(a.addresses, ['192.0.2.20'])
        assert.equal(a.ttl, 200, 'min TTL over the chain and the RRset')
    })

    it('C2: no CNAME → canonicalName is the name and cnames is empty', async () => {
        server.handler = answerA(true, 77)
        const a = await make().lookup('plain.example', 'A')
        assert.equal(a.canonicalName, 'plain.example')
        assert.deepEqual(a.cnames, [])
        assert.equal(a.ttl, 77)
    })

    it('C2: a CNAME chain ending without the asked type is NODATA at the canonical name', async () => {
        server.handler = (q) => [
            buildReply(q, {
                answers: [{ name: 'alias.example', type: T.CNAME, ttl: 500, domain: 'target.example' }],
                authorities: [soa('example', 40, 90)],
            }),
        ]
        const a = await make().lookup('alias.example', 'TLSA')
        assert.equal(a.status, 'nodata')
        assert.equal(a.canonicalName, 'target.example')
        assert.deepEqual(a.cnames, ['alias.example', 'target.example'])
        assert.equal(a.ttl, 40)
    })

    it('C2: a CNAME loop → failed "cname loop"', async () => {
        server.handler = (q) => [
            buildReply(q, {
                answers: [
                    { name: 'loop1.example', type: T.CNAME, domain: 'loop2.example' },
                    { name: 'loop2.example', type: T.CNAME, domain: 'loop1.example' },
                ],
            }),
        ]
        const r = make()
        const a = await r.lookup('loop1.example', 'A')
        assert.equal(a.status, 'failed')
        assert.equal(a.reason, 'cname loop')
        await r.lookup('loop1.example', 'A')
        assert.equal(server.received.length, 2, 'not cached')
    })

    it('C2: MX answers: preference kept, exchange lower-case without dot, null MX is ""', async () => {
        server.handler = (q) => [
            buildReply(q, {
                ad: true,
                answers:
                    q.questions[0].name === 'nullmx.example'
                        ? [{ name: 'nullmx.example', type: T.MX, priority: 0, exchange: '.' }]
                        : [
                              { name: 'mail.example', type: T.MX, priority: 10, exchange: 'MX1.Other.NET.' },
                              { name: 'mail.example', type: T.MX, priority: 20, exchange: 'mx2.other.net' },
                          ],
            }),
        ]
        const r = make()
        const a = await r.lookup('mail.example', 'MX')
        assert.equal(a.status, 'ok')
        assert.deepEqual(a.mx, [
            { preference: 10, exchange: 'mx1.other.net' },
            { preference: 20, exchange: 'mx2.other.net' },
        ])
        const n = await r.lookup('nullmx.example', 'MX')
        assert.deepEqual(n.mx, [{ preference: 0, exchange: '' }])
    })

    it('C2: AAAA answers come back in RFC 5952 text form', async () => {
        server.handler = (q) => [buildReply(q, { answers: [{ name: 'v6.example', type: T.AAAA, address: '2001:db8:0:0:0:0:0:25' }] })]
        const a = await make().lookup('v6.example', 'AAAA')
        assert.deepEqual(a.addresses, ['2001:db8::25'])
    })

    it('C2: TLSA rdata is returned as raw bytes', async () => {
        const rd1 = Buffer.concat([Buffer.from([3, 1, 1]), Buffer.alloc(32, 0xab)])
        const rd2 = Buffer.concat([Buffer.from([2, 0, 2]), Buffer.alloc(64, 0x5c)])
        server.handler = (q) => [
            buildReply(q, {
                ad: true,
                answers: [
                    { name: '_25._tcp.mx.example', type: T.TLSA, ttl: 3600, data: rd1 },
                    { name: '_25._tcp.mx.example', type: T.RRSIG, data: Buffer.alloc(40, 7) },
                    { name: '_25._tcp.mx.example', type: T.TLSA, ttl: 3600, data: rd2 },
                ],
            }),
        ]
        const a = await make().lookup('_25._tcp.mx.example', 'TLSA')
        assert.equal(a.status, 'ok')
        assert.equal(a.secure, true)
        assert.equal(a.tlsa?.length, 2)
        assert.ok(a.tlsa?.[0].equals(rd1))
        assert.ok(a.tlsa?.[1].equals(rd2))
        assert.equal(a.ttl, 3600)
    })

    it('names: trailing dot and case are normalised; the wire question is lower-case', async () => {
        server.handler = answerA()
        const r = make()
        const a = await r.lookup('MiXeD.Example.COM.', 'A')
        assert.equal(a.name, 'mixed.example.com')
        assert.equal(server.received[0].packet.questions[0].name, 'mixed.example.com')
        const b = await r.lookup('mixed.example.com', 'A')
        assert.equal(b.fromCache, true)
    })

    it('names: an invalid name → failed without sending anything', async () => {
        const r = make()
        for (const name of ['a..b', '', '..', 'x'.repeat(64) + '.example', 'sp ace.example']) {
            const a = await r.lookup(name, 'A')
            assert.equal(a.status, 'failed', name)
            assert.equal(a.reason, 'invalid name')
        }
        assert.equal(server.received.length, 0)
    })

    // ---- C3 -----------------------------------------------------------------

    it('C3: an answer is served from the cache within its TTL and refetched after it', async () => {
        server.handler = answerA(true, 1)
        const r = make()
        const first = await r.lookup('short.example', 'A')
        const second = await r.lookup('short.example', 'A')
        assert.equal(first.fromCache, false)
        assert.equal(second.fromCache, true)
        assert.equal(second.secure, true)
        assert.deepEqual(second.addresses, first.addresses)
        assert.ok(second.ttl <= 1)
        assert.equal(server.received.length, 1)
        assert.equal(r.stats().cacheHits, 1)
        await sleep(1100)
        const third = await r.lookup('short.example', 'A')
        assert.equal(third.fromCache, false)
        assert.equal(server.received.length, 2)
    })

    it('C3: NODATA is cached for min(SOA TTL, SOA MINIMUM)', async () => {
        server.handler = (q) => [
            buildReply(q, {
                authorities: [q.questions[0].name === 'low-min.example' ? soa('example', 300, 60) : soa('example', 30, 600)],
            }),
        ]
        const r = make()
        const a = await r.lookup('low-min.example', 'AAAA')
        const b = await r.lookup('low-ttl.example', 'AAAA')
        assert.equal(a.status, 'nodata')
        assert.equal(a.ttl, 60)
        assert.equal(b.ttl, 30)
        const again = await r.lookup('low-min.example', 'AAAA')
        assert.equal(again.fromCache, true)
        assert.equal(again.status, 'nodata')
        assert.equal(server.received.length, 2)
    })

    it('C3: a failure is never cached', async () => {
        let n = 0
        server.handler = (q) => (n++ < 2 ? [buildReply(q, { rcode: 2 })] : answerA(true)(q))
        const r = make()
        assert.equal((await r.lookup('flaky.example', 'A')).status, 'failed')
        assert.equal((await r.lookup('flaky.example', 'A')).status, 'failed')
        const ok = await r.lookup('flaky.example', 'A')
        assert.equal(ok.status, 'ok')
        assert.equal(ok.fromCache, false)
        assert.equal(server.received.length, 3)
    })

    it('C3: TTL 0, and a TTL with the top bit set (RFC 2181 §8: zero), are not cached', async () => {
        server.handler = (q) => [
            rawReply(q, [rawRR(q.questions[0].name, T.A, q.questions[0].name === 'zero.example' ? 0 : 0x80000001, Buffer.from([192, 0, 2, 5]))]),
        ]
        const r = make()
        const z1 = await r.lookup('zero.example', 'A')
        const z2 = await r.lookup('zero.example', 'A')
        const h1 = await r.lookup('highbit.example', 'A')
        const h2 = await r.lookup('highbit.example', 'A')
        assert.equal(z1.ttl, 0)
        assert.equal(h1.ttl, 0)
        assert.deepEqual(h1.addresses, ['192.0.2.5'])
        assert.equal(z2.fromCache, false)
        assert.equal(h2.fromCache, false)
        assert.equal(server.received.length, 4)
    })

    it('C3: the cache is bounded (LRU eviction at cacheSize)', async () => {
        server.handler = answerA()
        const r = make({ cacheSize: 2 })
        await r.lookup('one.example', 'A')
        await r.lookup('two.example', 'A')
        await r.lookup('three.example', 'A') // evicts one.example
        assert.equal((await r.lookup('three.example', 'A')).fromCache, true)
        assert.equal((await r.lookup('one.example', 'A')).fromCache, false)
        assert.equal(server.received.length, 4)
    })

    /** a TLSA RRset of `n` records of `size` bytes each (3 1 1 + data), over TCP when it does not fit */
    const bigTlsa =
        (n: number, size: number) =>
        (q: LoosePacket, t: Transport): Buffer[] => {
            const rrs = Array.from({ length: n }, (_, i) =>
                rawRR(
                    q.questions[0].name,
                    T.TLSA,
                    300,
                    Buffer.concat([Buffer.from([3, 1, 1]), Buffer.alloc(size - 5, i & 0xff), Buffer.from([i >> 8, i & 0xff])]),
                ),
            )
            const reply = rawReply(q, rrs, { ad: true })
            if (t === 'udp' && reply.length > 1232) {
                const tc = Buffer.from(reply.subarray(0, 12 + rawName(q.questions[0].name).length + 4))
                tc.writeUInt16BE(0x8380 | 0x0020, 2) // TC
                tc.writeUInt16BE(0, 6)
                return [tc]
            }
            return [reply]
        }

    it('C30: the cache is bounded in bytes: large answers evict others, and its size stays under the bound', async () => {
        server.handler = bigTlsa(40, 200) // ~12 KB an answer, under 1/16 of the bound
        const r = make({ cacheSize: 1000, cacheMaxBytes: 256 * 1024 })
        for (let i = 0; i < 30; i++) {
            const a = await r.lookup(`_25._tcp.mx${i}.example`, 'TLSA')
            assert.equal(a.status, 'ok')
            assert.equal(a.tlsa?.length, 40)
        }
        const usage = r.cacheUsage()
        assert.ok(usage.bytes <= 256 * 1024, `cache holds ${usage.bytes} bytes`)
        assert.ok(usage.entries >= 3 && usage.entries < 30, `entries: ${usage.entries}`)
        // the most recent answer is cached, the oldest was evicted
        assert.equal((await r.lookup('_25._tcp.mx29.example', 'TLSA')).fromCache, true)
        assert.equal((await r.lookup('_25._tcp.mx0.example', 'TLSA')).fromCache, false)
    })

    it('C30: an answer larger than 1/16 of the byte bound is not cached at all (asked again next time)', async () => {
        server.handler = bigTlsa(100, 200) // ~30 KB, over 64 KiB / 16
        const r = make({ cacheSize: 1000, cacheMaxBytes: 64 * 1024 })
        assert.equal((await r.lookup('_25._tcp.huge.example', 'TLSA')).status, 'ok')
        assert.equal((await r.lookup('_25._tcp.huge.example', 'TLSA')).fromCache, false)
        assert.deepEqual(r.cacheUsage(), { entries: 0, bytes: 0 })
    })

    it('C30: a cached TLSA answer holds one buffer of exactly its records, not pieces of shared pool slabs', async () => {
        server.handler = bigTlsa(30, 40)
        const r = make()
        const a = await r.lookup('_25._tcp.compact.example', 'TLSA')
        const buffers = new Set(a.tlsa!.map((b) => b.buffer))
        assert.equal(buffers.size, 1)
        assert.equal(a.tlsa![0].buffer.byteLength, 30 * 40)
    })

    it('C2: the question is compared label by label: one label containing dots is not the asked name', async () => {
        // the reply's question is the single label "a.example" (9 bytes, with a dot inside), not a + example
        server.handler = (q) => {
            const id = q.header.id
            const h = Buffer.alloc(12)
            h.writeUInt16BE(id, 0)
            h.writeUInt16BE(0x81a0, 2)
            h.writeUInt16BE(1, 4)
            h.writeUInt16BE(1, 6)
            const qn = Buffer.concat([Buffer.from([9]), Buffer.from('a.example'), Buffer.from([0])])
            const qs = Buffer.from([0, 1, 0, 1])
            return [Buffer.concat([h, qn, qs, rawRR('a.example', T.A, 300, Buffer.from([192, 0, 2, 66]))])]
        }
        const r = make({ timeoutMs: 200, retries: 0 })
        const a = await r.lookup('a.example', 'A')
        assert.equal(a.status, 'failed')
        assert.ok(r.stats().discarded >= 1, 'the reply was discarded as not ours')
    })

    it('C3: concurrent identical lookups share one query on the wire', async () => {
        server.handler = async (q) => {
            await sleep(50)
            return answerA(true)(q)
        }
        const r = make()
        const [a, b, c] = await Promise.all([r.lookup('shared.example', 'A'), r.lookup('SHARED.example.', 'A'), r.lookup('shared.example', 'AAAA')])
        assert.equal(server.received.filter((x) => x.packet.questions[0].type === T.A).length, 1)
        assert.equal(server.received.length, 2, 'A shared, AAAA separate')
        assert.equal(r.stats().inflightShared, 1)
        assert.deepEqual(a.addresses, ['192.0.2.1'])
        assert.deepEqual(b.addresses, ['192.0.2.1'])
        assert.equal(c.status, 'nodata')
        // each caller gets its own copy
        a.addresses?.push('203.0.113.1')
        assert.deepEqual(b.addresses, ['192.0.2.1'])
    })

    it('close() fails lookups in flight at once, and later ones', async () => {
        server.handler = () => []
        const r = make({ timeoutMs: 4000, retries: 0 })
        const p = r.lookup('pending.example', 'A')
        await sleep(20)
        r.close()
        const a: Answer = await p
        assert.equal(a.status, 'failed')
        assert.equal(a.reason, 'resolver closed')
        assert.equal(r.stats().timeouts, 0, 'ended by close(), not by the timeout')
        const later = await r.lookup('later.example', 'A')
        assert.equal(later.reason, 'resolver closed')
    })

    it('stats() counts lookups, wire queries and cache hits', async () => {
        server.handler = answerA()
        const r = make()
        await r.lookup('s.example', 'A')
        await r.lookup('s.example', 'A')
        const st = r.stats()
        assert.deepEqual(
            { queries: st.queries, udp: st.udp, tcp: st.tcp, cacheHits: st.cacheHits, timeouts: st.timeouts },
            { queries: 2, udp: 1, tcp: 0, cacheHits: 1, timeouts: 0 },
        )
    })
})
