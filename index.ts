// haraka-plugin-dane: the Haraka plugin. A table of contents: load the
// configuration, build the resolver, register get_mx and the outcome hooks,
// install the TLS glue. The work is done in lib/.
import fs from 'node:fs'
import path from 'node:path'
import { domainToASCII } from 'node:url'
import constants from 'haraka-constants'
import { buildConfig, DaneConfig, formatErrors, policyFor, Source } from './lib/config'
import { Resolver } from './lib/resolver'
import { decide, Decision } from './lib/policy'
import { createLogger, closeLogger, DaneLogger, decisionFields, skippedAttempts, AttemptFields, Outcome, FinalFields } from './lib/log'
import { installGlue, loadHarakaInternals, proveInternals, Attempt, MxContext, HmailLike, HarakaInternals, HarakaMxObject } from './lib/haraka-tls'

type Next = (code?: number, msg?: unknown) => void

interface HMail extends HmailLike {
    dane_decision?: Decision
}

interface DanePlugin {
    /** Haraka's per-plugin hook timeout in seconds (config/dane.timeout, else plugin_timeout, else 30) */
    timeout?: number
    config: { get: (name: string, type: string, cb?: () => void) => unknown }
    register_hook: (hook: string, method: string) => void
    haraka_require: (name: string) => unknown
    logerror: (msg: string) => void
    lognotice: (msg: string) => void
    loginfo: (msg: string) => void
    dane?: State
    dane_load_config: (this: DanePlugin, startup: boolean) => void
}

interface State {
    config: DaneConfig
    resolver: Resolver
    logger: DaneLogger
    internals: HarakaInternals
}

const PLUGIN_DIR = path.resolve(__dirname, fs.existsSync(path.resolve(__dirname, 'config')) ? '.' : '..')

function sourceOf(plugin: DanePlugin, name: string): Source {
    const lines = (plugin.config.get(name, 'data', () => plugin.dane_load_config(false)) as string[] | null) ?? []
    const override = process.env.HARAKA ? path.join(process.env.HARAKA, 'config', name) : ''
    const file = override && fs.existsSync(override) ? override : path.join(PLUGIN_DIR, 'config', name)
    return { file, lines }
}

export function register(this: DanePlugin): void {
    this.dane_load_config(true)
    const internals = loadHarakaInternals((name) => this.haraka_require(name))
    this.dane!.internals = internals
    installGlue(internals, {
        onAttemptFailed: (hmail, attempt) => logAttempt(this, attemptFields(attempt, 'failed')),
        onConnectFailed: (ctx, address, err) =>
            logAttempt(this, {
                ...ctxFields(ctx),
                address,
                outcome: 'failed',
                reason: `cannot connect to ${ctx.host} [${address}]: ${err}`,
            }),
        onContextLost: (hmail, address) => {
            const d = (hmail as HMail).dane_decision
            this.logerror(
                `[${hmail.todo.uuid}] DANE: the MX ${address} for ${hmail.todo.domain} reached the connection without its DANE context (a Haraka change?); connection ended, the message stays queued`,
            )
            this.dane?.logger.error(
                {
                    event: 'attempt',
                    queue_id: hmail.todo.uuid,
                    domain: d?.domain ?? hmail.todo.domain,
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
export function dane_prove_internals(this: DanePlugin, next: Next): void {
    proveInternals(this.dane!.internals).then((why) => {
        if (why === null) return next()
        this.logerror(`haraka-plugin-dane cannot run on this Haraka: ${why}`)
        next(constants.deny, `haraka-plugin-dane: ${why}`)
    })
}

// C23: errors name file and line; at start-up they stop the plugin, on reload the last good configuration stays
export function dane_load_config(this: DanePlugin, startup: boolean): void {
    const result = buildConfig(sourceOf(this, 'dane.ini'), sourceOf(this, 'dane.exceptions'))
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
    this.dane = {
        config: cfg,
        resolver: sameResolver ? old.resolver : new Resolver(cfg.resolver),
        // C29: a log destination that fails is reported in Haraka's log, never thrown into a hook
        logger: sameLog ? old.logger : createLogger(cfg.log, (message) => this.logerror(message)),
        internals: old?.internals as HarakaInternals,
    }
    if (!startup) this.lognotice('configuration reloaded')
}

export function dane_get_mx(this: DanePlugin, next: Next, hmail: HMail, domainIn: string): void {
    const st = this.dane!
    const started = Date.now()
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
                const reason = `DNS answers for ${domainIn} took longer than the plugin timeout (${this.timeout} s)`
                st.logger.warn({ event: 'decision', queue_id: hmail.todo.uuid, domain: domainIn, action: 'defer', reason }, `${domainIn}: defer: ${reason}`)
                reply(constants.denysoft, `DANE: ${reason}`)
            },
            this.timeout * 1000 - 500,
        )
    }
    // an internationalised domain is looked up in its A-label form, as Haraka's own MX lookup does
    const domain = domainToASCII(domainIn)
    if (!domain) {
        st.logger.error({ event: 'decision', queue_id: hmail.todo.uuid, domain: domainIn }, 'recipient domain cannot be converted to ASCII; deferring')
        return reply(constants.denysoft, `DANE: cannot look up the domain ${domainIn}`)
    }
    const { policy, exception } = policyFor(st.config, domain)
    decide(domain, (n, t) => st.resolver.lookup(n, t), { policy, exception, limits: st.config.limits })
        .then((decision) => {
            hmail.dane_decision = decision
            const queueId = hmail.todo.uuid
            st.logger.info(decisionFields(decision, queueId, Date.now() - started), `${decision.domain}: ${decision.action}: ${decision.reason}`)
            for (const a of skippedAttempts(decision, queueId)) logAttempt(this, a)
            if (decision.action === 'defer') return reply(constants.denysoft, `DANE: ${decision.reason}`)
            if (decision.action === 'bounce') return reply(constants.deny, decision.reason)
            reply(constants.ok, harakaMxList(st, decision, queueId))
        })
        .catch((err: Error) => {
            // never downgrade on an internal error: the message stays queued (C29: and nothing escapes this hook)
            try {
                this.logerror(`DANE decision for ${domain} failed: ${err?.stack ?? err}`)
                st.logger.error({ event: 'decision', queue_id: hmail.todo.uuid, domain, err: String(err) }, 'internal error; deferring')
            } catch {
                /* reported as far as it could be */
            } finally {
                reply(constants.denysoft, `DANE: internal error deciding for ${domain}`)
            }
        })
}

/** One HarakaMx a validated address, carrying the host's DANE context (Haraka's own class: see haraka-tls). */
function harakaMxList(st: State, d: Decision, queueId: string): HarakaMxObject[] {
    const out: HarakaMxObject[] = []
    for (const h of d.hosts) {
        if (h.mode === 'skip') continue
        const ctx: MxContext = {
            queueId,
            domain: d.domain,
            policy: d.policy,
            exception: d.exception,
            host: h.name,
            mode: h.mode,
            tlsaBase: h.tlsaBase,
            referenceNames: h.referenceNames,
            records: h.tlsa.records,
        }
        // C7: deliver only to the addresses the resolver validated
        for (const address of h.addresses) {
            const mx = new st.internals.HarakaMx({ exchange: address, priority: h.preference, from_dns: h.name })
            mx.dane = ctx
            out.push(mx)
        }
    }
    return out
}

function ctxFields(ctx: MxContext): Omit<AttemptFields, 'outcome' | 'reason'> {
    return {
        queue_id: ctx.queueId,
        domain: ctx.domain,
        policy: ctx.policy,
        exception: ctx.exception,
        mx_host: ctx.host,
        tlsa_base: ctx.tlsaBase,
        mode: ctx.mode,
    }
}

function tlsOutcome(a: Attempt, secured: boolean): Outcome {
    switch (a.ctx.mode) {
        case 'dane':
            return 'verified'
        case 'encrypt':
            return 'unauthenticated-tls'
        case 'plaintext':
            return 'plaintext'
        default:
            return secured ? 'opportunistic-tls' : 'opportunistic-plaintext'
    }
}

function attemptFields(a: Attempt, outcome: Outcome): AttemptFields {
    const m = a.verify?.match
    return {
        ...ctxFields(a.ctx),
        address: a.address,
        outcome,
        matched: m?.record.text,
        depth: m?.depth,
        matched_name: a.verify?.matchedName,
        result_type: a.failure?.resultType,
        reason: a.failure?.reason ?? (m ? `authenticated by TLSA ${m.record.text} at depth ${m.depth}` : outcome),
        tls_ms: a.tlsMs,
    }
}

function logAttempt(plugin: DanePlugin, f: AttemptFields): void {
    const level = f.outcome === 'failed' || f.outcome === 'skipped' ? 'warn' : 'info'
    plugin.dane?.logger[level]({ event: 'attempt', ...f }, `${f.domain} ${f.mx_host}${f.address ? ` [${f.address}]` : ''}: ${f.outcome}: ${f.reason}`)
    // and a short human line in Haraka's own log
    const human = `[${f.queue_id ?? '-'}] DANE ${f.domain} ${f.mx_host}${f.address ? ` [${f.address}]` : ''}: ${f.outcome}: ${f.reason}`
    if (level === 'warn') plugin.lognotice(human)
    else plugin.loginfo(human)
}

/** The final line of a message the plugin routed: queue id and policy from the decision, the rest given. */
function logFinal(plugin: DanePlugin, hmail: HMail, d: Decision, rest: Omit<FinalFields, 'queue_id' | 'domain' | 'policy' | 'exception'>): void {
    const f: FinalFields = { queue_id: hmail.todo.uuid, domain: d.domain, policy: d.policy, exception: d.exception, ...rest }
    const level = f.outcome === 'delivered' ? 'info' : 'warn'
    plugin.dane?.logger[level]({ event: 'final', ...f }, `${f.domain}: ${f.outcome}: ${f.reason}`)
}

export function dane_delivered(this: DanePlugin, next: Next, hmail: HMail, params: unknown[]): void {
    const d = hmail.dane_decision
    const a = hmail.dane_attempt
    if (d && a) {
        const secured = !!params[7]
        const outcome = tlsOutcome(a, secured)
        const f = attemptFields(a, outcome)
        logAttempt(this, f)
        logFinal(this, hmail, d, {
            outcome: 'delivered',
            mx_host: a.ctx.host,
            address: a.address,
            tls: outcome,
            tlsa_base: a.ctx.tlsaBase,
            matched: f.matched,
            depth: f.depth,
            reason: `delivered to ${a.ctx.host} [${a.address}]: ${String(params[2] ?? '')}`,
        })
    }
    next()
}

export function dane_deferred(this: DanePlugin, next: Next, hmail: HMail, params: { err?: unknown; delay?: number }): void {
    const d = hmail.dane_decision
    if (d) {
        logFinal(this, hmail, d, {
            outcome: 'deferred',
            result_type: d.resultType ?? hmail.dane_attempt?.failure?.resultType,
            reason: `${d.action === 'defer' ? d.reason : String(params?.err ?? 'temporary failure')}; retry in ${params?.delay ?? '?'} s`,
        })
    }
    next()
}

export function dane_bounce(this: DanePlugin, next: Next, hmail: HMail, err: unknown): void {
    const d = hmail.dane_decision
    if (d) {
        logFinal(this, hmail, d, {
            outcome: 'bounced',
            reason: String((err as Error)?.message ?? err),
        })
    }
    next()
}
