// Policy engine benchmark through the real local unbound validating real
// signed zones: decisions per second with a warm plugin cache, and decision
// latency (median, p99) with a cold plugin cache, for domains with 1, 2 and
// 5 MX hosts. Its DNS world uses its own addresses (127.0.2.52/53).
import { DnsWorld } from '../test/world/dns'
import { makeCertificate, tlsaText } from '../test/world/certs'
import { resolverSettingsOrThrow } from '../lib/config'
import { Resolver } from '../lib/resolver'
import { decide } from '../lib/policy'

function percentile(sorted: number[], p: number): number {
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

export async function benchPolicy(): Promise<void> {
    const cert = makeCertificate({ cn: 'bench' })
    const records: string[] = []
    for (const n of [1, 2, 5]) {
        for (let i = 1; i <= n; i++) {
            records.push(`mx${n} MX ${i * 10} h${i}.mx${n}`, `h${i}.mx${n} A 127.0.2.${100 + i}`, `_25._tcp.h${i}.mx${n} TLSA ${tlsaText(cert, 3, 1, 1)}`)
        }
    }
    const world = new DnsWorld({ nsdAddress: '127.0.2.52', resolverAddress: '127.0.2.53' })
    await world.start([{ name: 'bench.test', signing: 'signed', records, ttl: 3600 }])
    const opts = { address: world.resolverAddress, port: world.port, timeoutMs: 2000, retries: 1 }
    try {
        console.log('policy: decisions through unbound on loopback (DANE-EE on every MX host)')
        for (const n of [1, 2, 5]) {
            const domain = `mx${n}.bench.test`
            // cold plugin cache (unbound warm: the usual case once a destination has been seen by the resolver)
            const cold: number[] = []
            for (let i = 0; i < 200; i++) {
                const r = new Resolver(resolverSettingsOrThrow({ ...opts, cacheSize: 0 }))
                const t = process.hrtime.bigint()
                const d = await decide(domain, (name, type) => r.lookup(name, type))
                cold.push(Number(process.hrtime.bigint() - t) / 1e6)
                r.close()
                if (d.action !== 'deliver' || d.hosts.length !== n || d.hosts.some((h) => h.mode !== 'dane')) throw new Error(`bench world broken: ${d.reason}`)
            }
            cold.sort((a, b) => a - b)
            // both caches cold: unbound flushed before every decision (validation included)
            const colder: number[] = []
            for (let i = 0; i < 30; i++) {
                world.flushResolver()
                const r = new Resolver(resolverSettingsOrThrow({ ...opts, cacheSize: 0 }))
                const t = process.hrtime.bigint()
                await decide(domain, (name, type) => r.lookup(name, type))
                colder.push(Number(process.hrtime.bigint() - t) / 1e6)
                r.close()
            }
            colder.sort((a, b) => a - b)
            // warm plugin cache
            const warm = new Resolver(resolverSettingsOrThrow({ ...opts, cacheSize: 10000 }))
            await decide(domain, (name, type) => warm.lookup(name, type))
            const N = 20000
            const t0 = process.hrtime.bigint()
            for (let i = 0; i < N; i++) await decide(domain, (name, type) => warm.lookup(name, type))
            const secs = Number(process.hrtime.bigint() - t0) / 1e9
            warm.close()
            console.log(
                `  ${n} MX: warm cache ${Math.round(N / secs).toLocaleString('en')} decisions/s; ` +
                    `cold plugin cache median ${percentile(cold, 50).toFixed(2)} ms p99 ${percentile(cold, 99).toFixed(2)} ms (n=${cold.length}); ` +
                    `unbound also cold median ${percentile(colder, 50).toFixed(2)} ms p99 ${percentile(colder, 99).toFixed(2)} ms (n=${colder.length})`,
            )
        }
    } finally {
        await world.stop()
    }
}
