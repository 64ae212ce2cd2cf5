/**
 * The answer cache's memory with huge answers (C30): 3,000 distinct names each answered by a signed
 * wildcard-style TLSA RRset of ~54 KB (1,000 records; over TCP after a truncated UDP reply), looked
 * up through the resolver with the default cache bounds, then the process's external memory and
 * the cache's own count. A fake authoritative-looking server in this process answers with AD set.
 */
import * as dgram from 'node:dgram'
import * as net from 'node:net'
import { resolverSettingsOrThrow } from '../lib/config'
import { Resolver } from '../lib/resolver'

const RECORDS = 1000
const NAMES = 3000

function name(buf: Buffer): { labels: Buffer; end: number } {
    let at = 12
    while (buf[at] !== 0) at += buf[at] + 1
    return { labels: buf.subarray(12, at + 1), end: at + 1 }
}

/** a reply to `query`: TC set (UDP), or the whole RRset (TCP) */
function reply(query: Buffer, truncated: boolean): Buffer {
    const q = name(query)
    const question = query.subarray(12, q.end + 4)
    const h = Buffer.alloc(12)
    query.copy(h, 0, 0, 2)
    h.writeUInt16BE(0x8180 | 0x0020 | (truncated ? 0x0200 : 0), 2) // QR RD RA AD (TC)
    h.writeUInt16BE(1, 4)
    if (truncated) return Buffer.concat([h, question])
    h.writeUInt16BE(RECORDS, 6)
    const rrs: Buffer[] = []
    for (let i = 0; i < RECORDS; i++) {
        const rdata = Buffer.concat([Buffer.from([3, 1, 1]), Buffer.alloc(30, i & 0xff), Buffer.from([i >> 8, i & 0xff])])
        const fixed = Buffer.alloc(10)
        fixed.writeUInt16BE(52, 0)
        fixed.writeUInt16BE(1, 2)
        fixed.writeUInt32BE(3600, 4)
        fixed.writeUInt16BE(rdata.length, 8)
        rrs.push(Buffer.from([0xc0, 0x0c]), fixed, rdata)
    }
    return Buffer.concat([h, question, ...rrs])
}

export async function benchCache(): Promise<void> {
    const udp = dgram.createSocket('udp4')
    udp.on('message', (m, r) => udp.send(reply(m, true), r.port, r.address))
    await new Promise<void>((res) => udp.bind(0, '127.0.0.1', () => res()))
    const port = udp.address().port
    const tcp = net.createServer((s) => {
        let pending = Buffer.alloc(0)
        s.on('error', () => undefined)
        s.on('data', (d) => {
            pending = Buffer.concat([pending, d])
            while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
                const msg = pending.subarray(2, 2 + pending.readUInt16BE(0))
                pending = pending.subarray(2 + msg.length)
                const out = reply(msg, false)
                const len = Buffer.alloc(2)
                len.writeUInt16BE(out.length, 0)
                s.write(Buffer.concat([len, out]))
            }
        })
    })
    await new Promise<void>((res) => tcp.listen(port, '127.0.0.1', () => res()))

    const resolver = new Resolver(resolverSettingsOrThrow({ address: '127.0.0.1', port, timeoutMs: 2000, retries: 0, cacheSize: 10000 }))
    const gc = (globalThis as { gc?: () => void }).gc
    gc?.()
    const before = process.memoryUsage()
    let bytes = 0
    for (let i = 0; i < NAMES; i += 20) {
        const batch = await Promise.all(Array.from({ length: 20 }, (_, j) => resolver.lookup(`_25._tcp.mx${i + j}.wild.example`, 'TLSA')))
        for (const a of batch) {
            if (a.status !== 'ok' || a.tlsa?.length !== RECORDS) throw new Error(`bench answer ${a.status} ${a.reason ?? ''}`)
            bytes = a.tlsa.reduce((n, b) => n + b.length, 0)
        }
    }
    gc?.()
    const after = process.memoryUsage()
    const usage = resolver.cacheUsage()
    const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MB`
    console.log(
        `${NAMES} names, each a secure TLSA RRset of ${RECORDS} records (${(bytes / 1024).toFixed(0)} KB of rdata, ~${(reply(Buffer.concat([Buffer.alloc(12), Buffer.from([1, 97, 0]), Buffer.from([0, 52, 0, 1])]), false).length / 1024).toFixed(0)} KB on the wire)`,
    )
    console.log(
        `cache bound: 10,000 entries and ${mb(32 * 1048576)} (the defaults); the cache holds ${usage.entries} answers, ${mb(usage.bytes)} by its own count`,
    )
    console.log(
        `process growth: external ${mb(after.external - before.external)}, heap ${mb(after.heapUsed - before.heapUsed)}, rss ${mb(after.rss - before.rss)}${gc ? '' : ' (run node with --expose-gc for settled figures)'}`,
    )
    resolver.close()
    udp.close()
    tcp.close()
}
