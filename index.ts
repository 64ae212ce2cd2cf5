// haraka-plugin-dane: the Haraka plugin, as a table of contents. The work is done in lib/:
//   configuration   lib/config (dane.ini, dane.exceptions)      → dane_load_config
//   Haraka's parts  lib/haraka-adapter (declared and proved)     → register, dane_prove_internals
//   the decision    lib/policy through lib/resolver              → dane_get_mx
//   the session     lib/session through lib/haraka-adapter      (installed by register)
//   the log         lib/log                                      → dane_delivered, dane_deferred, dane_bounce
//   MTA-STS         lib/mtasts (RFC 8461, hosts without DANE)    → dane_get_mx, after the DANE decision
//   TLS reports     lib/tlsrpt (RFC 8460 results, kept per day)  → recordTlsrpt, from the same places as the log
//   shutting down   (Haraka's graceful shutdown)                 → shutdown
import cluster from 'node:cluster'
import fs from 'node:fs'
import path from 'node:path'
import constants from 'haraka-constants'
import { buildConfig, DaneConfig, formatErrors, parseBool, policyFor } from './lib/config'
import { Resolver } from './lib/resolver'
import { asciiDomain, decide, Decision } from './lib/policy'
import {
    createLogger,
    closeLogger,
    DaneLogger,
    decisionFields,
    skippedAttempts,
    attemptFields,
    writeAttempt,
    writeFinal,
    writeDelivered,
    writeDeferred,
    tlsOutcome,
    type Outcome,
} from './lib/log'
import { describeStore, openStore } from './lib/tlsrpt/open-store'
import { storeIdentity } from './lib/redis'
import { unsignedReason } from './lib/tlsrpt/dkim-check'
import type { TlsrptStore } from './lib/tlsrpt/store'
import { resultOfAttempt, resultOfSkippedHost } from './lib/tlsrpt/from-attempt'
import type { SessionResult } from './lib/tlsrpt/result'
import { REPORT_NOTE, TlsrptScheduler } from './lib/tlsrpt/scheduler'
import { applySts, stsAsked } from './lib/mtasts/apply'
import { openStsService, type StsService } from './lib/mtasts/open'
import {
    installGlue,
    loadHarakaInternals,
    proveInternals,
    harakaMxList,
    deliveredFacts,
    configSource,
    HmailLike,
    HarakaInternals,
    type Attempt,
    PluginConfig,
} from './lib/haraka-adapter'

type Next = (code?: number, msg?: unknown) => void

interface HMail extends HmailLike {
    dane_decision?: Decision
}

interface DanePlugin {
    /** Haraka's per-plugin hook timeout in seconds (config/dane.timeout, else plugin_timeout, else 30) */
    timeout?: number
    config: PluginConfig
    register_hook: (hook: string, method: string) => void
    haraka_require: (name: string) => unknown
    logerror: (msg: string) => void
    lognotice: (msg: string) => void
    loginfo: (msg: string) => void
    dane?: State
    dane_load_config: (this: DanePlugin, startup: boolean) => void
    dane_tlsrpt_scheduler?: TlsrptScheduler
}

interface State {
    config: DaneConfig
    resolver: Resolver
    logger: DaneLogger
    internals: HarakaInternals
    /** where TLS report results are kept, when [tlsrpt] enabled=true (lib/tlsrpt/open-store) */
    tlsrpt?: { store: TlsrptStore; identity: string; requestDir: string }
    /** MTA-STS policies, when [mtasts] enabled=true (lib/mtasts/open) */
    sts?: StsService
}

/** RFC 8460: keep one attempt's TLS result for its domain's daily report. Never throws. */
function recordTlsrpt(plugin: DanePlugin, result: () => SessionResult | null): void {
    const store = plugin.dane?.tlsrpt?.store
    if (!store) return
    try {
        const r = result()
        if (r) store.add(r)
    } catch (e) {
        plugin.logerror(`haraka-plugin-dane: TLS report result not recorded: ${(e as Error)?.message ?? e}`)
    }
}

/** RFC 8460: one result per attempt, the first of its handshake and its failure */
function recordTlsrptAttempt(plugin: DanePlugin, hmail: HmailLike, attempt: Attempt, outcome: Outcome): void {
    if (attempt.reported) return
    attempt.reported = true
    // RFC 8460 5.3: the delivery of a report is not reported on (no report loops)
    if (isReportMessage(hmail)) return
    recordTlsrpt(plugin, () => resultOfAttempt(attempt, outcome))
}

/** A TLS report the plugin queued itself (lib/tlsrpt/scheduler): a note no SMTP client can set */
function isReportMessage(hmail: HmailLike): boolean {
    return hmail.todo?.notes?.[REPORT_NOTE] === true
}

/** [tlsrpt] directory: relative to Haraka's directory (haraka -c DIR) */
function tlsrptDirectory(dir: string): string {
    return path.resolve(process.env.HARAKA ?? process.cwd(), dir)
}

export function register(this: DanePlugin): void {
    this.dane_load_config(true)
    const internals = loadHarakaInternals((name) => this.haraka_require(name))
    this.dane!.internals = internals
    installGlue(internals, {
        onAttemptFailed: (hmail, attempt) => {
            writeAttempt(this.dane!.logger, this, attemptFields(attempt, 'failed'))
            recordTlsrptAttempt(this, hmail, attempt, 'failed')
        },
        // RFC 8460, as Postfix: a session's result is taken when its TLS handshake completes, whatever the message's fate
        onTlsEstablished: (hmail, attempt) => recordTlsrptAttempt(this, hmail, attempt, tlsOutcome(attempt.ctx.mode, true)),
        wantsLocalAddress: () => this.dane?.tlsrpt !== undefined,
        onConnectFailed: (ctx, address, err) =>
            writeAttempt(
                this.dane!.logger,
                this,
                attemptFields({ ctx, address, failure: { reason: `cannot connect to ${ctx.host} [${address}]: ${err}` } }, 'failed'),
            ),
        onContextLost: (hmail, address) => {
            this.logerror(
                `[${hmail.todo.uuid}] DANE: the MX ${address} for ${hmail.todo.domain} reached the connection without its DANE context (a Haraka change?); connection ended, the message stays queued`,
            )
            this.dane!.logger.error(
                {
                    event: 'attempt',
                    queue_id: hmail.todo.uuid,
                    domain: hmail.todo.domain,
                    address,
                    outcome: 'failed',
                    reason: 'the MX lost its DANE context; connection ended (C28)',
                },
                'MX lost its DANE context',
            )
        },
    })
    if (internals.outboundConfig.cfg && internals.outboundConfig.cfg.enable_tls === false) {
        this.logerror(
            'outbound.ini has enable_tls=false: every delivery that DANE or the encrypt policy covers will fail (never in plaintext) until it is true',
        )
    }
    // C28: before any delivery, prove that Haraka still hands the plugin's MX objects through unchanged
    this.register_hook('init_master', 'dane_prove_internals')
    this.register_hook('init_child', 'dane_prove_internals')
    this.register_hook('get_mx', 'dane_get_mx')
    this.register_hook('delivered', 'dane_delivered')
    this.register_hook('deferred', 'dane_deferred')
    this.register_hook('bounce', 'dane_bounce')
    this.loginfo(`DANE enforcement on, resolver ${this.dane!.config.resolver.address}:${this.dane!.config.resolver.port}, Haraka ${internals.version}`)
}

// C28: Haraka stops (init_master/init_child DENY) when its internals no longer pass the plugin's objects through
export function dane_prove_internals(this: DanePlugin, next: Next, server?: { cfg?: { main?: { nodes?: unknown } } }): void {
    proveInternals(this.dane!.internals).then((why) => {
        if (why === null) {
            // TLS reports are sent by the processes that deliver: the workers, or the one process without cluster
            if (cluster.isWorker || !server?.cfg?.main?.nodes) startTlsrptScheduler(this)
            return next()
        }
        this.logerror(`haraka-plugin-dane cannot run on this Haraka: ${why}`)
        next(constants.deny, `haraka-plugin-dane: ${why}`)
    })
}

/** RFC 8460: the timer that sends each day's reports (lib/tlsrpt/scheduler); one a process */
function startTlsrptScheduler(plugin: DanePlugin): void {
    if (plugin.dane_tlsrpt_scheduler) return
    const scheduler = new TlsrptScheduler({
        settings: () => {
            const t = plugin.dane?.config.tlsrpt
            // https_ca_file, like the directory, is relative to Haraka's directory
            return t && { ...t, httpsCaFile: t.httpsCaFile && tlsrptDirectory(t.httpsCaFile) }
        },
        store: () => plugin.dane?.tlsrpt?.store,
        requestDir: () => plugin.dane?.tlsrpt?.requestDir,
        lookupTxt: (name) => plugin.dane!.resolver.lookup(name, 'TXT'),
        queueMail: (from, to, message) =>
            new Promise((resolve) => {
                const send = plugin.dane?.internals.sendEmail()
                if (!send) return resolve({ ok: false, detail: "Haraka's outbound.send_email is missing" })
                send(from, to, message, (code, msg) => resolve({ ok: code === constants.ok, detail: `queued in Haraka: ${msg ?? code}` }), {
                    notes: { [REPORT_NOTE]: true },
                })
            }),
        log: (o, day) => {
            const what = o.skipped ?? o.sent.map((d) => `${d.uri}: ${d.ok ? 'sent' : 'failed'} (${d.detail})`).join('; ')
            plugin.dane?.logger[o.sent.some((d) => !d.ok) ? 'warn' : 'info'](
                { event: 'tlsrpt', day, domain: o.domain, sent: o.sent, skipped: o.skipped },
                `TLS report ${day} ${o.domain}: ${what}`,
            )
            if (o.sent.length) plugin.loginfo(`TLS report ${day} for ${o.domain}: ${what}`)
        },
        fault: (m) => plugin.logerror(m),
    })
    plugin.dane_tlsrpt_scheduler = scheduler
    scheduler.start()
}

/**
 * The TLS report store of a configuration: the one in use when it is the same (same directory or Redis),
 * else a new one, opened before the old is closed; the old one is closed once the sender's round that
 * may be using it is over. A store that cannot be opened stops Haraka at start-up, and on a reload keeps
 * the old one in use (its reason in Haraka's log).
 */
function reportStoreFor(plugin: DanePlugin, cfg: DaneConfig, dir: string | undefined, old: State['tlsrpt'], startup: boolean): State['tlsrpt'] {
    const identity = dir === undefined ? undefined : storeIdentity(cfg.tlsrpt, dir)
    if (old && old.identity === identity) return { ...old, requestDir: dir! }
    let opened: State['tlsrpt']
    if (dir !== undefined && identity !== undefined) {
        try {
            opened = { store: openStore(cfg.tlsrpt, dir, (message) => plugin.logerror(message)), identity, requestDir: dir }
        } catch (e) {
            const msg = `haraka-plugin-dane: the TLS report store ${describeStore(cfg.tlsrpt, dir)} cannot be opened: ${(e as Error)?.message ?? e}`
            if (startup) throw new Error(msg)
            plugin.logerror(`${msg}; keeping the one in use`)
            return old
        }
    }
    if (old) {
        const closeOld = (): void => void old.store.close()
        if (plugin.dane_tlsrpt_scheduler) plugin.dane_tlsrpt_scheduler.afterRound(closeOld)
        else closeOld()
    }
    return opened
}

// C23: errors name file and line; at start-up they stop the plugin, on reload the last good configuration stays
export function dane_load_config(this: DanePlugin, startup: boolean): void {
    const reload = (): void => this.dane_load_config(false)
    const result = buildConfig(configSource(this.config, 'dane.ini', reload), configSource(this.config, 'dane.exceptions', reload))
    if (!result.config) {
        const msg = `haraka-plugin-dane configuration error:\n${formatErrors(result.errors)}`
        if (startup) throw new Error(msg)
        this.logerror(`${msg}\nkeeping the last good configuration`)
        this.dane?.logger.error({ event: 'config', errors: result.errors }, 'configuration error; keeping the last good configuration')
        return
    }
    const cfg = result.config
    const old = this.dane
    const sameResolver = old && JSON.stringify(old.config.resolver) === JSON.stringify(cfg.resolver)
    const sameLog = old && JSON.stringify(old.config.log) === JSON.stringify(cfg.log)
    if (old && !sameResolver) old.resolver.close()
    if (old && !sameLog) closeLogger(old.logger)
    const tlsrptDir = cfg.tlsrpt.enabled ? tlsrptDirectory(cfg.tlsrpt.directory) : undefined
    const caFile = cfg.tlsrpt.httpsCaFile && tlsrptDirectory(cfg.tlsrpt.httpsCaFile)
    if (cfg.tlsrpt.enabled && caFile && !fs.existsSync(caFile))
        this.logerror(`haraka-plugin-dane: tlsrpt.https_ca_file ${caFile} cannot be read: reports to https destinations will fail until it can`)
    const tlsrpt = reportStoreFor(this, cfg, tlsrptDir, old?.tlsrpt, startup)
    const sts = stsServiceFor(this, cfg, old, startup)
    this.dane = {
        config: cfg,
        resolver: sameResolver ? old.resolver : new Resolver(cfg.resolver),
        // C29: a log destination that fails is reported in Haraka's log, never thrown into a hook
        logger: sameLog ? old.logger : createLogger(cfg.log, (message) => this.logerror(message)),
        internals: old?.internals as HarakaInternals,
        tlsrpt,
        sts,
    }
    if (cfg.tlsrpt.enabled) warnIfReportsUnsigned(this, cfg.tlsrpt.from || cfg.tlsrpt.contactInfo)
    if (cfg.mtasts.enabled) warnIfMutualTlsCa(this)
    // a policy fetch must end before Haraka's hook timeout, or the first delivery to a slow policy host always defers
    if (cfg.mtasts.enabled && this.timeout && cfg.mtasts.timeoutSeconds + 3 >= this.timeout)
        this.lognotice(
            `haraka-plugin-dane: mtasts.timeout_seconds (${cfg.mtasts.timeoutSeconds}) is not 3 s below the plugin timeout (${this.timeout} s, config/dane.timeout; the DNS and the policy store need time too): a slow policy host makes the first delivery to its domain defer; lower it`,
        )
    if (!startup) this.lognotice('configuration reloaded')
}

/**
 * MTA-STS for a configuration (lib/mtasts/open): its kept policies' store stays open while it is the same
 * (same directory or Redis), the rest is made anew. A CA file that cannot be read, or a store that cannot be
 * opened, stops Haraka at start-up and, on a reload, keeps the MTA-STS in use (its reason in Haraka's log).
 */
function stsServiceFor(plugin: DanePlugin, cfg: DaneConfig, old: State | undefined, startup: boolean): StsService | undefined {
    const previous = old?.sts
    if (!cfg.mtasts.enabled) {
        previous?.retire()
        return undefined
    }
    try {
        const service = openStsService(cfg.mtasts, {
            dir: tlsrptDirectory(cfg.mtasts.directory),
            caFile: cfg.mtasts.caFile && tlsrptDirectory(cfg.mtasts.caFile),
            resolver: () => plugin.dane!.resolver,
            fault: (m) => plugin.logerror(m),
            previous,
        })
        // the old store may still serve lookups under way: closed once they are over
        if (previous && previous.store !== service.store) previous.retire()
        return service
    } catch (e) {
        const msg = `haraka-plugin-dane: MTA-STS cannot be set up: ${(e as Error)?.message ?? e}`
        if (startup) throw new Error(msg)
        plugin.logerror(`${msg}; keeping the one in use`)
        return previous
    }
}

/**
 * MTA-STS: Haraka's mutual TLS lays tls.ini's own options over the plugin's at the handshake (tls_socket.js
 * connect/upgrade); a `ca` there then replaces the CAs MTA-STS hosts are judged against. Said, not changed.
 */
function warnIfMutualTlsCa(plugin: DanePlugin): void {
    try {
        const tlsIni = (plugin.config.get('tls.ini', 'ini') ?? {}) as { main?: Record<string, unknown>; mutual_auth_hosts?: Record<string, unknown> }
        const mutual = parseBool(String(tlsIni.main?.mutual_tls ?? '')) === true || Object.keys(tlsIni.mutual_auth_hosts ?? {}).length > 0
        if (mutual && tlsIni.main?.ca)
            plugin.lognotice(
                `haraka-plugin-dane: tls.ini has mutual TLS and a ca (${String(tlsIni.main.ca)}): on those connections Haraka's CAs, not [mtasts] ca_file or node's store, judge MTA-STS hosts' certificates`,
            )
    } catch (e) {
        plugin.logerror(`haraka-plugin-dane: could not read tls.ini: ${(e as Error)?.message ?? e}`)
    }
}

/** RFC 8460 5.3: say at start-up (and on reload) when Haraka's DKIM plugin will not sign report mail. */
function warnIfReportsUnsigned(plugin: DanePlugin, from: string): void {
    try {
        // where Haraka's DKIM plugin looks for its keys (process.env.HARAKA/config/dkim/<domain>)
        const root = path.resolve(process.env.HARAKA ?? '', 'config')
        const get = (name: string, type: string): unknown => plugin.config.get(name, type)
        const ini = (get('dkim.ini', 'ini') ?? {}) as { sign?: Record<string, unknown> }
        const list = (get('plugins', 'list') ?? []) as string[]
        const key = (get('dkim.private.key', 'data') ?? []) as string[]
        const why = unsignedReason(from, {
            plugins: list.map((p) => String(p).trim()),
            sign: {
                enabled: parseBool(String(ini.sign?.enabled ?? '')) === true,
                domain: ini.sign?.domain ? String(ini.sign.domain) : undefined,
                selector: ini.sign?.selector ? String(ini.sign.selector) : undefined,
            },
            defaultKey: key.join('').trim().length > 0,
            keyDir: (d) => fs.existsSync(path.join(root, 'dkim', d, 'private')) && fs.existsSync(path.join(root, 'dkim', d, 'selector')),
        })
        if (why)
            plugin.lognotice(
                `haraka-plugin-dane: TLS report mail from ${from} will not be DKIM-signed: ${why}. RFC 8460 5.3 wants it signed and receivers may discard unsigned reports; https destinations are not affected`,
            )
    } catch (e) {
        plugin.logerror(`haraka-plugin-dane: could not tell whether TLS report mail will be DKIM-signed: ${(e as Error)?.message ?? e}`)
    }
}

// C4-C12, C21, C22: the decision for the recipient domain, as Haraka's MX list, DENYSOFT or DENY
export function dane_get_mx(this: DanePlugin, next: Next, hmail: HMail, domainIn: string): void {
    const st = this.dane!
    const started = Date.now()
    const queueId = hmail.todo.uuid
    // per-message state from an earlier try of this message must not leak into this one's log lines
    delete hmail.dane_decision
    delete hmail.dane_attempt
    let answered = false
    let deadline: NodeJS.Timeout | undefined
    const reply: Next = (code, msg) => {
        if (answered) return
        answered = true
        if (deadline) clearTimeout(deadline)
        next(code, msg)
    }
    // Haraka defers on its own when a hook outlives the plugin timeout; answer first, so the log says why
    if (this.timeout && this.timeout > 1) {
        deadline = setTimeout(
            () => {
                const reason = `DNS answers${st.sts ? ' (and the MTA-STS policy)' : ''} for ${domainIn} took longer than the plugin timeout (${this.timeout} s)`
                st.logger.warn({ event: 'decision', queue_id: queueId, domain: domainIn, action: 'defer', reason }, `${domainIn}: defer: ${reason}`)
                reply(constants.denysoft, `DANE: ${reason}`)
            },
            this.timeout * 1000 - 500,
        )
    }
    // an internationalised domain is looked up in its A-label form, as Haraka's own MX lookup does
    const domain = asciiDomain(domainIn)
    if (!domain) {
        st.logger.error({ event: 'decision', queue_id: queueId, domain: domainIn }, 'recipient domain cannot be converted to ASCII; deferring')
        return reply(constants.denysoft, `DANE: cannot look up the domain ${domainIn}`)
    }
    // RFC 8460 5.3: a report is delivered despite TLS failures (it says TLS-Required: No, RFC 8689): opportunistic TLS
    const report = isReportMessage(hmail)
    const { policy, exception } = report ? { policy: 'may' as const, exception: false } : policyFor(st.config, domain)
    decide(domain, (n, t) => st.resolver.lookup(n, t), { policy, exception, limits: st.config.limits, memo: st.resolver })
        // MTA-STS for the MX hosts the DNS proved have no DANE (C37-C39); DANE decides the others
        .then((decided) => (st.sts && stsAsked(decided).ask ? st.sts.policies.policyFor(decided.domain).then((o) => applySts(decided, o)) : decided))
        .then((decision) => {
            hmail.dane_decision = decision
            st.logger.info(decisionFields(decision, queueId, Date.now() - started), `${decision.domain}: ${decision.action}: ${decision.reason}`)
            for (const a of skippedAttempts(decision, queueId)) writeAttempt(st.logger, this, a)
            if (!report) for (const h of decision.hosts) if (h.mode === 'skip') recordTlsrpt(this, () => resultOfSkippedHost(decision.domain, h, decision.sts))
            if (decision.action === 'defer') return reply(constants.denysoft, `DANE: ${decision.reason}`)
            if (decision.action === 'bounce') return reply(constants.deny, decision.reason)
            reply(constants.ok, harakaMxList(st.internals.HarakaMx, decision, queueId, st.sts?.ca))
        })
        .catch((err: Error) => {
            // never downgrade on an internal error: the message stays queued (C29: and nothing escapes this hook)
            try {
                this.logerror(`DANE decision for ${domain} failed: ${err?.stack ?? err}`)
                st.logger.error({ event: 'decision', queue_id: queueId, domain, err: String(err) }, 'internal error; deferring')
            } catch {
                /* reported as far as it could be */
            } finally {
                reply(constants.denysoft, `DANE: internal error deciding for ${domain}`)
            }
        })
}

// C24: the attempt that delivered and the final line
export function dane_delivered(this: DanePlugin, next: Next, hmail: HMail, params: unknown[]): void {
    const d = hmail.dane_decision
    const a = hmail.dane_attempt
    if (d && a) {
        const { secured, response } = deliveredFacts(params)
        writeDelivered(this.dane!.logger, this, d, hmail.todo.uuid, a, secured, response)
        // a session without TLS is a TLS result only where a policy asked for TLS (MTA-STS testing)
        recordTlsrptAttempt(this, hmail, a, tlsOutcome(a.ctx.mode, secured))
    }
    next()
}

export function dane_deferred(this: DanePlugin, next: Next, hmail: HMail, params: { err?: unknown; delay?: number }): void {
    const d = hmail.dane_decision
    if (d) writeDeferred(this.dane!.logger, d, hmail.todo.uuid, hmail.dane_attempt, params?.err, params?.delay)
    next()
}

export function dane_bounce(this: DanePlugin, next: Next, hmail: HMail, err: unknown): void {
    const d = hmail.dane_decision
    if (d) writeFinal(this.dane!.logger, d, hmail.todo.uuid, { outcome: 'bounced', reason: String((err as Error)?.message ?? err) })
    next()
}

// Haraka's graceful shutdown: the report sender stops and the report store closes (a Redis connection would
// otherwise hold the process; results still waiting for Redis are counted as lost in Haraka's log)
export function shutdown(this: DanePlugin): void {
    this.dane_tlsrpt_scheduler?.stop()
    this.dane?.sts?.close()
    const t = this.dane?.tlsrpt
    if (t) {
        this.dane!.tlsrpt = undefined
        void t.store.close()
    }
}
