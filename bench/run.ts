// `npm run bench`: every benchmark, one after another. Figures depend on the
// machine; the README records what they were on the project's 2-core machines.
import { benchVerify } from './verify.bench'
import { benchResolverCache } from './resolver.bench'
import { benchPolicy } from './policy.bench'
import { benchDelivery } from './delivery.bench'
import { benchCache } from './cache.bench'
import { benchMtasts } from './mtasts.bench'

async function main(): Promise<void> {
    const only = process.argv[2]
    const all: Record<string, () => Promise<void>> = {
        verify: benchVerify,
        resolver: benchResolverCache,
        cache: benchCache,
        policy: benchPolicy,
        delivery: benchDelivery,
        mtasts: benchMtasts,
    }
    for (const [name, fn] of Object.entries(all)) {
        if (only && only !== name) continue
        console.log(`\n== ${name} ==`)
        await fn()
    }
}

main().then(
    () => process.exit(0),
    (err) => {
        console.error(err)
        process.exit(1)
    },
)
