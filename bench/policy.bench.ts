// Policy engine benchmark through the real local unbound validating real
// signed zones, for domains with 1, 2 and 5 MX hosts: decisions per second
// with a warm plugin cache (with and without the host decisions kept), and
// decision latency (median, p99) and queries sent with a cold plugin cache,
// unbound warm or cold, the TLSA lookups made after the address lookups or
// beside them (DecideOptions.tlsaAhead). Its DNS world uses its own
// addresses (127.0.2.52/53).
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
    // a signed domain whose MX host lies in an unsigned zone: no TLSA lookup is due (C7); asked ahead, it is wasted
    records.push('mxu MX 10 h1.plainbench.test.')
    await world.start([
        { name: 'bench.test', signing: 'signed', records, ttl: 3600 },
        { name: 'plainbench.test', signing: 'unsigned', records: ['h1 A 127.0.2.120'], ttl: 3600 },
    ])
    const opts = { address: world.resolverAddress, port: world.port, timeoutMs: 2000, retries: 1 }
    try {
        console.log('policy: decisions through unbound on loopback (DANE-EE on every MX host)')
        for (const n of [1, 2, 5, 0]) {
            // n = 0: the one MX host of mxu, in an unsigned zone
            const domain = n ? `mx${n}.bench.test` : 'mxu.bench.test'
            const modes = n ? Array(n).fill('dane') : ['opportunistic']
            // a fresh resolver (its cache empty) for every decision: the plugin meeting a destination for the first time
            const coldRun = async (count: number, ahead: boolean, flush: boolean): Promise<{ ms: number[]; queries: number }> => {
                const ms: number[] = []
                let queries = 0
                for (let i = 0; i < count; i++) {
                    if (flush) world.flushResolver()
                    const r = new Resolver(resolverSettingsOrThrow({ ...opts, cacheSize: 10000 }))
                    const t = process.hrtime.bigint()
                    const d = await decide(domain, (name, type) => r.lookup(name, type), { memo: r, tlsaAhead: ahead })
                    ms.push(Number(process.hrtime.bigint() - t) / 1e6)
                    queries += r.stats().udp
                    r.close()
                    if (d.action !== 'deliver' || d.hosts.map((h) => h.mode).join() !== modes.join()) throw new Error(`bench world broken: ${d.reason}`)
                }
                return { ms: ms.sort((a, b) => a - b), queries: queries / count }
            }
            const shown = (c: { ms: number[]; queries: number }): string =>
                `median ${percentile(c.ms, 50).toFixed(2)} ms p99 ${percentile(c.ms, 99).toFixed(2)} ms, ${c.queries.toFixed(1)} queries`
            // unbound warm (the usual case once a destination has been seen by the resolver); alternate the two ways
            const after: { ms: number[]; queries: number }[] = []
            const beside: { ms: number[]; queries: number }[] = []
            for (let i = 0; i < 4; i++) {
                after.push(await coldRun(50, false, false))
                beside.push(await coldRun(50, true, false))
            }
            const merge = (xs: { ms: number[]; queries: number }[]) => ({ ms: xs.flatMap((x) => x.ms).sort((a, b) => a - b), queries: xs[0].queries })
            // unbound cold too: flushed before every decision (its validation included)
            const afterColder = await coldRun(20, false, true)
            const besideColder = await coldRun(20, true, true)
            // warm: the plugin's cache holds the answers, and the host decisions derived from them (as in Haraka)
            const warm = new Resolver(resolverSettingsOrThrow({ ...opts, cacheSize: 10000 }))
            const rate = async (memo: boolean): Promise<number> => {
                await decide(domain, (name, type) => warm.lookup(name, type), { memo: memo ? warm : undefined })
                const N = 20000
                const t0 = process.hrtime.bigint()
                for (let i = 0; i < N; i++) await decide(domain, (name, type) => warm.lookup(name, type), { memo: memo ? warm : undefined })
                return N / (Number(process.hrtime.bigint() - t0) / 1e9)
            }
            const answersOnly = await rate(false)
            const kept = await rate(true)
            warm.close()
            console.log(
                `  ${n ? `${n} MX` : 'MX host unsigned'}: warm: ${Math.round(kept).toLocaleString('en')} decisions/s with host decisions kept, ${Math.round(answersOnly).toLocaleString('en')}/s from cached answers alone`,
            )
            console.log(`        cold plugin cache, TLSA after the addresses: ${shown(merge(after))}; beside them: ${shown(merge(beside))} (n=200 each)`)
            console.log(`        unbound cold too,  TLSA after the addresses: ${shown(afterColder)}; beside them: ${shown(besideColder)} (n=20 each)`)
        }
    } finally {
        await world.stop()
    }
}
