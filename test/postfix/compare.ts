// Ask Postfix, the reference DANE implementation, what it does in each
// situation of ./scenarios.ts, against a real signed DNS world on loopback
// (nsd 127.0.5.52 + validating unbound 127.0.5.53, ../world/dns.ts) and real
// STARTTLS listeners on 127.0.5.11 upward (../world/smtp.ts).
//
//   npm run build && node dist/test/postfix/compare.js
//   PFX_ONLY=s01,s06 node dist/test/postfix/compare.js     (a subset)
//   PFX_FINGER=all ...                                    (posttls-finger for every scenario, not only those marked)
//
// Needs root, the Debian packages nsd, unbound, ldnsutils and postfix (not
// started by its package), and util-linux's unshare/nsenter. Prints one line
// per scenario with Postfix's outcome and the expectation, then the key Postfix
// log lines per scenario. Full logs stay in /tmp/pfx-postfix (maillog, and
// scenario-<id>.log). Everything it started is stopped on exit, also on errors
// and on SIGINT/SIGTERM.
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { DnsWorld } from '../world/dns'
import { Listener } from '../world/smtp'
import { sleep } from '../world/procs'
import { PostfixInstance, Outcome } from './postfix'
import { buildScenarios, zonesFor, PostfixScenario, TlsSummary } from './scenarios'

const NSD = '127.0.5.52'
const RESOLVER = '127.0.5.53'
const BASE = process.env.PFX_BASE ?? '/tmp/pfx-postfix'
const WAIT_MS = Number(process.env.PFX_WAIT_MS ?? 90000)

interface Result {
    s: PostfixScenario
    messageId: string
    outcome: Outcome
    tls?: { summary: TlsSummary; peer: string; detail: string }
    match?: string
    sni?: string
    deliveredTo?: string
    listenerSni?: string
    lines: string[]
    finger?: string[]
}

function need(cmds: string[]): void {
    const missing = cmds.filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0)
    if (missing.length) throw new Error(`missing commands: ${missing.join(' ')} (apt-get install nsd unbound ldnsutils postfix util-linux)`)
    if (process.getuid && process.getuid() !== 0) throw new Error('must run as root (postfix, unshare)')
}

/** drill -D @resolver name type → "NOERROR ad TLSA×40 RRSIG×1" */
function probe(name: string, type: string): string {
    const r = spawnSync('drill', ['-D', `@${RESOLVER}`, name, type], { encoding: 'utf8', timeout: 20000 })
    const out = r.stdout ?? ''
    const rcode = /rcode: (\w+)/.exec(out)?.[1] ?? `drill failed: ${(r.stderr ?? '').trim()}`
    const flags = /;; flags: ([^;]*);/.exec(out)?.[1].trim().split(/\s+/) ?? []
    const ans = out.split(';; ANSWER SECTION:')[1]?.split(/\n\s*\n|;; AUTHORITY/)[0] ?? ''
    const counts = new Map<string, number>()
    for (const l of ans.split('\n')) {
        const f = l.trim().split(/\s+/)
        if (f.length > 4 && !l.startsWith(';')) counts.set(f[3], (counts.get(f[3]) ?? 0) + 1)
    }
    const answer = [...counts].map(([t, n]) => (n > 1 ? `${t}x${n}` : t)).join(' ') || 'no answer'
    const size = /MSG SIZE\s+rcvd: (\d+)/.exec(out)?.[1]
    return `${rcode} ${flags.includes('ad') ? 'AD(secure)' : 'no-AD'} ${answer}${size ? ` (${size} bytes)` : ''}`
}

const KEY_LINE =
    /status=|TLS connection established|Matched|matched peername|SNI hostname|depth=\d+ verify=|warning|certificate verification|TLSA|DNSSEC|\binsecure\b|[Tt]rust anchor|Server certificate|refused|lost connection|conversation|No route|Network is unreachable|connect to|dns_query: |^lookup \S+ type|pref +\d+ host|smtp_connect_addr: trying|dane|non DNSSEC/
const NOISE = /^SSL_connect:|TLS cipher list|^initializing|dns_get_answer/

/** The key lines of a log excerpt, without timestamps; long runs of TLSA records shortened. */
function keyLines(lines: string[], finger = false): string[] {
    const out: string[] = []
    let tlsaRun = 0
    for (const raw of lines) {
        const l = finger ? raw : strip(raw)
        const text = finger ? l.replace(/^posttls-finger: /, '') : l.replace(/^\S+?\[\d+\]: /, '')
        if (!KEY_LINE.test(text) || NOISE.test(text)) continue
        if (/DNSSEC-signed TLSA record|TLSA RR:/.test(text)) {
            tlsaRun++
            if (tlsaRun === 4) out.push('   ... (more TLSA records, see the scenario log)')
            if (tlsaRun >= 4) continue
        } else tlsaRun = 0
        out.push(l)
    }
    return out
}

function analyse(s: PostfixScenario, messageId: string, pf: PostfixInstance, listeners: Map<string, Listener>, all: string[]): Result {
    const qid = pf.queueIdOf(messageId, all)
    const outcome: Outcome = qid ? pf.outcomeOf(qid, all) : {}
    const tag = `postfix/${s.id}/`
    const lines = all.filter((l) => l.includes(` ${tag}`) || (qid !== undefined && l.includes(` ${qid}: `)))
    // the first delivery attempt only: stop at the first status= of our queue id
    const first: string[] = []
    for (const l of lines) {
        first.push(l)
        if (qid && l.includes(` ${qid}: to=<`) && l.includes('status=')) break
    }
    const r: Result = { s, messageId, outcome, lines: first }
    // the last TLS session before the status line is the one that delivered (or the last one tried)
    for (const l of first) {
        const t = /(Verified|Trusted|Untrusted|Anonymous) TLS connection established to (\S+?): (.*)$/.exec(l)
        if (t) r.tls = { summary: t[1] as TlsSummary, peer: t[2], detail: t[3] }
        const m = /: Matched (.*)$/.exec(l)
        if (m) r.match = m[1].replace(/([0-9a-f]{16})[0-9a-f]{16,}/, '$1…')
        const n = /SNI hostname: (\S+)/.exec(l)
        if (n) r.sni = n[1]
    }
    const rcpt = `user@${s.domain}`
    for (const spec of s.listeners) {
        const l = listeners.get(spec.address)!
        const got = l.received.find((m) => m.to.includes(rcpt))
        if (got && !r.deliveredTo) {
            r.deliveredTo = spec.address
            r.listenerSni = got.servername
        }
        if (!r.listenerSni && l.sniSeen.length) r.listenerSni = l.sniSeen[l.sniSeen.length - 1]
    }
    return r
}

function postfixOutcome(r: Result): string {
    const o = r.outcome
    if (!o.status) return r.outcome.queueId ? 'no outcome yet' : 'message not seen by cleanup'
    const parts = [o.status === 'sent' ? `delivered -> ${r.deliveredTo ?? '(no listener recorded it!)'}` : o.status]
    parts.push(r.tls ? `TLS=${r.tls.summary}` : 'TLS=none')
    parts.push(`SNI=${r.listenerSni ?? '-'}`)
    if (r.match) parts.push(`match: ${r.match.replace(/: (\d \d \d) .*$/, ' ($1)')}`)
    return parts.join(' ')
}

function expectation(s: PostfixScenario): string {
    const e = s.expect
    const parts: string[] = [e.outcome === 'delivered' ? `delivered -> ${e.listener ?? 'any'}` : e.outcome]
    if (e.tls) parts.push(`TLS=${e.tls}`)
    if (e.sni) parts.push(`SNI=${e.sni}`)
    return parts.join(' ')
}

function differences(r: Result): string[] {
    const e = r.s.expect
    const d: string[] = []
    const got = r.outcome.status === 'sent' ? 'delivered' : r.outcome.status === 'expired' ? 'bounced' : r.outcome.status
    if (got !== e.outcome) d.push(`outcome ${got ?? 'none'} (expected ${e.outcome})`)
    if (e.outcome === 'delivered' && got === 'delivered') {
        if (e.listener && r.deliveredTo !== e.listener) d.push(`listener ${r.deliveredTo} (expected ${e.listener})`)
        if (e.tls && r.tls?.summary !== e.tls) d.push(`TLS ${r.tls?.summary ?? 'none'} (expected ${e.tls})`)
        if (e.sni && r.listenerSni !== e.sni) d.push(`SNI ${r.listenerSni ?? 'none'} (expected ${e.sni})`)
    }
    return d
}

function strip(l: string): string {
    // "Nov 24 10:41:31 pfx-client postfix/s01/smtp[123]: text" (or an ISO timestamp) → "postfix/s01/smtp[123]: text"
    return l.replace(/^(?:\w{3} +\d+ [\d:]+|\S+) \S+ /, '')
}

async function main(): Promise<number> {
    need(['nsd', 'unbound', 'ldns-signzone', 'drill', 'postfix', 'sendmail', 'posttls-finger', 'unshare', 'nsenter'])
    const only = (process.env.PFX_ONLY ?? '').split(',').filter(Boolean)
    const fingerAll = process.env.PFX_FINGER === 'all'
    const scenarios = buildScenarios(only)
    const t0 = Date.now()

    const dns = new DnsWorld({ nsdAddress: NSD, resolverAddress: RESOLVER })
    const listeners = new Map<string, Listener>()
    const pf = new PostfixInstance({
        base: BASE,
        resolver: RESOLVER,
        transports: scenarios.map((s) => ({ name: s.id, domains: [s.domain], overrides: s.postfix?.overrides, args: s.postfix?.args })),
    })

    let cleaned = false
    const cleanup = async () => {
        if (cleaned) return
        cleaned = true
        const errors: string[] = []
        await pf.stop().catch((e: Error) => errors.push(e.message))
        for (const l of listeners.values()) await l.stop().catch((e: Error) => errors.push(e.message))
        await dns.stop().catch((e: Error) => errors.push(e.message))
        if (errors.length) console.error(`cleanup: ${errors.join('; ')}`)
    }
    const onSignal = (sig: string) => {
        console.error(`${sig}: stopping`)
        void cleanup().finally(() => process.exit(130))
    }
    process.once('SIGINT', () => onSignal('SIGINT'))
    process.once('SIGTERM', () => onSignal('SIGTERM'))

    try {
        await pf.prepare() // also stops a Postfix a previous, interrupted run left
        await dns.start(zonesFor(scenarios))
        console.log(`# DNS world: nsd ${NSD}, unbound ${RESOLVER} (validating, trust anchor for test.), zones s.test (signed), u.test (unsigned)`)
        for (const s of scenarios)
            for (const [name, type] of s.probes ?? []) console.log(`# probe ${s.id}: drill -D @${RESOLVER} ${name} ${type} -> ${probe(name, type)}`)

        for (const s of scenarios) {
            for (const spec of s.listeners) {
                if (listeners.has(spec.address)) throw new Error(`${s.id}: listener ${spec.address} used twice`)
                const l = new Listener({
                    address: spec.address,
                    certChainPem: spec.chain.map((c) => c.pem).join(''),
                    keyPem: (spec.key ?? spec.chain[0]).keyPem,
                    ...spec.options,
                })
                listeners.set(spec.address, l)
                await l.start()
            }
        }

        await pf.start()
        const version = spawnSync('postconf', ['-d', '-h', 'mail_version'], { encoding: 'utf8' }).stdout.trim()
        const ns = pf.inNamespace('cat', ['/etc/resolv.conf']).out.trim().replace(/\n/g, '; ')
        const soa = pf.inNamespace('drill', ['-D', 's.test', 'SOA']).out
        const soaRcode = /rcode: (\w+)/.exec(soa)?.[1]
        const soaAd = /;; flags: [^;]*\bad\b/.test(soa)
        console.log(`# Postfix ${version}, master pid ${pf.masterPid()}, config ${pf.etc}, log ${pf.maillog}`)
        console.log(`# Postfix's mount namespace: /etc/resolv.conf = "${ns}"; drill s.test SOA through it: ${soaRcode} ${soaAd ? 'AD' : 'no-AD'}`)

        const ids = new Map<string, string>()
        for (const s of scenarios) {
            const mid = `${s.id}.${Date.now()}@pfx-harness.invalid`
            ids.set(s.id, mid)
            pf.send(`user@${s.domain}`, mid, `${s.id} ${s.domain}`)
        }

        // wait until each message has a first delivery result
        const deadline = Date.now() + WAIT_MS
        let results: Result[] = []
        for (;;) {
            const all = pf.log()
            results = scenarios.map((s) => analyse(s, ids.get(s.id)!, pf, listeners, all))
            if (results.every((r) => r.outcome.status) || Date.now() > deadline) break
            await sleep(250)
        }
        await sleep(300) // let listeners finish recording the last messages
        const all = pf.log()
        results = scenarios.map((s) => analyse(s, ids.get(s.id)!, pf, listeners, all))

        for (const r of results) {
            if (!(r.s.finger || fingerAll)) continue
            const f = await pf.inNamespaceAsync(
                'posttls-finger',
                ['-c', '-t', '10', '-T', '30', '-l', 'dane', '-L', 'summary,certmatch,verbose,debug', r.s.domain],
                90000,
            )
            r.finger = f.out.split('\n').filter(Boolean)
        }

        for (const r of results) fs.writeFileSync(path.join(pf.base, `scenario-${r.s.id}.log`), r.lines.join('\n') + '\n')

        // ---- report ------------------------------------------------------------
        console.log('')
        console.log(`# One line per scenario: id domain | Postfix's first delivery attempt | expected | verdict`)
        let differ = 0
        for (const r of results) {
            const d = differences(r)
            if (d.length) differ++
            console.log(
                `${r.s.id.padEnd(5)} ${r.s.domain.padEnd(20)} | postfix: ${postfixOutcome(r)} | expected: ${expectation(r.s)} | ${d.length ? `DIFFERS: ${d.join('; ')}` : 'as expected'}`,
            )
        }
        console.log('')
        for (const r of results) {
            console.log(`== ${r.s.id} ${r.s.domain}: ${r.s.title}${r.s.note ? ` [${r.s.note}]` : ''}`)
            if (r.outcome.reason) console.log(`   reason: ${r.outcome.status} (${r.outcome.reason}) dsn=${r.outcome.dsn} relay=${r.outcome.relay}`)
            if (r.tls) console.log(`   tls:    ${r.tls.summary} TLS connection established to ${r.tls.peer}: ${r.tls.detail}`)
            if (r.match) console.log(`   match:  ${r.match}`)
            if (r.sni || r.listenerSni) console.log(`   sni:    postfix sent ${r.sni ?? '(not logged)'}; listener saw ${r.listenerSni ?? '(nothing)'}`)
            for (const l of keyLines(r.lines)) console.log(`   | ${l}`)
            if (r.finger) for (const l of keyLines(r.finger, true)) console.log(`   finger| ${l}`)
        }
        console.log('')
        const missing = results.filter((r) => !r.outcome.status).map((r) => r.s.id)
        console.log(
            `# ${results.length} scenarios, ${results.length - differ} as expected, ${differ} differ${missing.length ? `, NO OUTCOME for ${missing.join(' ')}` : ''}; ` +
                `${((Date.now() - t0) / 1000).toFixed(1)} s (full logs: ${pf.base}/maillog, ${pf.base}/scenario-<id>.log)`,
        )
        // differing from an expectation is a finding, not a failure; a scenario without any outcome is
        return missing.length ? 2 : 0
    } finally {
        await cleanup()
    }
}

main().then(
    (code) => process.exit(code),
    (e: Error) => {
        console.error(`compare: ${e.stack ?? e.message}`)
        process.exit(1)
    },
)
