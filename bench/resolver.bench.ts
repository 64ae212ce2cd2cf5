/**
 * Resolver cache benchmark: warm-cache lookups per second against an in-process
 * fake DNS server on 127.0.0.1 (and, for scale, uncached wire lookups).
 */
import * as dgram from 'node:dgram'
import DNS from 'dns2'
import { resolverSettingsOrThrow } from '../lib/config'
import { Resolver } from '../lib/resolver'

interface LoosePacket {
    header: Record<string, number>
    questions: { name: string; type: number; class: number }[]
    answers: Record<string, unknown>[]
    additionals: Record<string, unknown>[]
    toBuffer(): Buffer
}
interface LooseCodec {
    new (): LoosePacket
    parse(buf: Buffer): LoosePacket
    Resource: { EDNS(rdata: unknown[], opts: { udpPayloadSize?: number; doFlag?: boolean }): Record<string, unknown> }
}
const Packet = DNS.Packet as unknown as LooseCodec

/** A UDP-only fake resolver: every A question gets one secure A record, TTL 3600. */
async function startFakeServer(): Promise<{ port: number; close(): Promise<void> }> {
    const sock = dgram.createSocket('udp4')
    sock.on('message', (msg, rinfo) => {
        const q = Packet.parse(msg)
        const p = new Packet()
        p.header = { id: q.header.id, qr: 1, rd: 1, ra: 1, ad: 1, rcode: 0 }
        p.questions = [q.questions[0]]
        p.answers = [{ name: q.questions[0].name, type: 1, class: 1, ttl: 3600, address: '192.0.2.1' }]
        p.additionals = [Packet.Resource.EDNS([], { udpPayloadSize: 1232, doFlag: true })]
        sock.send(p.toBuffer(), rinfo.port, rinfo.address)
    })
    await new Promise<void>((res) => sock.bind(0, '127.0.0.1', () => res()))
    return {
        port: sock.address().port,
        close: () => new Promise<void>((res) => sock.close(() => res())),
    }
}

export async function benchResolverCache(): Promise<void> {
    const server = await startFakeServer()
    const names = Array.from({ length: 100 }, (_, i) => `host${i}.bench.example`)
    const resolver = new Resolver(resolverSettingsOrThrow({ address: '127.0.0.1', port: server.port, timeoutMs: 1000, retries: 1, cacheSize: 1000 }))
    const wire = new Resolver(resolverSettingsOrThrow({ address: '127.0.0.1', port: server.port, timeoutMs: 1000, retries: 1, cacheSize: 0 }))
    try {
        // warm the cache
        for (const n of names) {
            const a = await resolver.lookup(n, 'A')
            if (a.status !== 'ok') throw new Error(`warm-up failed for ${n}: ${a.reason}`)
        }

        const iterations = 200_000
        // sequential: one awaited lookup after another
        let t0 = process.hrtime.bigint()
        for (let i = 0; i < iterations; i++) await resolver.lookup(names[i % names.length], 'A')
        let secs = Number(process.hrtime.bigint() - t0) / 1e9
        const seqRate = iterations / secs

        // batched: 100 lookups awaited together
        t0 = process.hrtime.bigint()
        for (let i = 0; i < iterations; i += names.length) await Promise.all(names.map((n) => resolver.lookup(n, 'A')))
        secs = Number(process.hrtime.bigint() - t0) / 1e9
        const batchRate = iterations / secs

        const st = resolver.stats()
        if (st.udp !== names.length) throw new Error(`expected only warm-up queries on the wire, saw ${st.udp}`)

        // for scale: uncached lookups over UDP to the same fake server
        const wireN = 2000
        t0 = process.hrtime.bigint()
        for (let i = 0; i < wireN; i++) await wire.lookup(names[i % names.length], 'A')
        secs = Number(process.hrtime.bigint() - t0) / 1e9
        const wireRate = wireN / secs

        console.log(`resolver cache: warm-cache lookups/s sequential ${Math.round(seqRate)}, batched x${names.length} ${Math.round(batchRate)}`)
        console.log(`resolver cache: uncached UDP lookups/s (fake server, loopback) ${Math.round(wireRate)}`)
        console.log(`resolver cache: cache hits ${st.cacheHits}, wire queries ${st.udp}`)
    } finally {
        resolver.close()
        wire.close()
        await server.close()
    }
}

if (require.main === module) {
    benchResolverCache().catch((e) => {
        console.error(e)
        process.exitCode = 1
    })
}
