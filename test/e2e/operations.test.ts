// Issue 6: what a postmaster configures, with a real Haraka and the real world:
// per-domain overrides (C21), the exception list (C22), configuration errors at
// start-up and on reload (C23), the RFC 8460 result types in the log (C25).
import assert from 'node:assert/strict'
import { Haraka } from '../world/haraka'
import { readDaneLog, DaneLogLine } from '../world/dane-log'
import { ScenarioWorld, worldDaneIni, worldWithHaraka } from '../world/scenarios'
import { sleep } from '../world/procs'

describe('operating it: overrides, exceptions and configuration errors with a real Haraka', function () {
    this.timeout(120000)
    let world: ScenarioWorld
    let haraka: Haraka
    let daneLog: string

    const lines = (): DaneLogLine[] => readDaneLog(daneLog)
    const forQueue = (qid: string) => lines().filter((l) => l.queue_id?.startsWith(qid))
    const received = (name: string) => world.listeners.get(name)!.received

    async function deliver(to: string): Promise<{ qid: string; event: string }> {
        const qid = await haraka.send(to)
        const ev = await haraka.waitFor(qid, ['delivered', 'deferred', 'bounce'], 30000)
        return { qid, event: ev.event }
    }

    async function waitForLog(re: RegExp, timeoutMs = 10000): Promise<void> {
        const deadline = Date.now() + timeoutMs
        while (Date.now() < deadline) {
            if (re.test(haraka.log())) return
            await sleep(50)
        }
        throw new Error(`log never matched ${re}:\n${haraka.logTail()}`)
    }

    before(async () => {
        ;({ world, haraka, daneLog } = await worldWithHaraka(
            '[domains]\ninsecure.test=dane-only\nee.dane.test=none\nfallback.dane.test=encrypt\n.unusable.dane.test=dane-only\n',
        ))
        haraka.writeConfigFile('dane.exceptions', '# TLSA known broken, ticket 7\nallbad.dane.test\n')
        await haraka.start()
    })

    after(async () => {
        await haraka?.stop()
        await world?.stop()
        haraka?.cleanup()
    })

    it('C22: a domain on the exception list is delivered with opportunistic TLS, and the log says an exception was used', async () => {
        const { qid, event } = await deliver('postmaster@allbad.dane.test')
        assert.equal(event, 'delivered', 'the wrong TLSA records are not enforced')
        assert.equal(received('allbad1').length + received('allbad2').length, 1)
        const mine = forQueue(qid)
        const decision = mine.find((l) => l.event === 'decision')!
        assert.equal(decision.exception, true)
        assert.equal(decision.policy, 'may')
        const final = mine.find((l) => l.event === 'final')!
        assert.equal(final.exception, true)
        assert.equal(final.tls, 'opportunistic-tls')
    })

    it('C21: dane-only defers a domain DANE cannot authenticate (insecure), with result type dane-required', async () => {
        const { qid, event } = await deliver('postmaster@insecure.test')
        assert.equal(event, 'deferred')
        assert.equal(received('insecure').length, 0)
        assert.equal(world.listeners.get('insecure')!.connections.length, 0, 'not even connected')
        const skipped = forQueue(qid).find((l) => l.event === 'attempt')!
        assert.equal(skipped.outcome, 'skipped')
        assert.equal(skipped.result_type, 'dane-required')
    })

    it('C21: .parent entries cover subdomains only: unusable.dane.test itself keeps the default policy', async () => {
        const { event } = await deliver('postmaster@unusable.dane.test')
        assert.equal(event, 'delivered')
    })

    it('C21: none sends without TLS even to a DANE host that offers it', async () => {
        const { qid, event } = await deliver('postmaster@ee.dane.test')
        assert.equal(event, 'delivered')
        const got = received('ee').at(-1)!
        assert.equal(got.secure, false)
        assert.equal(forQueue(qid).find((l) => l.event === 'final')!.tls, 'plaintext')
    })

    it('C21: encrypt insists on TLS but does not authenticate (the first MX with the wrong key is used)', async () => {
        const { qid, event } = await deliver('postmaster@fallback.dane.test')
        assert.equal(event, 'delivered')
        assert.equal(received('fallback1').length, 1)
        assert.ok(received('fallback1')[0].secure)
        assert.equal(forQueue(qid).find((l) => l.event === 'final')!.tls, 'unauthenticated-tls')
    })

    it('C23: a bad word on reload is reported with file and line, and the last good configuration stays in force', async () => {
        haraka.writeConfigFile('dane.ini', worldDaneIni(world, daneLog, '[domains]\ninsecure.test=dane-onyl\n'))
        await waitForLog(/dane\.ini:9: domains\.insecure\.test: unknown policy word/)
        await waitForLog(/keeping the last good configuration/)
        const { event } = await deliver('postmaster@insecure.test')
        assert.equal(event, 'deferred', 'dane-only still applies')
        const cfgLine = lines().find((l) => l.event === 'config')!
        assert.equal(cfgLine.errors![0].line, 9)
    })

    it('C23: a corrected file is taken on reload', async () => {
        haraka.writeConfigFile('dane.ini', worldDaneIni(world, daneLog, '[domains]\ninsecure.test=may\n'))
        await waitForLog(/configuration reloaded/)
        const { event } = await deliver('postmaster@insecure.test')
        assert.equal(event, 'delivered')
    })

    it('C23, C1: at start-up a configuration error stops Haraka with file and line (a non-loopback resolver here)', async () => {
        const bad = new Haraka({ withDane: true, port: 2526 })
        try {
            bad.writeConfigFile('dane.ini', '[resolver]\naddress=192.0.2.53\n')
            await assert.rejects(bad.start(), /did not come up/)
            assert.match(bad.log(), /dane\.ini:2: resolver\.address 192\.0\.2\.53 is not a loopback address/)
        } finally {
            await bad.stop()
            bad.cleanup()
        }
    })
})
