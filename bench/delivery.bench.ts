// End-to-end cost of the plugin: a real Haraka delivering through the test
// world to a DANE-EE host, with haraka-plugin-dane and without it (Haraka's own
// MX lookup and opportunistic TLS to the same host). Messages are injected one
// SMTP session each, as fast as Haraka accepts them; the clock stops when the
// last one is delivered. Needs root (ports 25/53 on 127.0.0.x), like the tests.
import { Haraka } from '../test/world/haraka'
import { startScenarioWorld, worldDaneIni } from '../test/world/scenarios'
import { sleep } from '../test/world/procs'

async function run(haraka: Haraka, to: string, n: number): Promise<{ perSecond: number; delivered: number }> {
    const before = haraka.events().length
    const t0 = process.hrtime.bigint()
    const ids: string[] = []
    for (let i = 0; i < n; i++) ids.push(await haraka.send(to, { subject: `bench ${i}` }))
    for (;;) {
        const done = haraka
            .events()
            .slice(before)
            .filter((e) => e.event === 'delivered' || e.event === 'deferred' || e.event === 'bounce')
        if (done.length >= n) {
            const secs = Number(process.hrtime.bigint() - t0) / 1e9
            return { perSecond: n / secs, delivered: done.filter((e) => e.event === 'delivered').length }
        }
        await sleep(20)
    }
}

export async function benchDelivery(): Promise<void> {
    const world = await startScenarioWorld()
    const withDane = new Haraka({ withDane: true, port: 2530 })
    withDane.writeConfigFile('dane.ini', worldDaneIni(world, `${withDane.dir}/dane.jsonl`))
    const without = new Haraka({ withDane: false, port: 2531, address: '127.0.0.25', systemResolver: world.dns.resolverAddress })
    try {
        await withDane.start()
        await without.start()
        const n = 300
        console.log(`delivery: ${n} messages to ee.dane.test (DANE-EE host, STARTTLS), one SMTP session each`)
        await run(without, 'warm@ee.dane.test', 5)
        await run(withDane, 'warm@ee.dane.test', 5)
        const plain = await run(without, 'bench@ee.dane.test', n)
        const dane = await run(withDane, 'bench@ee.dane.test', n)
        console.log(`  Haraka alone (opportunistic TLS):      ${plain.perSecond.toFixed(0)} messages/s (${plain.delivered} delivered)`)
        console.log(`  Haraka + haraka-plugin-dane (verified): ${dane.perSecond.toFixed(0)} messages/s (${dane.delivered} delivered)`)
    } finally {
        await withDane.stop()
        await without.stop()
        withDane.cleanup()
        without.cleanup()
        await world.stop()
    }
}
