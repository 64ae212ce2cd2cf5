// Issue 10: hostile receivers against a real Haraka with the plugin. Each hostile first MX is
// followed by an honest second MX; the first must fail with the right reason, the second must
// get exactly one intact copy (the body's hash), and nothing may bounce (C26, C27, C24).
// This world has its own addresses: DNS on 127.0.2.52/53, receivers on 127.0.2.11 upward.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { DnsWorld } from '../world/dns'
import { makeCertificate, tlsaText } from '../world/certs'
import { Listener, Script } from '../world/smtp'
import { Haraka } from '../world/haraka'
import { readDaneLog, DaneLogLine } from '../world/dane-log'

const HONEST = '127.0.2.30'
const HONEST_PLAIN = '127.0.2.31'

interface Hostile {
    label: string
    title: string
    script: Script
    /** the attempt at the first MX: its reason and RFC 8460 result type */
    reason: RegExp
    resultType?: string
    /** no DANE for this domain: an unsigned zone, opportunistic TLS at both MX hosts */
    insecure?: boolean
    body?: string
}

// a 400 KB body of 76-character lines (no line starts with a dot)
const BIG = Array.from({ length: 5400 }, (_, i) => `${String(i).padStart(6, '0')} ${'abcdefghij'.repeat(7).slice(0, 68)}\r\n`).join('')

const hostile: Hostile[] = [
    {
        label: 'baregreeting',
        title: 'C27: a bare "220" greeting before TLS ends the attempt (next MX), never a bounce',
        script: { greeting: '220\r\n', after: 'tls' },
        reason: /answered the connection with a bare reply code "220" before TLS/,
    },
    {
        label: 'bareehlo',
        title: 'C27: a bare "250" as the last EHLO line before TLS ends the attempt (next MX), never a bounce',
        script: { ehlo: '250-mx\r\n250-STARTTLS\r\n250\r\n', after: 'tls' },
        reason: /answered EHLO with a bare reply code "250" before TLS/,
    },
    {
        label: 'barestarttls',
        title: 'C27: a bare "220" answer to STARTTLS ends the attempt (next MX), starttls-not-supported',
        script: { starttls: '220\r\n', after: 'tls' },
        reason: /answered STARTTLS with a bare reply code "220" before TLS/,
        resultType: 'starttls-not-supported',
    },
    {
        label: 'fragment',
        title: 'C26: a reply fragment after the STARTTLS reply ("220 go" CRLF "250 ") ends the attempt; a 400 KB body arrives once, intact, at the next MX',
        script: { starttls: '220 go\r\n250 ', after: 'tls' },
        reason: /sent 4 more character\(s\) after its STARTTLS reply, before the TLS handshake \(response injection\)/,
        resultType: 'validation-failure',
        body: BIG,
    },
    {
        label: 'injectline',
        title: 'C26: a whole reply line injected after the STARTTLS reply ends the attempt before Haraka reads it',
        script: { starttls: '220 go\r\n250 2.1.0 injected\r\n', after: 'tls' },
        reason: /more character\(s\) after its STARTTLS reply/,
        resultType: 'validation-failure',
    },
    {
        label: 'stall',
        title: 'C24: a receiver that stalls mid-handshake is logged as a timeout during the TLS handshake (validation-failure), next MX',
        script: { after: 'stall' },
        reason: /timed out during the TLS handshake/,
        resultType: 'validation-failure',
    },
    {
        label: 'oppfragment',
        title: 'C26: on an opportunistic host too, a fragment after the STARTTLS reply ends the attempt; the next MX gets one intact copy',
        script: { starttls: '220 go\r\n250 ', after: 'tls' },
        reason: /more character\(s\) after its STARTTLS reply/,
        resultType: 'validation-failure',
        insecure: true,
        body: BIG,
    },
]

function sha256(s: string): string {
    return createHash('sha256').update(s).digest('hex')
}

/** the body of a received message: what follows the header block, CRLF line ends */
function bodyOf(message: string): string {
    const at = message.indexOf('\r\n\r\n')
    return at < 0 ? '' : message.slice(at + 4)
}

describe('the STARTTLS session guard against hostile receivers (real Haraka)', function () {
    this.timeout(120000)
    const dns = new DnsWorld({ nsdAddress: '127.0.2.52', resolverAddress: '127.0.2.53' })
    const honestCert = makeCertificate({ cn: 'honest' })
    const hostileCert = makeCertificate({ cn: 'hostile' })
    const listeners = new Map<string, Listener>()
    const honest = new Listener({ address: HONEST, certChainPem: honestCert.pem, keyPem: honestCert.keyPem })
    const honestPlain = new Listener({ address: HONEST_PLAIN, certChainPem: honestCert.pem, keyPem: honestCert.keyPem })
    let haraka: Haraka
    let daneLog: string
    const ids = new Map<string, string>()
    const bodies = new Map<string, string>()

    before(async () => {
        const signed: string[] = []
        const unsigned: string[] = []
        hostile.forEach((h, i) => {
            const address = `127.0.2.${11 + i}`
            listeners.set(h.label, new Listener({ address, certChainPem: hostileCert.pem, keyPem: hostileCert.keyPem, script: h.script }))
            const zone = h.insecure ? unsigned : signed
            zone.push(`${h.label} MX 10 mx1.${h.label}`, `mx1.${h.label} A ${address}`, `${h.label} MX 20 mx2.${h.label}`)
            if (h.insecure) {
                zone.push(`mx2.${h.label} A ${HONEST_PLAIN}`)
            } else {
                zone.push(
                    `_25._tcp.mx1.${h.label} TLSA ${tlsaText(hostileCert, 3, 1, 1)}`,
                    `mx2.${h.label} A ${HONEST}`,
                    `_25._tcp.mx2.${h.label} TLSA ${tlsaText(honestCert, 3, 1, 1)}`,
                )
            }
        })
        await dns.start([
            { name: 'guard.test', signing: 'signed', records: signed },
            { name: 'plainguard.test', signing: 'unsigned', records: unsigned },
        ])
        for (const l of [...listeners.values(), honest, honestPlain]) await l.start()
        haraka = new Haraka({ withDane: true })
        daneLog = path.join(haraka.dir, 'dane.jsonl')
        haraka.writeConfigFile(
            'dane.ini',
            `[resolver]\naddress=${dns.resolverAddress}\nport=${dns.port}\ntimeout_ms=1000\nretries=1\n[log]\ndestination=${daneLog}\n`,
        )
        await haraka.start()
        for (const h of hostile) {
            const domain = `${h.label}.${h.insecure ? 'plainguard' : 'guard'}.test`
            const body = h.body ?? `one message for ${domain}\r\n`
            bodies.set(h.label, body)
            ids.set(h.label, await haraka.send(`postmaster@${domain}`, { subject: h.label, body }))
        }
        await Promise.all([...ids.values()].map((id) => haraka.waitFor(id, ['delivered', 'deferred', 'bounce'], 60000)))
    })

    after(async () => {
        await haraka?.stop()
        for (const l of [...listeners.values(), honest, honestPlain]) await l.stop()
        await dns.stop()
        haraka?.cleanup()
    })

    for (const h of hostile) {
        it(h.title, () => {
            const domain = `${h.label}.${h.insecure ? 'plainguard' : 'guard'}.test`
            const ev = haraka.events().filter((e) => e.queue_id.startsWith(ids.get(h.label)!))
            assert.deepEqual(
                ev.map((e) => e.event),
                ['delivered'],
                `outcome of ${domain}: ${JSON.stringify(ev)}`,
            )
            assert.equal(listeners.get(h.label)!.received.length, 0, 'nothing delivered to the hostile receiver')
            const at = (h.insecure ? honestPlain : honest).received.filter((r) => r.to.includes(`postmaster@${domain}`))
            assert.equal(at.length, 1, 'exactly one copy at the honest second MX')
            assert.equal(sha256(bodyOf(at[0].body)), sha256(bodies.get(h.label)!), 'the body arrived intact')
            const lines: DaneLogLine[] = readDaneLog(daneLog).filter((l) => l.domain === domain && l.event === 'attempt' && l.outcome === 'failed')
            assert.equal(lines.length, 1, JSON.stringify(lines))
            assert.equal(lines[0].mx_host, `mx1.${domain}`)
            assert.match(lines[0].reason ?? '', h.reason)
            assert.equal(lines[0].result_type, h.resultType)
        })
    }

    it('C26, C27: no message bounced, and Haraka never saw an unrecognised reply', () => {
        assert.ok(!haraka.events().some((e) => e.event === 'bounce'))
        assert.doesNotMatch(haraka.log(), /Unrecognized response from upstream server/)
    })
})
