#!/usr/bin/env node
// haraka-dane: check a domain's DANE for SMTP the way the plugin enforces it,
// print TLSA records for a certificate, and check a key rollover before it
// happens. Argument parsing and output only: the DNS decision is lib/policy.ts,
// the live probe lib/probe.ts, the verdicts lib/check.ts.
//
// Exit codes (Nagios plugin conventions): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
// (bad usage, unreadable input, resolver unreachable).
import fs from 'node:fs'
import net from 'node:net'
import { X509Certificate } from 'node:crypto'
import { parseArgs } from 'node:util'
import path from 'node:path'
import { buildConfig, DEFAULTS, formatErrors, resolverSettingsOrThrow, type DaneConfig } from '../lib/config'
import { openStore } from '../lib/tlsrpt/open-store'
import { renderReporting, stsShown, tlsrptShown, type StsShown, type TlsrptShown } from '../lib/check-reporting'
import { FileStsStore, StsPolicies, type StsOutcome, type StsStore } from '../lib/mtasts/service'
import { RedisStsStore } from '../lib/mtasts/redis-store'
import { policyHostAddresses } from '../lib/mtasts/open'
import { applySts, stsAsked } from '../lib/mtasts/apply'
import { stsRecordName } from '../lib/mtasts/policy'
import type { TlsrptStore } from '../lib/tlsrpt/store'
import { dayRange, reportFilename, reportOfTallies, utcDay } from '../lib/tlsrpt/report'
import { tlsrptRecordName } from '../lib/tlsrpt/policy-record'
import type { DomainOutcome } from '../lib/tlsrpt/send'
import { sendNowFile } from '../lib/tlsrpt/scheduler'
import { decide, type Decision, type HostDecision, serverName, tlsaQueryName } from '../lib/policy'
import { probe, type CertType, type ProbeResult } from '../lib/probe'
import { normalizeName } from '../lib/dns/wire'
import { Resolver, ResolverConfigError, type Answer, type RRType } from '../lib/resolver'
import { tlsaFromText, unusableReason, type TlsaRecord } from '../lib/tlsa'
import { associationData, parseChain, rfc8460ResultType, type VerifyResult } from '../lib/verify'
import { checkVerdict, renderCheck, rolloverVerdict, EXIT_CODE, type CheckReport, type RolloverReport } from '../lib/check'

const PROG = 'haraka-dane'
const UNKNOWN = EXIT_CODE.UNKNOWN

const USAGE_MAIN = `Usage: ${PROG} <command> [options]

Commands:
  check <domain>                 decide DANE for the domain's MX hosts and probe them live (Nagios exit codes)
  tlsa <cert.pem|chain.pem>      print TLSA records for a certificate or chain
  rollover <domain> --next PEM   confirm the published TLSA records already match a new certificate
  tlsrpt show|send               print the TLS reports (RFC 8460) a day's results make and where they would go;
                                 have the running Haraka send a past day's reports now

Run '${PROG} <command> --help' for a command's options.
Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad usage, unreadable input, resolver unreachable).
`

const RESOLVER_HELP = `  --resolver ADDR[:PORT]  validating resolver to ask (default ${DEFAULTS.resolver.address}:${DEFAULTS.resolver.port}); [v6addr]:port for IPv6.
                          Only a loopback resolver's AD bit is trusted (RFC 7672 2.1)
  --trust-resolver        accept a non-loopback resolver: you assert the path to it is secured
  --timeout MS            timeout per DNS attempt and per SMTP step (default 5000)
  -q, --quiet             no progress messages on stderr`

const USAGE_CHECK = `Usage: ${PROG} check <domain> [--json] [--resolver ADDR[:PORT]] [--trust-resolver] [--timeout MS] [--ehlo NAME]
                   [-4|-6] [--days N] [--selftest NAME] [--sts-ca FILE] [--haraka DIR] [-q]

Runs the plugin's DANE decision (RFC 7672) for <domain>, prints it for every MX host,
then probes every address (A and AAAA) of each host that would be used: EHLO, STARTTLS,
the TLS handshake (SNI = TLSA base domain for DANE hosts), and DANE verification of the
presented chain. A DANE host is probed twice, offering only ECDSA and then only RSA
signature algorithms: each certificate type it serves must match its TLSA records.

  --json                  print one JSON object (decision, probes, verdict, dnssec, reporting, exitCode)
${RESOLVER_HELP}
  --ehlo NAME             EHLO name to send (default: this host's name)
  -4, --ipv4-only         probe only IPv4 addresses
  -6, --ipv6-only         probe only IPv6 addresses
  --days N                look N days ahead (default 14; 0: off): a DANE-TA chain that would no longer
                          verify, or a certificate whose dates matter (below a DANE-TA anchor, or PKIX for
                          MTA-STS) that expires within N days, is a WARNING
  --selftest NAME         the resolver self-test: NAME A must come back with AD set (default ".", the
                          root; "" to skip); a resolver that does not validate is CRITICAL
  --sts-ca FILE           CA certificates (PEM) for MTA-STS (policy host, MX hosts) instead of
                          node's store (default: the ca_file of --haraka's [mtasts])
  --haraka DIR            also show the MTA-STS policy that Haraka in DIR keeps for <domain>

DNSSEC: the AD bit of every answer the decision used is shown; for each host whose TLSA
answer was a secure denial, A is asked at the same name, and a failure there (a broken
denial of existence) is a WARNING.

MTA-STS (RFC 8461) is applied as the plugin applies it, with the policy published now, to
the MX hosts without DANE: under enforce a host the policy does not name is skipped, and
each other host must present a certificate PKIX-valid for its name (CRITICAL if not); under
testing a certificate that is not is a WARNING. Then the domain's TLSRPT record (RFC 8460:
where its reports go) and the MTA-STS policy: mode, mx patterns, which MX hosts it allows.

The first line is Nagios style, with performance data after "|": dns_ms (the decision's
lookups), handshake_ms (the slowest handshake), expiry_days (the nearest expiry that
matters; WARNING level --days).

Status:
  CRITICAL  mail would be deferred (e.g. every host's TLSA lookup fails), a DANE host fails
            verification (with either certificate type) or does not offer STARTTLS, an encrypt
            host has no working STARTTLS, an MTA-STS (enforce) host fails PKIX, the resolver
            does not validate
  WARNING   some hosts skipped, a DANE host verified by the only TLSA record published
            (no next key: the next key change breaks delivery), TLSA records all unusable
            (encrypt only), an address that cannot be reached, an expiry within --days, a
            broken denial of existence
  OK        otherwise, including domains where DANE does not apply
  UNKNOWN   bad usage, or the resolver cannot be reached
`

const USAGE_TLSA = `Usage: ${PROG} tlsa <cert.pem|chain.pem> [--host HOST] [--usage U --selector S --mtype M]

Prints TLSA records (presentation form) on stdout, one a line; which certificate each
line is for goes to stderr as a '; comment', so stdout can be pasted into a zone file.

Default: '3 1 1' for the leaf (the first certificate) and '2 1 1' for its issuer when
the file holds it.

  --host HOST             print full records: _25._tcp.HOST. IN TLSA ...
  --usage U               3 (DANE-EE): the leaf; 2 (DANE-TA): each CA certificate in the file
  --selector S            0 (whole certificate) or 1 (SubjectPublicKeyInfo, default)
  --mtype M               0 (full), 1 (SHA-256, default) or 2 (SHA-512)
  RFC 7218 names are accepted too (dane-ee, dane-ta, cert, spki, full, sha2-256, sha2-512).
`

const USAGE_TLSRPT = `Usage: ${PROG} tlsrpt show --haraka DIR [--date YYYY-MM-DD|today|yesterday] [--domain DOMAIN] [--json]
                     [--resolver ADDR[:PORT]] [--trust-resolver] [--timeout MS] [-q]
       ${PROG} tlsrpt send --haraka DIR [--date YYYY-MM-DD|yesterday] [--domain DOMAIN] [--wait SECONDS] [--json]

Builds, from the results the plugin kept ([tlsrpt] in DIR/config/dane.ini, the journal under DIR),
the RFC 8460 report of each recipient domain for one UTC day (default: yesterday, the day whose
reports go out next), looks up the domain's _smtp._tls TXT record through the validating resolver
(dane.ini's [resolver] unless --resolver is given) and prints where the report would go and the
report itself, exactly as it would be sent (before gzip).

  --haraka DIR            Haraka's directory (as in haraka -c DIR)
  --date DAY              the UTC day: YYYY-MM-DD, today or yesterday (default yesterday)
  --domain DOMAIN         one recipient domain only
  --json                  one JSON array: [{domain, destinations|not_sent, filename, report}]
${RESOLVER_HELP}

send: asks the running Haraka (the plugin, [tlsrpt] enabled=true) to send a past day's reports now rather than
at their hour, waits for it (--wait, default 90 s; it looks every [tlsrpt] check_seconds) and prints what was
sent. A report already delivered to a destination is not sent there again. Today's reports cannot be sent:
the day is not over.

Exit codes: 0 printed / sent (also when there is nothing to report), 1 some destination failed (tried again
later), 3 bad usage, unreadable configuration, or no running Haraka took the request in time.
`

const USAGE_ROLLOVER = `Usage: ${PROG} rollover <domain> --next <cert.pem|chain.pem> [--json] [--resolver ADDR[:PORT]] [--trust-resolver] [--timeout MS] [-q]

Before deploying a new certificate: checks that, for every DANE host of <domain>, the
TLSA records published now already authenticate the new chain (DANE-EE: the leaf only;
DANE-TA: the path and the host's reference names), and reports the TLSA TTL.

  --next PEM              the certificate (or chain, leaf first) to be deployed
  --json                  print one JSON object
${RESOLVER_HELP}

Exit: 0 every DANE host would authenticate the new chain; 2 one would not (the records
to publish are printed); 1 the domain has no DANE host (nothing to check); 3 bad usage.
`

class UsageError extends Error {
    /** false for errors in otherwise well-formed input (unreadable file, refused resolver): no usage text */
    constructor(
        message: string,
        readonly showUsage = true,
    ) {
        super(message)
    }
}

interface Out {
    stdout: (s: string) => void
    stderr: (s: string) => void
}

// ---------------------------------------------------------------------------
// Argument helpers
// ---------------------------------------------------------------------------

/** "127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:5353" → address and port. */
export function parseResolver(s: string): { address: string; port: number } {
    let address = s
    let port = DEFAULTS.resolver.port
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s)
    if (v6) {
        address = v6[1]
        if (v6[2] !== undefined) port = Number(v6[2])
    } else if ((s.match(/:/g) ?? []).length === 1) {
        const i = s.lastIndexOf(':')
        address = s.slice(0, i)
        const p = s.slice(i + 1)
        if (!/^\d+$/.test(p)) throw new UsageError(`--resolver: bad port in "${s}"`)
        port = Number(p)
    }
    if (net.isIP(address) === 0) throw new UsageError(`--resolver: "${address}" is not an IP address`)
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--resolver: port ${port} is not in 1..65535`)
    return { address, port }
}

function parseTimeout(v: string | undefined): number {
    if (v === undefined) return 5000
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 600000) throw new UsageError(`--timeout: "${v}" is not a number of milliseconds (1..600000)`)
    return Number(v)
}

function parseDomain(v: string | undefined, what = 'domain'): string {
    if (v === undefined) throw new UsageError(`missing <${what}>`)
    const d = v.trim().toLowerCase().replace(/\.$/, '')
    if (!/^[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?$/.test(d) || d.includes('..') || d.length > 253) throw new UsageError(`"${v}" is not a domain name`)
    return d
}

function parse<T extends Record<string, { type: 'string' | 'boolean'; short?: string }>>(
    args: string[],
    options: T,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
    try {
        const r = parseArgs({ args, options, allowPositionals: true, strict: true })
        return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals }
    } catch (e) {
        throw new UsageError((e as Error).message)
    }
}

/** parse(), with -h/--help printing `usage`: null when it did (the command is done, exit 0). */
function parseCommand<T extends Record<string, { type: 'string' | 'boolean'; short?: string }>>(
    args: string[],
    options: T,
    usage: string,
    out: Out,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } | null {
    const r = parse(args, { ...options, help: { type: 'boolean', short: 'h' } })
    if (!r.values.help) return r
    out.stdout(usage)
    return null
}

const NET_OPTIONS = {
    resolver: { type: 'string' },
    'trust-resolver': { type: 'boolean' },
    timeout: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    help: { type: 'boolean', short: 'h' },
} as const

function openResolver(values: Record<string, string | boolean | undefined>, timeoutMs: number): Resolver {
    const { address, port } = values.resolver !== undefined ? parseResolver(String(values.resolver)) : DEFAULTS.resolver
    try {
        // C1, C23: the settings go through the one check the plugin's dane.ini goes through
        return new Resolver(
            resolverSettingsOrThrow({
                address,
                port,
                timeoutMs: Math.min(timeoutMs, 60000),
                retries: DEFAULTS.resolver.retries,
                cacheSize: 1000,
                trustNonLoopback: values['trust-resolver'] === true,
            }),
        )
    } catch (e) {
        // C1: a non-loopback resolver is refused, as the plugin refuses it at start-up
        if (e instanceof ResolverConfigError)
            throw new UsageError(`${e.message}${/loopback/.test(e.message) ? ' (use --trust-resolver to override)' : ''}`, false)
        throw e
    }
}

/** decide() through the resolver, keeping every answer (the TLSA TTLs, the MX failure reason). */
async function decideRecording(domain: string, resolver: Resolver): Promise<{ decision: Decision; answers: Answer[] }> {
    const answers: Answer[] = []
    const lookup = async (name: string, type: RRType): Promise<Answer> => {
        const a = await resolver.lookup(name, type)
        answers.push(a)
        return a
    }
    const decision = await decide(domain, lookup)
    return { decision, answers }
}

// the local resolver could not be asked at all (as opposed to: it answered SERVFAIL)
function resolverUnreachable(answers: Answer[]): boolean {
    const mx = answers.find((a) => a.type === 'MX')
    return !!mx && mx.status === 'failed' && /connection refused|network error|timeout|resolver closed/.test(mx.reason ?? '')
}

/** Every CERTIFICATE block of a PEM file, in order. */
export function readPemCertificates(file: string): X509Certificate[] {
    let text: string
    try {
        text = fs.readFileSync(file, 'latin1')
    } catch (e) {
        throw new UsageError(`cannot read ${file}: ${(e as Error).message}`, false)
    }
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    if (blocks.length === 0) throw new UsageError(`${file} holds no PEM certificate`, false)
    return blocks.map((b, i) => {
        try {
            return new X509Certificate(b)
        } catch (e) {
            throw new UsageError(`${file}: certificate ${i + 1}: ${(e as Error).message}`, false)
        }
    })
}

function certName(c: X509Certificate): string {
    return c.subject.split('\n').filter(Boolean).join(', ')
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

function recordJson(r: TlsaRecord): Record<string, unknown> {
    const why = unusableReason(r)
    return { text: r.text, usage: r.usage, selector: r.selector, mtype: r.mtype, usable: why === null, ...(why ? { unusable: why } : {}) }
}

function hostJson(h: HostDecision): Record<string, unknown> {
    return { ...h, tlsa: { ...h.tlsa, records: h.tlsa.records.map(recordJson) } }
}

function verifyJson(v: VerifyResult | undefined): Record<string, unknown> | undefined {
    if (!v) return undefined
    return {
        authenticated: v.authenticated,
        usable: v.usable,
        ...(v.match ? { match: { record: v.match.record.text, depth: v.match.depth, anchor: v.match.anchor } } : {}),
        ...(v.matchedName ? { matchedName: v.matchedName } : {}),
        ...(v.failure ? { failure: { ...v.failure, resultType: rfc8460ResultType(v.failure.code) } } : {}),
    }
}

function checkJson(decision: Decision, report: CheckReport): Record<string, unknown> {
    const probes = report.hosts.flatMap((h) =>
        h.addresses.map((a) => {
            const { tls, ...p } = a.probe
            return {
                host: h.name,
                mode: h.mode,
                ...p,
                tls: tls
                    ? {
                          protocol: tls.protocol,
                          cipher: tls.cipher,
                          servername: tls.servername,
                          handshakeMs: tls.handshakeMs,
                          chain: a.chain,
                          expiresInDays: a.expiresInDays,
                          keyType: tls.keyType,
                      }
                    : undefined,
                verify: verifyJson(a.verify),
                validDays: a.validDays,
                matchingRecords: a.matching,
                status: a.status,
                problems: a.problems,
                notes: a.notes,
            }
        }),
    )
    return {
        domain: report.domain,
        decision: { ...decision, hosts: decision.hosts.map(hostJson) },
        probes,
        verdict: {
            status: report.status,
            summary: report.summary,
            problems: report.problems,
            hosts: report.hosts.map((h) => ({ name: h.name, mode: h.mode, status: h.status, problems: h.problems, notes: h.notes })),
            perfdata: report.perfdata,
        },
        exitCode: report.exitCode,
    }
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/** The start of both network commands: options, --help (null: help was printed), exactly one <domain>. */
function parseDomainCommand(
    args: string[],
    extra: Record<string, { type: 'string' | 'boolean'; short?: string }>,
    usage: string,
    out: Out,
): { values: Record<string, string | boolean | undefined>; domain: string } | null {
    const { values, positionals } = parse(args, { ...NET_OPTIONS, ...extra })
    if (values.help) {
        out.stdout(usage)
        return null
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length ? `unexpected argument "${positionals[1]}"` : 'missing <domain>')
    return { values, domain: parseDomain(positionals[0]) }
}

/** The plugin's decision for `domain` through the resolver the options name, with progress on stderr. */
async function decideWithProgress(
    domain: string,
    values: Record<string, string | boolean | undefined>,
    timeoutMs: number,
    out: Out,
): Promise<{ decision: Decision; answers: Answer[]; progress: (s: string) => void }> {
    const progress = (s: string): void => {
        if (!values.quiet) out.stderr(`${PROG}: ${s}\n`)
    }
    const resolver = openResolver(values, timeoutMs)
    try {
        progress(`deciding DANE for ${domain} via ${values.resolver ?? `${DEFAULTS.resolver.address}:${DEFAULTS.resolver.port}`}`)
        return { ...(await decideRecording(domain, resolver)), progress }
    } finally {
        resolver.close()
    }
}

async function cmdCheck(args: string[], out: Out): Promise<number> {
    const cmd = parseDomainCommand(
        args,
        {
            ehlo: { type: 'string' },
            'sts-ca': { type: 'string' },
            haraka: { type: 'string' },
            'ipv4-only': { type: 'boolean', short: '4' },
            'ipv6-only': { type: 'boolean', short: '6' },
            days: { type: 'string' },
            selftest: { type: 'string' },
        },
        USAGE_CHECK,
        out,
    )
    if (!cmd) return 0
    const { values, domain } = cmd
    const timeoutMs = parseTimeout(values.timeout as string | undefined)
    if (values['ipv4-only'] && values['ipv6-only']) throw new UsageError('-4 and -6 exclude each other')
    const family = values['ipv4-only'] ? 4 : values['ipv6-only'] ? 6 : undefined
    const days = values.days === undefined ? DEFAULT_DAYS : /^\d{1,4}$/.test(String(values.days)) ? Number(values.days) : NaN
    if (!Number.isInteger(days) || days > 3650) throw new UsageError(`--days: "${values.days}" is not a whole number of days (0..3650)`)
    const selfTestName = values.selftest === undefined ? '.' : String(values.selftest)
    if (selfTestName && normalizeName(selfTestName) === null) throw new UsageError(`--selftest: "${selfTestName}" is not a domain name ("." for the root)`)
    const ehloName = values.ehlo !== undefined ? String(values.ehlo) : undefined
    if (ehloName !== undefined && !/^[\x21-\x7e]+$/.test(ehloName)) throw new UsageError('--ehlo: not a host name')
    // read first: a bad path is a usage error before anything is probed
    const haraka = typeof values.haraka === 'string' ? harakaSetup(values.haraka) : undefined
    const caFile =
        values['sts-ca'] !== undefined ? String(values['sts-ca']) : haraka?.cfg.mtasts.caFile && path.resolve(haraka.harakaDir, haraka.cfg.mtasts.caFile)
    let stsCa: Buffer | undefined
    if (caFile) {
        try {
            stsCa = fs.readFileSync(caFile)
        } catch (e) {
            throw new UsageError(`${values['sts-ca'] !== undefined ? '--sts-ca' : `[mtasts] ca_file of ${haraka!.iniFile}`}: ${(e as Error).message}`, false)
        }
    }
    const dnsStarted = Date.now()
    const { decision: decided, answers, progress } = await decideWithProgress(domain, values, timeoutMs, out)
    const dnsMs = Date.now() - dnsStarted
    // MTA-STS as the plugin applies it (lib/mtasts/apply): the policy published now, for the hosts without DANE
    const reporting = await reportingRecords(domain, decided, values, stsCa, timeoutMs, progress)
    const decision = reporting.outcome && stsAsked(decided).ask ? applySts(decided, reporting.outcome) : decided

    const probes: Record<string, ProbeResult[]> = {}
    const unprobed: Record<string, string> = {}
    const jobs: Promise<void>[] = []
    if (decision.action === 'deliver') {
        for (const h of decision.hosts) {
            if (h.mode === 'skip' || h.mode === 'plaintext') continue
            // C19: the SNI the plugin would send (lib/policy serverName), else the host name
            const servername = serverName(h) ?? h.name
            probes[h.name] = []
            // MTA-STS: the certificate checked by PKIX for the MX host name (enforced, or reported in testing)
            const pkixFor = h.mode === 'sts' || h.sts?.mode === 'testing' ? { host: h.name, ca: stsCa } : undefined
            // every address of both families (or the one -4/-6 names); a DANE host with each certificate type, since
            // each type it serves must match its TLSA records
            // (one type after the other on each address, so that one type's transient trouble is not the other's)
            const types: (CertType | undefined)[] = h.mode === 'dane' ? ['ECDSA', 'RSA'] : [undefined]
            const addresses = h.addresses.filter((a) => family === undefined || (a.includes(':') ? 6 : 4) === family)
            if (addresses.length === 0 && h.addresses.length > 0) unprobed[h.name] = family === 6 ? 'IPv6' : 'IPv4'
            addresses.forEach((address, i) => {
                jobs.push(
                    (async () => {
                        for (const [j, certType] of types.entries()) {
                            progress(`probing ${h.name} [${address}]:25 (${h.mode}, SNI ${servername}${certType ? `, ${certType}` : ''})`)
                            probes[h.name][i * types.length + j] = await probe({ address, servername, timeoutMs, ehloName, pkixFor, certType })
                        }
                    })(),
                )
            })
        }
    }
    await Promise.all(jobs)

    // DNSSEC: the resolver self-test, and internet.nl's check of each secure TLSA denial (A at the same name)
    const unreachable = resolverUnreachable(answers)
    const { selfTest, denial } = unreachable
        ? { selfTest: undefined, denial: {} }
        : await dnssecChecks(decision, answers, values, timeoutMs, selfTestName, progress)
    const report = checkVerdict(decision, probes, { resolverUnreachable: unreachable, days, selfTest, denial, dnsMs, unprobed })
    if (values.json) {
        const dnssec = {
            answers: answers.map(adLine),
            selfTest: selfTest && adLine(selfTest),
            denial: Object.fromEntries(Object.entries(denial).map(([host, list]) => [host, list.map(adLine)])),
        }
        out.stdout(
            `${JSON.stringify({ ...checkJson(decision, report), dnssec, reporting: { tlsrpt: reporting.tlsrpt, mtasts: reporting.mtasts } }, null, 2)}\n`,
        )
    } else {
        out.stdout(`${report.summary}\n`)
        for (const line of renderCheck(decision, report)) out.stdout(`${line}\n`)
        for (const line of renderDnssec(answers, selfTest, denial)) out.stdout(`${line}\n`)
        for (const line of renderReporting(reporting.tlsrpt, reporting.mtasts)) out.stdout(`${line}\n`)
        if (haraka) out.stdout(`${await keptPolicyLine(haraka, domain)}\n`)
    }
    return report.exitCode
}

/** --days: a certificate whose dates matter that expires within this many days is a WARNING */
const DEFAULT_DAYS = 14

/**
 * The resolver self-test (a name that must validate: AD set, whatever the answer) and, for each host whose
 * TLSA answer was a secure denial, an A query at the same name: a broken denial of existence (the commonest
 * DANE breakage) often shows there (internet.nl's check).
 */
async function dnssecChecks(
    d: Decision,
    answers: Answer[],
    values: Record<string, string | boolean | undefined>,
    timeoutMs: number,
    selfTestName: string,
    progress: (s: string) => void,
): Promise<{ selfTest?: Answer; denial: Record<string, Answer[]> }> {
    const resolver = openResolver(values, timeoutMs)
    try {
        const denial: Record<string, Answer[]> = {}
        const jobs: Promise<void>[] = []
        for (const h of d.hosts) {
            // every TLSA name of the host that was a secure denial (with a CNAME, the expanded name's too)
            for (const base of h.tlsa.asked ?? []) {
                const name = tlsaQueryName(base)
                const t = answers.find((a) => a.type === 'TLSA' && a.name === name)
                if (!t || !t.secure || (t.status !== 'nxdomain' && t.status !== 'nodata')) continue
                jobs.push(resolver.lookup(name, 'A').then((a) => void (denial[h.name] ??= []).push(a)))
            }
        }
        let selfTest: Answer | undefined
        if (selfTestName) {
            progress(`resolver self-test: ${selfTestName} A must come back with AD set`)
            jobs.push(resolver.lookup(selfTestName, 'A').then((a) => void (selfTest = a)))
        }
        await Promise.all(jobs)
        return { selfTest, denial }
    } finally {
        resolver.close()
    }
}

/** One answer as the DNSSEC block shows it: name, type, what came back, and the AD bit (danecheck's AD=1). */
function adLine(a: Answer): { name: string; type: string; status: string; ad: 0 | 1; detail?: string } {
    return { name: a.name || '.', type: a.type, status: a.status, ad: a.secure ? 1 : 0, ...(a.status === 'failed' ? { detail: a.reason } : {}) }
}

/** The DNSSEC block of the check: every answer the decision used with its AD bit, the self-test, the denial checks. */
function renderDnssec(answers: Answer[], selfTest: Answer | undefined, denial: Record<string, Answer[]>): string[] {
    const line = (a: Answer): string => {
        const l = adLine(a)
        return `  ${l.type} ${l.name}: ${l.status}, AD=${l.ad}${l.detail ? ` (${l.detail})` : ''}`
    }
    const out = ['DNSSEC (the AD bit of every answer):', ...answers.map(line)]
    for (const a of Object.values(denial).flat()) out.push(`${line(a)}   (denial check: the TLSA denial seen from another type)`)
    if (selfTest) out.push(`${line(selfTest)}   (resolver self-test: ${selfTest.status !== 'failed' && selfTest.secure ? 'validates' : 'DOES NOT VALIDATE'})`)
    return out
}

/** The destination's TLSRPT record and MTA-STS policy (fetched now, nothing kept), through the same resolver. */
async function reportingRecords(
    domain: string,
    decision: Decision,
    values: Record<string, string | boolean | undefined>,
    ca: Buffer | undefined,
    timeoutMs: number,
    progress: (s: string) => void,
): Promise<{ tlsrpt: TlsrptShown; mtasts: StsShown; outcome?: StsOutcome }> {
    const resolver = openResolver(values, timeoutMs)
    try {
        progress(`looking up ${tlsrptRecordName(domain)} and ${stsRecordName(domain)}`)
        const tlsrpt = tlsrptShown(await resolver.lookup(tlsrptRecordName(domain), 'TXT'))
        const sts = new StsPolicies({
            lookupTxt: (name) => resolver.lookup(name, 'TXT'),
            addresses: (host) => policyHostAddresses(resolver, host),
            // nothing kept: what the destination publishes now
            store: { get: async () => undefined, set: async () => undefined, drop: async () => undefined },
            ca,
            timeoutMs: Math.min(timeoutMs, 10_000),
        })
        let outcome: StsOutcome
        try {
            outcome = await sts.policyFor(domain)
        } catch (e) {
            outcome = { domain, plan: { fetch: false, why: 'internal error' }, reason: `no policy known: ${(e as Error)?.message ?? e}` }
        }
        return { tlsrpt, mtasts: stsShown(decision, outcome), outcome }
    } finally {
        resolver.close()
    }
}

const SELECTOR_WORDS = ['0', '1', 'cert', 'spki']

function cmdTlsa(args: string[], out: Out): number {
    const cmdline = parseCommand(
        args,
        { host: { type: 'string' }, usage: { type: 'string' }, selector: { type: 'string' }, mtype: { type: 'string' } },
        USAGE_TLSA,
        out,
    )
    if (!cmdline) return 0
    const { values, positionals } = cmdline
    if (positionals.length !== 1) throw new UsageError(positionals.length ? `unexpected argument "${positionals[1]}"` : 'missing <cert.pem|chain.pem>')
    const host = values.host !== undefined ? parseDomain(String(values.host), 'host') : undefined

    // RFC 6698 2.1 / RFC 7218: parse the three fields with the engine's own parser
    const probeText = `${values.usage ?? 3} ${values.selector ?? 1} ${values.mtype ?? 1}`
    const parsed = tlsaFromText(probeText)
    if (parsed.malformed) throw new UsageError(parsed.malformed)
    if (values.usage !== undefined && parsed.usage !== 2 && parsed.usage !== 3) {
        throw new UsageError(`--usage ${values.usage}: only 2 (DANE-TA) and 3 (DANE-EE) are used for SMTP (RFC 7672 3.1.3)`)
    }
    if (values.selector !== undefined && !SELECTOR_WORDS.includes(String(values.selector).toLowerCase()))
        throw new UsageError(`--selector ${values.selector}: use 0 or 1`)
    if (parsed.selector !== 0 && parsed.selector !== 1) throw new UsageError(`--selector ${values.selector}: use 0 or 1`)
    if (parsed.mtype !== 0 && parsed.mtype !== 1 && parsed.mtype !== 2) throw new UsageError(`--mtype ${values.mtype}: use 0, 1 or 2`)
    const { selector, mtype } = parsed

    const file = positionals[0]
    const certs = readPemCertificates(file)
    const leaf = certs[0]
    const lines: { usage: number; cert: X509Certificate; what: string }[] = []
    if (values.usage === undefined) {
        lines.push({ usage: 3, cert: leaf, what: 'the leaf' })
        const issuer = leaf.subject === leaf.issuer ? undefined : certs.slice(1).find((c) => leaf.checkIssued(c))
        if (issuer) lines.push({ usage: 2, cert: issuer, what: "the leaf's issuer" })
        else if (certs.length > 1) out.stderr(`; note: no other certificate in ${file} issued the leaf: no 2 ${selector} ${mtype} record printed\n`)
    } else if (parsed.usage === 3) {
        lines.push({ usage: 3, cert: leaf, what: 'the leaf' })
    } else {
        const cas = certs.filter((c) => c.ca)
        if (cas.length === 0) throw new UsageError(`${file} holds no CA certificate for a DANE-TA (2) record`, false)
        for (const c of cas) lines.push({ usage: 2, cert: c, what: c === leaf ? 'the first certificate (a CA)' : 'a CA certificate' })
    }
    for (const l of lines) {
        const rdata = `${l.usage} ${selector} ${mtype} ${associationData(l.cert, selector, mtype).toString('hex')}`
        out.stderr(`; ${l.usage} ${selector} ${mtype} for ${l.what}: ${certName(l.cert)} (valid to ${new Date(l.cert.validTo).toISOString().slice(0, 10)})\n`)
        out.stdout(host ? `_25._tcp.${host}. IN TLSA ${rdata}\n` : `${rdata}\n`)
    }
    return 0
}

function rolloverJson(decision: Decision, report: RolloverReport): Record<string, unknown> {
    return {
        domain: report.domain,
        decision: { ...decision, hosts: decision.hosts.map(hostJson) },
        verdict: {
            status: report.status,
            summary: report.summary,
            hosts: report.hosts.map((h) => ({ ...h, verify: verifyJson(h.verify) })),
            advice: report.advice,
        },
        exitCode: report.exitCode,
    }
}

async function cmdRollover(args: string[], out: Out): Promise<number> {
    const cmd = parseDomainCommand(args, { next: { type: 'string' } }, USAGE_ROLLOVER, out)
    if (!cmd) return 0
    const { values, domain } = cmd
    if (values.next === undefined) throw new UsageError('missing --next <cert.pem|chain.pem>')
    const timeoutMs = parseTimeout(values.timeout as string | undefined)
    const certs = readPemCertificates(String(values.next))
    const chain = parseChain(certs.map((c) => c.raw))
    if (chain.error) throw new UsageError(`${values.next}: ${chain.error}`, false)
    const { decision, answers, progress } = await decideWithProgress(domain, values, timeoutMs, out)
    progress(`new chain: ${certs.map((c, i) => `[${i}] ${certName(c)}`).join('; ')}`)
    if (decision.action === 'defer' && resolverUnreachable(answers)) {
        out.stderr(`${PROG}: cannot check: the resolver is unreachable (${decision.reason})\n`)
        return UNKNOWN
    }
    const ttls: Record<string, number> = {}
    for (const a of answers) if (a.type === 'TLSA' && a.status === 'ok') ttls[a.name] = a.ttl
    const report = rolloverVerdict(decision, chain, ttls)
    if (values.json) {
        out.stdout(`${JSON.stringify(rolloverJson(decision, report), null, 2)}\n`)
        return report.exitCode
    }
    out.stdout(`${report.summary}\n`)
    for (const h of report.hosts) {
        out.stdout(`${h.status}: ${h.text}\n`)
        for (const rd of h.publish) out.stdout(`  _25._tcp.${h.tlsaBase ?? h.name}. IN TLSA ${rd}\n`)
        if (h.ttl !== undefined) out.stdout(`  TLSA TTL ${h.ttl} s\n`)
    }
    for (const a of report.advice) out.stdout(`${a}\n`)
    return report.exitCode
}

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

function parseDay(v: string | undefined, now = Date.now()): string {
    if (v === undefined || v === 'yesterday') return utcDay(now - 86400000)
    if (v === 'today') return utcDay(now)
    try {
        dayRange(v)
    } catch {
        throw new UsageError(`--date: "${v}" is not a day (YYYY-MM-DD, today, yesterday)`)
    }
    return v
}

async function cmdTlsrpt(args: string[], out: Out): Promise<number> {
    const [sub, ...rest] = args
    if (sub === '--help' || sub === '-h') {
        out.stdout(USAGE_TLSRPT)
        return 0
    }
    if (sub === 'send') return cmdTlsrptSend(rest, out)
    if (sub !== 'show') throw new UsageError(sub === undefined ? 'missing subcommand (show, send)' : `unknown subcommand "${sub}" (show, send)`)
    const parsed = parseCommand(rest, { ...NET_OPTIONS, haraka: { type: 'string' }, date: { type: 'string' }, domain: { type: 'string' } }, USAGE_TLSRPT, out)
    if (!parsed) return 0
    const { values, positionals } = parsed
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`)
    if (typeof values.haraka !== 'string') throw new UsageError('missing --haraka DIR')
    const day = parseDay(values.date as string | undefined)
    const only = values.domain === undefined ? undefined : parseDomain(String(values.domain), '--domain')
    const { cfg, dir, iniFile } = tlsrptSetup(values.haraka)
    if (!cfg.tlsrpt.enabled) out.stderr(`${PROG} tlsrpt: note: [tlsrpt] enabled is not true in ${iniFile}; showing what was kept anyway\n`)
    const reporter = {
        organizationName: cfg.tlsrpt.organizationName || '(tlsrpt.organization_name not set)',
        contactInfo: cfg.tlsrpt.contactInfo || 'unset@invalid',
    }
    const store = openCliStore(cfg, dir, out)
    const shown: Record<string, unknown>[] = []
    let resolver: Resolver | undefined
    try {
        resolver = values.resolver !== undefined ? openResolver(values, parseTimeout(values.timeout as string | undefined)) : new Resolver(cfg.resolver)
        const kept = await fromStore(store, () => store.day(day))
        for (const domain of kept.domains.filter((d) => only === undefined || d === only)) {
            const report = reportOfTallies(day, domain, await fromStore(store, () => kept.tallies(domain)), reporter)
            if (!report) continue
            const txt = await resolver.lookup(tlsrptRecordName(domain), 'TXT')
            const shownTxt = tlsrptShown(txt)
            const where = shownTxt.destinations ? { destinations: shownTxt.destinations } : { not_sent: shownTxt.none }
            shown.push({ domain, ...where, filename: reportFilename(day, domain, reporter), report })
        }
    } finally {
        resolver?.close()
        await store.close()
    }
    if (values.json) {
        out.stdout(`${JSON.stringify(shown, null, 2)}\n`)
        return 0
    }
    if (shown.length === 0) out.stdout(`no TLS report results for ${only ?? 'any domain'} on ${day} in ${store.where}\n`)
    for (const s of shown) {
        out.stdout(`${s.domain}: ${s.destinations ? `would be sent to ${(s.destinations as string[]).join(', ')}` : `not sent: ${s.not_sent}`}\n`)
        out.stdout(`  ${s.filename}\n${JSON.stringify(s.report, null, 2)}\n\n`)
    }
    return 0
}

/** The store dane.ini names, for a command: its faults go to standard error. */
function openCliStore(cfg: DaneConfig, dir: string, out: Out): TlsrptStore {
    return openStore(cfg.tlsrpt, dir, (m) => out.stderr(`${m}\n`))
}

/** A read of the store; one that fails is told as such (an unreachable Redis), not as an internal error. */
async function fromStore<T>(store: TlsrptStore, read: () => Promise<T>): Promise<T> {
    try {
        return await read()
    } catch (e) {
        throw new UsageError(`cannot read the TLS report store ${store.where}: ${(e as Error)?.message ?? e}`, false)
    }
}

/** dane.ini's [tlsrpt] and the journal's directory, for a Haraka directory. */
/** The MTA-STS policy a Haraka keeps for `domain` ([mtasts] store: its files, or Redis), as one line. */
async function keptPolicyLine(h: { cfg: DaneConfig; harakaDir: string }, domain: string): Promise<string> {
    const m = h.cfg.mtasts
    const store: StsStore =
        m.store === 'redis' ? new RedisStsStore({ url: m.redisUrl, prefix: m.redisPrefix }) : new FileStsStore(path.resolve(h.harakaDir, m.directory))
    try {
        let kept: Awaited<ReturnType<StsStore['get']>>
        try {
            kept = await store.get(domain)
        } catch (e) {
            return `MTA-STS kept by Haraka (${h.harakaDir}): cannot be read: ${(e as Error)?.message ?? e}`
        }
        if (!kept) return `MTA-STS kept by Haraka (${h.harakaDir}): none`
        const when = (t: number): string => new Date(t).toISOString().replace(/\.\d+Z$/, 'Z')
        const state = kept.expires > Date.now() ? `expires ${when(kept.expires)}` : `expired ${when(kept.expires)}`
        return `MTA-STS kept by Haraka (${h.harakaDir}): id ${kept.id}, mode ${kept.policy.mode}, mx ${kept.policy.mx.join(', ') || '(none)'}, fetched ${when(kept.fetchedAt)}, ${state}`
    } finally {
        await store.close?.()
    }
}

/** A Haraka's directory as the commands read it: its dane.ini (checked as the plugin checks it). */
function harakaSetup(harakaDir: string): { cfg: DaneConfig; harakaDir: string; iniFile: string } {
    const iniFile = path.join(harakaDir, 'config', 'dane.ini')
    let lines: string[]
    try {
        lines = fs.readFileSync(iniFile, 'utf8').split(/\r?\n/)
    } catch (e) {
        throw new UsageError(`cannot read ${iniFile}: ${(e as Error).message}`, false)
    }
    const built = buildConfig({ file: iniFile, lines }, { file: 'dane.exceptions', lines: [] })
    if (!built.config) throw new UsageError(`configuration error:\n${formatErrors(built.errors)}`, false)
    return { cfg: built.config, harakaDir, iniFile }
}

function tlsrptSetup(harakaDir: string): { cfg: DaneConfig; dir: string; iniFile: string } {
    const { cfg, iniFile } = harakaSetup(harakaDir)
    return { cfg, dir: path.resolve(harakaDir, cfg.tlsrpt.directory), iniFile }
}

async function cmdTlsrptSend(args: string[], out: Out): Promise<number> {
    const parsed = parseCommand(
        args,
        { haraka: { type: 'string' }, date: { type: 'string' }, domain: { type: 'string' }, wait: { type: 'string' }, json: { type: 'boolean' } },
        USAGE_TLSRPT,
        out,
    )
    if (!parsed) return 0
    const { values, positionals } = parsed
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`)
    if (typeof values.haraka !== 'string') throw new UsageError('missing --haraka DIR')
    const day = parseDay(values.date as string | undefined)
    if (day >= utcDay(Date.now())) throw new UsageError(`--date: ${day} is not over yet; a report covers a whole UTC day (RFC 8460 4.1)`)
    const only = values.domain === undefined ? '' : parseDomain(String(values.domain), '--domain')
    const waitS = values.wait === undefined ? 90 : Number(values.wait)
    if (!Number.isInteger(waitS) || waitS < 1 || waitS > 3600) throw new UsageError(`--wait: "${values.wait}" is not a whole number of seconds (1..3600)`)
    const { cfg, dir, iniFile } = tlsrptSetup(values.haraka)
    if (!cfg.tlsrpt.enabled) throw new UsageError(`[tlsrpt] enabled is not true in ${iniFile}: the plugin sends no reports`, false)
    const store = openCliStore(cfg, dir, out)
    let domains: string[]
    try {
        domains = (await fromStore(store, () => store.day(day))).domains.filter((d) => !only || d === only)
    } finally {
        await store.close()
    }
    if (domains.length === 0) {
        out.stdout(`${day}: no TLS report results kept${only ? ` for ${only}` : ''} in ${store.where}; nothing to send\n`)
        return 0
    }
    const started = Date.now()
    const request = sendNowFile(dir, day)
    const done = `${request}.done`
    fs.rmSync(done, { force: true })
    // with store=redis the directory holds only these requests
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(request, `${only}\n`)
    while (!fs.existsSync(done)) {
        if (Date.now() - started > waitS * 1000) {
            fs.rmSync(request, { force: true })
            out.stderr(
                `${PROG} tlsrpt send: no running Haraka took the request within ${waitS} s (is it running with this directory, [tlsrpt] enabled=true?)\n`,
            )
            return UNKNOWN
        }
        await new Promise((r) => setTimeout(r, 200))
    }
    const outcomes = JSON.parse(fs.readFileSync(done, 'utf8')) as DomainOutcome[]
    fs.rmSync(done, { force: true })
    const now = outcomes.flatMap((o) => o.sent.map((d) => ({ domain: o.domain, ...d })))
    if (values.json) out.stdout(`${JSON.stringify({ day, outcomes }, null, 2)}\n`)
    else {
        for (const o of outcomes) {
            if (o.skipped) out.stdout(`${day} ${o.domain}: not sent: ${o.skipped}\n`)
            for (const d of o.sent) out.stdout(`${day} ${o.domain} → ${d.uri}: ${d.ok ? 'sent' : 'failed, tried again later'} (${d.detail})\n`)
        }
        if (now.length === 0 && outcomes.every((o) => !o.skipped)) out.stdout(`${day}: nothing to send now (every destination already has its report)\n`)
    }
    return now.some((d) => !d.ok) ? 1 : 0
}

const COMMANDS: Record<string, { usage: string; run: (args: string[], out: Out) => number | Promise<number> }> = {
    check: { usage: USAGE_CHECK, run: cmdCheck },
    tlsa: { usage: USAGE_TLSA, run: cmdTlsa },
    rollover: { usage: USAGE_ROLLOVER, run: cmdRollover },
    tlsrpt: { usage: USAGE_TLSRPT, run: cmdTlsrpt },
}

/** Runs one command line (argv without node and the script); returns the exit code. Never throws. */
export async function main(argv: string[], out: Out): Promise<number> {
    const [cmd, ...rest] = argv
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
        const topic = cmd === 'help' ? rest[0] : undefined
        if (topic !== undefined && COMMANDS[topic]) {
            out.stdout(COMMANDS[topic].usage)
            return 0
        }
        if (cmd === undefined) {
            out.stderr(USAGE_MAIN)
            return UNKNOWN
        }
        out.stdout(USAGE_MAIN)
        return 0
    }
    const command = COMMANDS[cmd]
    if (!command) {
        out.stderr(`${PROG}: unknown command "${cmd}"\n\n${USAGE_MAIN}`)
        return UNKNOWN
    }
    try {
        return await command.run(rest, out)
    } catch (e) {
        if (e instanceof UsageError) {
            out.stderr(e.showUsage ? `${PROG} ${cmd}: ${e.message}\n\n${command.usage}` : `${PROG} ${cmd}: ${e.message}\n`)
            return UNKNOWN
        }
        out.stderr(`${PROG} ${cmd}: internal error: ${(e as Error)?.stack ?? String(e)}\n`)
        return UNKNOWN
    }
}

if (require.main === module) {
    void main(process.argv.slice(2), {
        stdout: (s) => process.stdout.write(s),
        stderr: (s) => process.stderr.write(s),
    }).then((code) => {
        process.exitCode = code
        // every socket and timer is closed by now; this only guards against a stray handle
        setTimeout(() => process.exit(code), 2000).unref()
    })
}
