// Issue 5: DANE enforced on real outbound deliveries. A real Haraka with the
// plugin installed as a user installs it, relaying through a real unbound
// validating real signed zones, to real STARTTLS listeners on 127.0.0.x:25.
import assert from 'node:assert/strict'
import path from 'node:path'
import { Haraka } from '../world/haraka'
import { readDaneLog, DaneLogLine } from '../world/dane-log'
import { startScenarioWorld, ScenarioWorld, allbadFixed, worldDaneIni } from '../world/scenarios'

describe('end to end: Haraka + haraka-plugin-dane + the test world', function () {
    this.timeout(120000)
    let world: ScenarioWorld
    let haraka: Haraka
    let daneLog: string
    const queueIds = new Map<string, string>()

    const logLines = (): DaneLogLine[] => readDaneLog(daneLog)
    const linesFor = (domain: string) => logLines().filter((l) => l.domain === domain)
    const received = (listener: string) => world.listeners.get(listener)!.received

    before(async () => {
        world = await startScenarioWorld()
        haraka = new Haraka({ withDane: true })
        daneLog = path.join(haraka.dir, 'dane.jsonl')
        haraka.writeConfigFile('dane.ini', worldDaneIni(world, daneLog, '[main]\npolicy=dane\n'))
        // Haraka's own force_tls_hosts names the DANE-EE host: the plugin's enforcement must still apply (PKIX would reject it)
        haraka.writeConfigFile('tls.ini', `[outbound]\nforce_tls_hosts[]=127.0.0.11\n${world.redis.tlsIni()}`)
        // a "no TLS" mark left on a DANE host (by an earlier opportunistic delivery, or before the plugin)
        world.redis.cli('SET', 'no_tls|127.0.0.12', new Date().toISOString())
        await haraka.start()
        // every scenario's message goes in at once; they are delivered concurrently
        for (const s of world.scenarios) queueIds.set(s.domain, await haraka.send(`postmaster@${s.domain}`, { subject: s.title }))
        await Promise.all(world.scenarios.map((s) => haraka.waitFor(queueIds.get(s.domain)!, ['delivered', 'deferred', 'bounce'], 60000)))
    })

    after(async () => {
        await haraka?.stop()
        await world?.stop()
        haraka?.cleanup()
    })

    function outcomeOf(domain: string): string {
        return haraka.events().find((e) => e.queue_id.startsWith(queueIds.get(domain)!))!.event
    }

    it('C14: DANE-EE match delivered (self-signed, expired, wrong name ignored)', () => {
        assert.equal(outcomeOf('ee.dane.test'), 'delivered')
        const got = received('ee')
        assert.equal(got.length, 1)
        assert.ok(got[0].secure, 'delivered over TLS')
        const final = linesFor('ee.dane.test').find((l) => l.event === 'final')!
        assert.equal(final.outcome, 'delivered')
        assert.equal(final.tls, 'verified')
        assert.match(final.matched ?? '', /^3 1 1 [0-9a-f]{64}$/)
        assert.equal(final.depth, 0)
    })

    it('C15: DANE-TA match on a presented trust anchor delivered', () => {
        assert.equal(outcomeOf('ta.dane.test'), 'delivered')
        assert.equal(received('ta').length, 1)
        const final = linesFor('ta.dane.test').find((l) => l.event === 'final')!
        assert.equal(final.tls, 'verified')
        assert.match(final.matched ?? '', /^2 0 1 /)
        assert.equal(final.depth, 2, 'the root is two above the leaf')
    })

    it('C19: SNI carries the TLSA base domain', () => {
        assert.equal(received('ee')[0].servername, 'mx.ee.dane.test')
        assert.equal(received('ta')[0].servername, 'mx.ta.dane.test')
    })

    it("C8, C19: CNAME'd MX host verified at the expanded name, SNI is the expanded name", () => {
        assert.equal(outcomeOf('cname.dane.test'), 'delivered')
        const got = received('cname')
        assert.equal(got.length, 1)
        assert.equal(got[0].servername, 'real.hosting.dane.test')
        const final = linesFor('cname.dane.test').find((l) => l.event === 'final')!
        assert.equal(final.tlsa_base, 'real.hosting.dane.test')
    })

    const attemptsOf = (domain: string, outcome: string) => linesFor(domain).filter((l) => l.event === 'attempt' && l.outcome === outcome)
    const decisionHost = (domain: string, mx: string) =>
        linesFor(domain)
            .find((l) => l.event === 'decision')!
            .hosts!.find((h) => h.mx_host === mx)!
    const stillQueued = (domain: string) => haraka.queuedIds().some((id) => id.startsWith(queueIds.get(domain)!))

    it('C8, C19: a secure CNAME to a host in an unsigned zone is verified with the TLSA record at the original name; SNI the original name', () => {
        assert.equal(outcomeOf('cu.dane.test'), 'delivered')
        const got = received('cu').filter((r) => r.to.includes('postmaster@cu.dane.test'))
        assert.equal(got.length, 1)
        assert.ok(got[0].secure)
        assert.equal(got[0].servername, 'smtp.cu.dane.test')
        const host = decisionHost('cu.dane.test', 'smtp.cu.dane.test')
        assert.equal(host.address_secure, false, 'the addresses were insecure')
        assert.equal(host.cname, 'smtp.insecure.test')
        const final = linesFor('cu.dane.test').find((l) => l.event === 'final')!
        assert.equal(final.tls, 'verified')
        assert.equal(final.tlsa_base, 'smtp.cu.dane.test')
    })

    it('C24: the first MX refuses the connection → an attempt line names the host, address and error; the second MX gets one copy', () => {
        assert.equal(outcomeOf('down.dane.test'), 'delivered')
        assert.equal(received('second').filter((r) => r.to.includes('postmaster@down.dane.test')).length, 1)
        const failed = attemptsOf('down.dane.test', 'failed')
        assert.equal(failed.length, 1)
        assert.equal(failed[0].mx_host, 'mx1.down.dane.test')
        assert.equal(failed[0].address, '127.0.0.41')
        assert.equal(failed[0].mode, 'dane')
        assert.equal(failed[0].tlsa_base, 'mx1.down.dane.test')
        assert.match(failed[0].reason ?? '', /^cannot connect to mx1\.down\.dane\.test \[127\.0\.0\.41\]: .*ECONNREFUSED/)
        assert.equal(attemptsOf('down.dane.test', 'verified')[0]?.address, '127.0.0.27')
    })

    it('C8, C20: a secure CNAME to a host in an unsigned zone whose key does not match the TLSA record → deferred, nothing sent', () => {
        assert.equal(outcomeOf('cubad.dane.test'), 'deferred')
        assert.equal(received('cu').filter((r) => r.to.includes('postmaster@cubad.dane.test')).length, 0, 'no opportunistic delivery to the forgeable host')
        const failed = attemptsOf('cubad.dane.test', 'failed')
        assert.equal(failed.length, 1)
        assert.equal(failed[0].result_type, 'validation-failure')
        assert.ok(stillQueued('cubad.dane.test'))
    })

    it('C16: with a secure MX RRset the next-hop domain is a reference identifier: a DANE-TA leaf naming only it is verified', () => {
        assert.equal(outcomeOf('nh.dane.test'), 'delivered')
        assert.equal(received('nh').filter((r) => r.to.includes('postmaster@nh.dane.test')).length, 1)
        assert.deepEqual(decisionHost('nh.dane.test', 'mx.nh.dane.test').reference_names, ['mx.nh.dane.test', 'nh.dane.test'])
        const verified = attemptsOf('nh.dane.test', 'verified')
        assert.equal(verified.length, 1)
        assert.equal(verified[0].matched_name, 'nh.dane.test')
    })

    it('C6, C16: with an insecure MX RRset the next-hop domain is never a reference identifier: the same leaf fails, deferred', () => {
        assert.equal(outcomeOf('nh.insecure.test'), 'deferred')
        assert.equal(received('nh').filter((r) => r.to.includes('postmaster@nh.insecure.test')).length, 0)
        const failed = attemptsOf('nh.insecure.test', 'failed')
        assert.equal(failed.length, 1)
        assert.equal(failed[0].result_type, 'certificate-host-mismatch')
        assert.match(failed[0].reason ?? '', /match none of \[mx\.nh\.dane\.test\]/)
    })

    it('C7: a bogus AAAA denial leaves the secure IPv4 answer: delivered over IPv4, verified, the failure named', () => {
        assert.equal(outcomeOf('v4.dane.test'), 'delivered')
        const got = received('v4')
        assert.equal(got.length, 1)
        assert.equal(got[0].servername, 'mx.v4.dane.test')
        const host = decisionHost('v4.dane.test', 'mx.v4.dane.test')
        assert.deepEqual(host.failed_families, ['AAAA'])
        assert.deepEqual(host.addresses, ['127.0.0.34'])
        assert.match(host.reason, /AAAA lookup for mx\.v4\.dane\.test failed \(servfail\)/)
        assert.equal(linesFor('v4.dane.test').find((l) => l.event === 'final')!.tls, 'verified')
    })

    it('C18: a 2 1 0 trust-anchor key given in DNS is reported at the depth of the certificate it signed, as OpenSSL does', () => {
        assert.equal(outcomeOf('ta210.dane.test'), 'delivered')
        const final = linesFor('ta210.dane.test').find((l) => l.event === 'final')!
        assert.equal(final.tls, 'verified')
        assert.match(final.matched ?? '', /^2 1 0 /)
        assert.equal(final.depth, 1, 'the intermediate, the highest presented certificate, which the root key signed')
    })

    for (const [label, rule, why] of [
        ['pathlen', 'path-length-exceeded', /World Sub CA at depth 1 is one CA too many/],
        ['nc', 'name-constraint-violation', /DNS:mx1\.nc\.dane\.test is outside the permitted subtrees/],
        ['eku', 'not-for-tls-server', /extendedKeyUsage .* does not include serverAuth/],
        ['crit', 'unhandled-critical-extension', /critical extension .*1\.3\.6\.1\.4\.1\.55555\.1/],
    ] as const) {
        it(`C15, C25: DANE-TA ${rule} on the first MX → refused with the certificate and rule named; the honest second MX gets exactly one copy`, () => {
            const domain = `${label}.dane.test`
            assert.equal(outcomeOf(domain), 'delivered')
            assert.equal(received(label).length, 0, 'nothing delivered to the refused host')
            const got = received('second').filter((r) => r.to.includes(`postmaster@${domain}`))
            assert.equal(got.length, 1)
            assert.ok(got[0].secure)
            assert.equal(got[0].servername, `mx2.${domain}`)
            const failed = attemptsOf(domain, 'failed')
            assert.equal(failed.length, 1)
            assert.equal(failed[0].mx_host, `mx1.${domain}`)
            assert.equal(failed[0].result_type, 'validation-failure')
            assert.match(failed[0].reason ?? '', new RegExp(`${rule}: `))
            assert.match(failed[0].reason ?? '', why)
        })
    }

    it('C15: a same-named decoy intermediate sent before the real one does not stop the path: verified at the first MX', () => {
        assert.equal(outcomeOf('decoy.dane.test'), 'delivered')
        assert.equal(received('decoy').length, 1)
        const final = linesFor('decoy.dane.test').find((l) => l.event === 'final')!
        assert.equal(final.tls, 'verified')
        assert.equal(final.depth, 2)
    })

    it('C9: wrong key on the first MX → refused there, delivered to the second MX', () => {
        assert.equal(outcomeOf('fallback.dane.test'), 'delivered')
        assert.equal(received('fallback1').length, 0, 'nothing delivered to the impostor')
        assert.equal(received('fallback2').length, 1)
        const failed = linesFor('fallback.dane.test').filter((l) => l.event === 'attempt' && l.outcome === 'failed')
        assert.equal(failed.length, 1)
        assert.equal(failed[0].mx_host, 'mx1.fallback.dane.test')
        assert.equal(failed[0].result_type, 'validation-failure')
    })

    it('C9, C20: a TLS handshake failure on a DANE host → next MX, never plaintext', () => {
        assert.equal(outcomeOf('handshake.dane.test'), 'delivered')
        assert.equal(received('handshake').length, 0)
        assert.equal(received('handshake2').length, 1)
        const conns = world.listeners.get('handshake')!.connections
        assert.ok(conns.length >= 1, 'the first MX was tried')
        const failed = linesFor('handshake.dane.test').find((l) => l.event === 'attempt' && l.outcome === 'failed')!
        assert.equal(failed.mx_host, 'mx1.handshake.dane.test')
        assert.equal(failed.result_type, 'validation-failure')
    })

    it("C10: without DANE, Haraka's own opportunistic behaviour is untouched (a TLS failure is marked and deferred)", () => {
        assert.equal(outcomeOf('broken.insecure.test'), 'deferred')
        assert.ok(world.redis.noTlsMarks().includes('127.0.0.29'))
    })

    it('C9: a 454 reply to STARTTLS on a DANE host → next MX, not a deferral of the whole message', () => {
        assert.equal(outcomeOf('tlsrefused.dane.test'), 'delivered')
        assert.equal(received('tlsrefused').length, 0, 'no envelope sent in plaintext')
        assert.ok(received('second').some((r) => r.to.includes('postmaster@tlsrefused.dane.test') && r.secure))
        const failed = linesFor('tlsrefused.dane.test').find((l) => l.event === 'attempt' && l.outcome === 'failed')!
        assert.equal(failed.mx_host, 'mx1.tlsrefused.dane.test')
        assert.equal(failed.result_type, 'starttls-not-supported')
        assert.match(failed.reason ?? '', /454/)
    })

    it('C20, C26: plaintext injected after the STARTTLS reply ends the attempt before Haraka reads it; the next MX is used', () => {
        assert.equal(outcomeOf('injected.dane.test'), 'delivered')
        assert.equal(received('injected').length, 0)
        assert.ok(received('second').some((r) => r.to.includes('postmaster@injected.dane.test') && r.secure))
        const failed = linesFor('injected.dane.test').find((l) => l.event === 'attempt' && l.outcome === 'failed')!
        assert.match(failed.reason ?? '', /sent \d+ more character\(s\) after its STARTTLS reply, before the TLS handshake \(response injection\)/)
    })

    it("C14: Haraka's own force_tls_hosts (PKIX) does not override DANE-EE on the same host", () => {
        assert.equal(outcomeOf('ee.dane.test'), 'delivered')
        assert.doesNotMatch(haraka.log(), /Host failed TLS verification required by configuration/)
    })

    it('C20: DANE failures never mark a host "no TLS" (Haraka still marks its own opportunistic failures)', () => {
        const marks = world.redis.noTlsMarks()
        // the mechanism is live: the insecure host with broken TLS was marked by Haraka itself
        assert.ok(marks.includes('127.0.0.29'), `marks: ${marks}`)
        for (const daneFailed of [
            '127.0.0.13',
            '127.0.0.15',
            '127.0.0.16',
            '127.0.0.17',
            '127.0.0.22',
            '127.0.0.24',
            '127.0.0.26',
            '127.0.0.32',
            '127.0.0.36',
            '127.0.0.37',
            '127.0.0.38',
            '127.0.0.39',
        ]) {
            assert.ok(!marks.includes(daneFailed), `${daneFailed} marked: ${marks}`)
        }
    })

    it('C20: a "no TLS" mark on a DANE host does not stop STARTTLS there: delivered verified', () => {
        assert.equal(outcomeOf('ta.dane.test'), 'delivered')
        assert.ok(received('ta')[0].secure)
    })

    it('C9: STARTTLS not offered on a DANE host → nothing sent there, deferred', () => {
        assert.equal(outcomeOf('nostarttls.dane.test'), 'deferred')
        assert.equal(received('nostarttls').length, 0)
        assert.ok(world.listeners.get('nostarttls')!.connections.length >= 1, 'it was connected to')
        const failed = linesFor('nostarttls.dane.test').find((l) => l.event === 'attempt' && l.outcome === 'failed')!
        assert.equal(failed.result_type, 'starttls-not-supported')
        assert.ok(
            haraka.queuedIds().some((id) => id.startsWith(queueIds.get('nostarttls.dane.test')!)),
            'still queued',
        )
    })

    it('C11: TLSA SERVFAIL on every host → deferred without connecting', () => {
        assert.equal(outcomeOf('servfail.dane.test'), 'deferred')
        assert.equal(world.listeners.get('servfail')!.connections.length, 0)
        const skipped = linesFor('servfail.dane.test').find((l) => l.event === 'attempt')!
        assert.equal(skipped.outcome, 'skipped')
        assert.equal(skipped.result_type, 'dnssec-invalid')
        const final = linesFor('servfail.dane.test').find((l) => l.event === 'final')!
        assert.equal(final.outcome, 'deferred')
    })

    it("C4: a bogus MX RRset defers and never falls back to the domain's addresses", () => {
        assert.equal(outcomeOf('bogusmx.dane.test'), 'deferred')
        const d = linesFor('bogusmx.dane.test').find((l) => l.event === 'decision')!
        assert.equal(d.action, 'defer')
    })

    it('C5: a null MX bounces', () => {
        assert.equal(outcomeOf('nullmx.dane.test'), 'bounce')
    })

    it('C10: an insecure domain is delivered with opportunistic TLS', () => {
        assert.equal(outcomeOf('insecure.test'), 'delivered')
        const got = received('insecure')
        assert.equal(got.length, 1)
        assert.ok(got[0].secure)
        const final = linesFor('insecure.test').find((l) => l.event === 'final')!
        assert.equal(final.tls, 'opportunistic-tls')
    })

    it('C12: only unusable TLSA records → delivered over TLS without authentication', () => {
        assert.equal(outcomeOf('unusable.dane.test'), 'delivered')
        const got = received('unusable')
        assert.equal(got.length, 1)
        assert.ok(got[0].secure, 'TLS was mandatory')
        const final = linesFor('unusable.dane.test').find((l) => l.event === 'final')!
        assert.equal(final.tls, 'unauthenticated-tls')
    })

    it('C24: every attempt and final outcome is one JSON line with the queue id', () => {
        for (const s of world.scenarios) {
            const lines = linesFor(s.domain)
            assert.ok(
                lines.some((l) => l.event === 'decision'),
                `${s.domain}: decision line`,
            )
            assert.ok(
                lines.some((l) => l.event === 'final'),
                `${s.domain}: final line`,
            )
            for (const l of lines) assert.ok(l.queue_id && queueIds.get(s.domain)!.startsWith(l.queue_id.split('.')[0]), `${s.domain}: queue id on ${l.event}`)
        }
    })

    it('C9, C20: every MX wrong → deferred and still queued; after the zone is fixed, delivered exactly once', async () => {
        const qid = queueIds.get('allbad.dane.test')!
        assert.equal(outcomeOf('allbad.dane.test'), 'deferred')
        assert.equal(received('allbad1').length + received('allbad2').length, 0)
        assert.ok(
            haraka.queuedIds().some((id) => id.startsWith(qid)),
            'message is still in the queue',
        )
        const attempts = linesFor('allbad.dane.test').filter((l) => l.event === 'attempt' && l.outcome === 'failed')
        assert.deepEqual(attempts.map((a) => a.mx_host).sort(), ['mx1.allbad.dane.test', 'mx2.allbad.dane.test'])

        await world.dns.updateZone(world.zone(allbadFixed(world.certs)))
        await new Promise((r) => setTimeout(r, 1100)) // the plugin's own cache: the TLSA TTL is 1 s
        const before = haraka.events().length
        haraka.flushQueue()
        const ev = await haraka.waitFor(qid, ['delivered', 'deferred', 'bounce'], 30000, before)
        assert.equal(ev.event, 'delivered')
        await new Promise((r) => setTimeout(r, 500))
        assert.equal(received('allbad1').length + received('allbad2').length, 1, 'delivered once')
        assert.ok(!haraka.queuedIds().some((id) => id.startsWith(qid)), 'no longer queued')
    })
})
