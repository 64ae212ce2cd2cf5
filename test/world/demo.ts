// `npm start`: the live demonstration. Brings up the local signed DNS world
// (nsd + unbound), the receiving MTAs and a real Haraka with haraka-plugin-dane,
// sends one message to each scenario domain, and prints what the plugin decided
// and what the receiving side saw. Everything it starts, it stops.
import path from 'node:path'
import { Haraka } from './haraka'
import { readDaneLog } from './dane-log'
import { startScenarioWorld, ScenarioWorld, worldDaneIni } from './scenarios'

function pad(s: string, n: number): string {
    return s.length >= n ? s : s + ' '.repeat(n - s.length)
}

async function main(): Promise<void> {
    const keep = process.argv.includes('--keep-logs')
    let world: ScenarioWorld | undefined
    let haraka: Haraka | undefined
    const stopAll = async () => {
        await haraka?.stop()
        await world?.stop()
        if (!keep) haraka?.cleanup()
    }
    process.on('SIGINT', () => void stopAll().then(() => process.exit(130)))
    try {
        process.stderr.write(
            "starting nsd + unbound with signed, unsigned and bogus zones, 17 receiving MTAs on 127.0.0.11-29:25 and redis (Haraka's TLS NO-GO list) …\n",
        )
        world = await startScenarioWorld()
        haraka = new Haraka({ withDane: true })
        const daneLog = path.join(haraka.dir, 'dane.jsonl')
        haraka.writeConfigFile('tls.ini', world.redis.tlsIni())
        haraka.writeConfigFile('dane.ini', worldDaneIni(world, daneLog))
        process.stderr.write(`starting Haraka with haraka-plugin-dane (config in ${haraka.dir}) …\n`)
        await haraka.start()
        const ids = new Map<string, string>()
        for (const s of world.scenarios) ids.set(s.domain, await haraka.send(`postmaster@${s.domain}`, { subject: s.title }))
        process.stderr.write(`sent ${ids.size} messages; waiting for Haraka's outbound to finish with each …\n\n`)
        await Promise.all([...ids.values()].map((id) => haraka!.waitFor(id, ['delivered', 'deferred', 'bounce'], 60000)))

        const lines = readDaneLog(daneLog)
        let right = 0
        for (const s of world.scenarios) {
            const ev = haraka.events().find((e) => e.queue_id.startsWith(ids.get(s.domain)!))!
            const outcome = ev.event === 'bounce' ? 'bounced' : ev.event
            const mine = lines.filter((l) => l.domain === s.domain)
            const decision = mine.find((l) => l.event === 'decision')
            const final = mine.filter((l) => l.event === 'final').pop()
            const failed = mine.filter((l) => l.event === 'attempt' && (l.outcome === 'failed' || l.outcome === 'skipped'))
            // delivered means delivered to the right receiver, with the TLS and SNI the scenario requires
            const got = [...world.listeners.values()].flatMap((x) => x.received).find((r) => r.to.includes(`postmaster@${s.domain}`))
            const want = world.listeners.get(s.deliveredTo ?? '')
            const ok =
                outcome === s.expect &&
                (outcome !== 'delivered' || (got?.listener === want?.address && (!s.tls || final?.tls === s.tls) && (!s.sni || got?.servername === s.sni)))
            if (ok) right++
            console.log(`${ok ? 'as expected' : 'UNEXPECTED '}  ${pad(s.domain, 22)} ${s.title}`)
            console.log(`             decided: ${decision?.action}: ${decision?.reason}`)
            for (const f of failed) console.log(`             ${f.outcome} ${f.mx_host}: ${f.result_type ?? ''} ${f.reason}`)
            if (outcome === 'delivered') {
                console.log(
                    `             delivered (${final?.tls}${final?.matched ? `, matched ${final.matched.slice(0, 22)}… at depth ${final.depth}` : ''}); ` +
                        `receiver ${got?.listener ?? '-'} saw TLS=${got?.secure ? 'yes' : 'no'} SNI=${got?.servername ?? '-'} cipher=${got?.cipher ?? '-'}`,
                )
            } else {
                console.log(`             ${outcome}: ${final?.reason ?? ev.err ?? ''}`)
            }
            console.log('')
        }
        console.log(`${right} of ${world.scenarios.length} scenarios behaved as RFC 7672 requires.`)
        console.log(`Haraka's "no TLS" marks in redis: ${world.redis.noTlsMarks().join(', ') || 'none'} (DANE failures never add one, C20).`)
        console.log(`The plugin's delivery log (pino JSON) was ${daneLog}${keep ? '' : ' (removed; run with --keep-logs to keep it)'}.`)
        process.exitCode = right === world.scenarios.length ? 0 : 1
    } finally {
        await stopAll()
    }
}

main().catch((err) => {
    console.error(err)
    process.exit(1)
})
