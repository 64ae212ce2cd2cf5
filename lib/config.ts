// dane.ini and the exception list → one typed, validated configuration.
// Pure: it takes the files' lines (Haraka's config loader reads them, with
// `data` type so that line numbers survive) and returns the configuration or
// errors that name file and line (C23).
//
// It also owns the one check of the resolver settings, resolverSettings(), used
// by the dane.ini parser and by the command alike: a Resolver is built from
// nothing else (C1, C23).
import net from 'node:net'
import { DEFAULT_CACHE_MAX_BYTES } from './dns/cache'
import { POLICY_WORDS, PolicyWord, DEFAULT_LIMITS, type DecisionLimits } from './policy'
import { isLoopbackAddress, ResolverConfigError } from './resolver'
import { remembered } from './remembered'

/** Resolver settings as a caller states them (dane.ini, the command line, a test): not yet checked. */
export interface ResolverInput {
    address: string
    port: number
    /** per attempt (one UDP exchange, or the TCP exchange after TC) */
    timeoutMs: number
    /** extra attempts after a timeout; total attempts = 1 + retries */
    retries: number
    /** max cache entries; 0 disables the cache */
    cacheSize: number
    /** C30: the answer cache's bound in bytes (estimated); default 32 MiB; an answer larger than 1/16 of it is not cached */
    cacheMaxBytes?: number
    /** the operator asserts a non-loopback resolver is reached over a trusted, secured path */
    trustNonLoopback?: boolean
}

declare const checked: unique symbol

/**
 * Resolver settings that resolverSettings() accepted, the only thing a Resolver is built from (it
 * takes them as they are). The brand exists for the type checker only: a plain object is not one.
 */
export type ResolverSettings = Readonly<Required<ResolverInput>> & { readonly [checked]: true }

export interface ResolverSettingError {
    field: keyof ResolverInput
    /** 'not-loopback': C1, the address is fine but its AD bit cannot be trusted */
    kind: 'invalid' | 'not-loopback'
    message: string
}

type NumericSetting = 'port' | 'timeoutMs' | 'retries' | 'cacheSize' | 'cacheMaxBytes'

/** Narrower ranges a source documents for its settings (dane.ini): whole numbers from min to max. */
export type SettingRanges = Partial<Record<NumericSetting, { min: number; max: number }>>

// C23: what a Resolver runs with.
const RULES: Record<NumericSetting, { ok: (n: number) => boolean; must: string }> = {
    port: { ok: (n) => Number.isInteger(n) && n >= 1 && n <= 65535, must: 'is not in 1..65535' },
    timeoutMs: { ok: (n) => Number.isFinite(n) && n > 0, must: 'must be a positive number' },
    retries: { ok: (n) => Number.isInteger(n) && n >= 0, must: 'must be a non-negative integer' },
    cacheSize: { ok: (n) => Number.isInteger(n) && n >= 0, must: 'must be a non-negative integer' },
    cacheMaxBytes: { ok: (n) => Number.isInteger(n) && n >= 1024, must: 'must be a whole number of at least 1024' },
}

/** C23: one resolver setting checked on its own (within `ranges` too, when given): what is wrong with it, or undefined. */
export function resolverSettingProblem(field: 'address' | NumericSetting, value: unknown, ranges: SettingRanges = {}): string | undefined {
    if (field === 'address') return net.isIP(String(value ?? '')) === 0 ? `resolver address "${value}" is not an IP address` : undefined
    const n = value as number
    if (!RULES[field].ok(n)) return `resolver ${field} "${value}" ${RULES[field].must}`
    const range = ranges[field]
    if (range && !(Number.isInteger(n) && n >= range.min && n <= range.max))
        return `resolver ${field} "${value}" is not a whole number from ${range.min} to ${range.max}`
    return undefined
}

/**
 * C1, C23: the one check of the resolver settings. Every setting is checked (and the documented
 * `ranges` of the source, when given), and a non-loopback address is refused unless
 * trustNonLoopback is set (C1 / RFC 7672 §2.1.1, RFC 4035 §4.9.3: the AD bit is only as
 * trustworthy as the path to the resolver). cacheMaxBytes defaults to 32 MiB.
 */
export function resolverSettings(input: ResolverInput, ranges: SettingRanges = {}): { settings: ResolverSettings } | { errors: ResolverSettingError[] } {
    const cacheMaxBytes = input.cacheMaxBytes ?? DEFAULT_CACHE_MAX_BYTES
    const values: [keyof ResolverInput & ('address' | NumericSetting), unknown][] = [
        ['address', input.address],
        ['port', input.port],
        ['timeoutMs', input.timeoutMs],
        ['retries', input.retries],
        ['cacheSize', input.cacheSize],
        ['cacheMaxBytes', cacheMaxBytes],
    ]
    const errors: ResolverSettingError[] = []
    for (const [field, value] of values) {
        const message = resolverSettingProblem(field, value, ranges)
        if (message) errors.push({ field, kind: 'invalid', message })
    }
    const trustNonLoopback = input.trustNonLoopback === true
    if (net.isIP(String(input.address ?? '')) !== 0 && !isLoopbackAddress(input.address) && !trustNonLoopback) {
        errors.push({
            field: 'address',
            kind: 'not-loopback',
            message:
                `resolver ${input.address} is not loopback (127.0.0.0/8 or ::1); its AD bit cannot be trusted ` +
                `unless the path is secured and trustNonLoopback is set`,
        })
    }
    if (errors.length) return { errors }
    const { address, port, timeoutMs, retries, cacheSize } = input
    return { settings: Object.freeze({ address, port, timeoutMs, retries, cacheSize, cacheMaxBytes, trustNonLoopback }) as ResolverSettings }
}

/** resolverSettings() for callers with fixed settings (the defaults, tests, benchmarks): throws ResolverConfigError. */
export function resolverSettingsOrThrow(input: ResolverInput, ranges: SettingRanges = {}): ResolverSettings {
    const r = resolverSettings(input, ranges)
    if ('errors' in r) throw new ResolverConfigError(r.errors.map((e) => e.message).join('; '))
    return r.settings
}

/** C30: work per destination, as Postfix's smtp_mx_address_limit bounds it */
export type Limits = DecisionLimits

export interface DaneConfig {
    policy: PolicyWord
    resolver: ResolverSettings
    log: { destination: string; level: string }
    limits: Limits
    /** Per-domain overrides: 'example.com' exact, '.example.com' its subdomains (C21). */
    domains: Map<string, PolicyWord>
    /** The danefail-style exception list, same name syntax (C22). */
    exceptions: Set<string>
    /** TLS reporting (RFC 8460): results kept for the daily reports */
    tlsrpt: TlsrptSettings
    /** MTA-STS (RFC 8461) for MX hosts without DANE */
    mtasts: MtaStsSettings
}

export interface MtaStsSettings {
    enabled: boolean
    /** PEM file of CAs trusted for policy hosts and MX hosts instead of node's store; '' for node's store */
    caFile: string
    /** where policies are kept between restarts (store=file); relative to Haraka's directory */
    directory: string
    /** the whole policy fetch, seconds */
    timeoutSeconds: number
    /** where policies are kept: files in `directory` (one machine), or Redis (several) */
    store: 'file' | 'redis'
    redisUrl: string
    redisPrefix: string
}

export interface TlsrptSettings {
    enabled: boolean
    /** RFC 8460 4.4 organization-name */
    organizationName: string
    /** RFC 8460 4.4 contact-info, an addr-spec; its domain is the TLS-Report-Submitter */
    contactInfo: string
    /** where the journal is kept; relative to Haraka's directory; default "dane-tlsrpt" */
    directory: string
    /** reports go out this many minutes after 00:00 UTC at the earliest (RFC 8460 4.1: after some delay) */
    sendAfterMinutes: number
    /** ... spread over this many minutes more, by domain */
    spreadMinutes: number
    /** PEM file of CAs trusted for https destinations instead of node's store; '' for node's store */
    httpsCaFile: string
    /** the From address of report mail; '' for contact_info */
    from: string
    /** how often the sender looks for due reports (and for `haraka-dane tlsrpt send` requests), seconds */
    checkSeconds: number
    /** where results and sending state are kept: the journal in `directory` (one machine), or Redis (several) */
    store: 'file' | 'redis'
    /** store=redis: the server, redis[s]://[[user]:password@]host[:port][/db] */
    redisUrl: string
    /** store=redis: the prefix of every key */
    redisPrefix: string
}

export interface ConfigError {
    file: string
    line: number
    message: string
}

export interface Source {
    file: string
    lines: string[]
}

export const DEFAULTS: Omit<DaneConfig, 'domains' | 'exceptions'> = {
    policy: 'dane',
    resolver: resolverSettingsOrThrow({
        address: '127.0.0.1',
        port: 53,
        timeoutMs: 2000,
        retries: 2,
        cacheSize: 10000,
        cacheMaxBytes: DEFAULT_CACHE_MAX_BYTES,
        trustNonLoopback: false,
    }),
    log: { destination: 'stdout', level: 'info' },
    limits: DEFAULT_LIMITS,
    tlsrpt: {
        enabled: false,
        organizationName: '',
        contactInfo: '',
        directory: 'dane-tlsrpt',
        sendAfterMinutes: 60,
        spreadMinutes: 180,
        httpsCaFile: '',
        from: '',
        checkSeconds: 60,
        store: 'file',
        redisUrl: 'redis://127.0.0.1:6379',
        redisPrefix: 'dane-tlsrpt',
    },
    mtasts: {
        enabled: true,
        caFile: '',
        directory: 'dane-mta-sts',
        timeoutSeconds: 10,
        store: 'file',
        redisUrl: 'redis://127.0.0.1:6379',
        redisPrefix: 'dane-mta-sts',
    },
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

// RFC 1035 2.3.1 (with RFC 1123 digits), case-insensitive, optional leading dot for "subdomains of"
const DOMAIN_RE = /^\.?(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/

// RFC 5321 4.1.2 addr-spec, the common dot-atom form
const ADDR_SPEC = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/

/**
 * Why node-redis would refuse this URL (createClient throws on it), or undefined: the scheme, a host, a
 * database number as the path, and user and password that decode. Never echoes the URL (a password).
 */
export function redisUrlProblem(url: string): string | undefined {
    let u: URL
    try {
        u = new URL(url)
    } catch {
        return 'not a URL'
    }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return 'not a redis:// or rediss:// URL'
    if (!u.hostname) return 'no host'
    if (!/^\/?\d*$/.test(u.pathname)) return 'the path is not a database number'
    try {
        decodeURIComponent(u.username)
        decodeURIComponent(u.password)
    } catch {
        return 'the user or password is not validly %-encoded'
    }
    return undefined
}

export function normalizeDomain(d: string): string {
    return d.trim().toLowerCase().replace(/\.$/, '')
}

export const isLoopback = isLoopbackAddress

/** true, yes, on, 1 / false, no, off, 0 (any case), as dane.ini and Haraka's own ini files write them; else undefined */
export function parseBool(v: string): boolean | undefined {
    if (/^(true|yes|on|1)$/i.test(v)) return true
    if (/^(false|no|off|0)$/i.test(v)) return false
    return undefined
}

function parseIntIn(v: string, min: number, max: number): number | undefined {
    const n = parseWhole(v)
    return n >= min && n <= max ? n : undefined
}

/** digits only, else NaN */
function parseWhole(v: string): number {
    return /^\d+$/.test(v) ? parseInt(v, 10) : NaN
}

// C23: dane.ini's documented ranges for the resolver settings (README), narrower than what a Resolver runs with.
const INI_RANGES = {
    port: { min: 1, max: 65535 },
    timeoutMs: { min: 50, max: 60000 },
    retries: { min: 0, max: 10 },
    cacheSize: { min: 1, max: 10_000_000 },
    cacheMaxBytes: { min: 65536, max: 4 * 1024 * 1024 * 1024 },
} satisfies SettingRanges

// [resolver] number keys: the setting each one is, and how an error on it reads.
/** The whole-number settings of [limits] and [tlsrpt]: their range, what an error says, where they go. */
type ConfigBody = Omit<DaneConfig, 'resolver'>
const INI_WHOLE_NUMBERS: Record<string, { min: number; max: number; what: string; set: (cfg: ConfigBody, n: number) => void }> = {
    'limits.mx_hosts': { min: 1, max: 100, what: 'not a whole number from 1 to 100', set: (c, n) => (c.limits.mxHosts = n) },
    'limits.addresses': { min: 1, max: 1000, what: 'not a whole number from 1 to 1000', set: (c, n) => (c.limits.addresses = n) },
    'tlsrpt.send_after_minutes': { min: 0, max: 2880, what: 'not a whole number of minutes from 0 to 2880', set: (c, n) => (c.tlsrpt.sendAfterMinutes = n) },
    'tlsrpt.spread_minutes': { min: 0, max: 2880, what: 'not a whole number of minutes from 0 to 2880', set: (c, n) => (c.tlsrpt.spreadMinutes = n) },
    'tlsrpt.check_seconds': { min: 1, max: 3600, what: 'not a whole number of seconds from 1 to 3600', set: (c, n) => (c.tlsrpt.checkSeconds = n) },
    'mtasts.timeout_seconds': { min: 1, max: 60, what: 'not a whole number of seconds from 1 to 60', set: (c, n) => (c.mtasts.timeoutSeconds = n) },
}

const INI_RESOLVER_NUMBERS: Record<string, { field: keyof typeof INI_RANGES; what: string }> = {
    port: { field: 'port', what: 'not a port number' },
    timeout_ms: { field: 'timeoutMs', what: `not a whole number of milliseconds from ${INI_RANGES.timeoutMs.min} to ${INI_RANGES.timeoutMs.max}` },
    retries: { field: 'retries', what: `not a whole number from ${INI_RANGES.retries.min} to ${INI_RANGES.retries.max}` },
    cache_size: { field: 'cacheSize', what: `not a whole number from ${INI_RANGES.cacheSize.min} to ${INI_RANGES.cacheSize.max}` },
    cache_max_bytes: { field: 'cacheMaxBytes', what: `not a whole number of bytes from ${INI_RANGES.cacheMaxBytes.min} to ${INI_RANGES.cacheMaxBytes.max}` },
}

/** Build the configuration; `config` is absent when any error was found. */
export function buildConfig(ini: Source, exceptions: Source): { config?: DaneConfig; errors: ConfigError[] } {
    const errors: ConfigError[] = []
    const cfg: ConfigBody = {
        policy: DEFAULTS.policy,
        log: { ...DEFAULTS.log },
        limits: { ...DEFAULTS.limits },
        tlsrpt: { ...DEFAULTS.tlsrpt },
        mtasts: { ...DEFAULTS.mtasts },
        domains: new Map(),
        exceptions: new Set(),
    }
    // the [resolver] settings as written, each checked on its line by resolverSettingProblem(), all together by resolverSettings()
    const resolver: ResolverInput = { ...DEFAULTS.resolver }
    const resolverLines: Partial<Record<keyof ResolverInput, number>> = {}
    let section = 'main'
    let tlsrptLine = 0
    ini.lines.forEach((raw, i) => {
        const line = i + 1
        const err = (message: string) => errors.push({ file: ini.file, line, message })
        const text = raw.trim()
        if (!text || text.startsWith(';') || text.startsWith('#')) return
        const sec = /^\[([^\]]+)\]$/.exec(text)
        if (sec) {
            section = sec[1].trim().toLowerCase()
            if (!['main', 'resolver', 'log', 'limits', 'domains', 'tlsrpt', 'mtasts'].includes(section)) err(`unknown section [${section}]`)
            return
        }
        const kv = /^([^=]+?)\s*=\s*(.*?)\s*$/.exec(text)
        if (!kv) return err(`cannot read "${text}": expected key=value`)
        const key = kv[1].trim().toLowerCase()
        const value = kv[2].replace(/^"(.*)"$/, '$1')
        const bad = (what: string) => err(`${section}.${key}: ${what}, got "${value}"`)
        const whole = INI_WHOLE_NUMBERS[`${section}.${key}`]
        if (whole) {
            const n = parseIntIn(value, whole.min, whole.max)
            if (n === undefined) return bad(whole.what)
            return whole.set(cfg, n)
        }
        switch (`${section}.${key}`) {
            case 'main.policy':
                if (isPolicy(value)) cfg.policy = value
                else bad(`unknown policy word (one of ${POLICY_WORDS.join(', ')})`)
                return
            case 'resolver.address':
                resolverLines.address = line
                if (resolverSettingProblem('address', value)) return bad('not an IP address')
                resolver.address = value
                return
            case 'resolver.port':
            case 'resolver.timeout_ms':
            case 'resolver.retries':
            case 'resolver.cache_size':
            case 'resolver.cache_max_bytes': {
                const { field, what } = INI_RESOLVER_NUMBERS[key]
                const n = parseWhole(value)
                resolverLines[field] = line
                if (resolverSettingProblem(field, n, INI_RANGES)) return bad(what)
                resolver[field] = n
                return
            }
            case 'resolver.trust_non_loopback': {
                const b = parseBool(value)
                if (b === undefined) return bad('not true or false')
                resolver.trustNonLoopback = b
                return
            }
            case 'log.destination':
                if (!value) return bad('empty')
                cfg.log.destination = value
                return
            case 'log.level':
                if (!LOG_LEVELS.includes(value)) return bad(`unknown level (one of ${LOG_LEVELS.join(', ')})`)
                cfg.log.level = value
                return
            case 'tlsrpt.enabled': {
                const b = parseBool(value)
                if (b === undefined) return bad('not true or false')
                cfg.tlsrpt.enabled = b
                tlsrptLine = line
                return
            }
            case 'tlsrpt.organization_name':
                if (!value || [...value].some((c) => c.charCodeAt(0) < 32)) return bad('empty or not one line of text')
                cfg.tlsrpt.organizationName = value
                return
            case 'tlsrpt.contact_info':
            case 'tlsrpt.from':
                if (!ADDR_SPEC.test(value)) return bad('not one mail address (local@domain)')
                if (key === 'from') cfg.tlsrpt.from = value
                else cfg.tlsrpt.contactInfo = value
                return
            case 'tlsrpt.directory':
                if (!value) return bad('empty')
                cfg.tlsrpt.directory = value
                return
            case 'tlsrpt.https_ca_file':
                cfg.tlsrpt.httpsCaFile = value
                return
            case 'mtasts.enabled': {
                const b = parseBool(value)
                if (b === undefined) return bad('not true or false')
                cfg.mtasts.enabled = b
                return
            }
            case 'mtasts.ca_file':
                cfg.mtasts.caFile = value
                return
            case 'mtasts.directory':
                if (!value) return bad('empty')
                cfg.mtasts.directory = value
                return
            // the Redis settings of [tlsrpt] and [mtasts], read the same way
            case 'tlsrpt.store':
            case 'mtasts.store':
                if (value !== 'file' && value !== 'redis') return bad('not file or redis')
                cfg[section as 'tlsrpt' | 'mtasts'].store = value
                return
            case 'tlsrpt.redis_url':
            case 'mtasts.redis_url': {
                // not echoed: it may hold a password
                const problem = redisUrlProblem(value)
                if (problem) return err(`${section}.${key}: ${problem} (redis[s]://[[user]:password@]host[:port][/db])`)
                cfg[section as 'tlsrpt' | 'mtasts'].redisUrl = value
                return
            }
            case 'tlsrpt.redis_prefix':
            case 'mtasts.redis_prefix':
                if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(value)) return bad('not 1 to 64 letters, digits or _.:-')
                cfg[section as 'tlsrpt' | 'mtasts'].redisPrefix = value
                return
        }
        if (section === 'domains') {
            const name = normalizeDomain(kv[1])
            if (!DOMAIN_RE.test(name)) return err(`domains: "${kv[1].trim()}" is not a domain name (use example.com or .example.com)`)
            if (!isPolicy(value)) return bad(`unknown policy word (one of ${POLICY_WORDS.join(', ')})`)
            if (cfg.domains.has(name)) return err(`domains: ${name} is listed twice`)
            cfg.domains.set(name, value)
            return
        }
        err(`unknown setting ${section}.${key}`)
    })
    // C1: the AD bit is trusted only from a loopback resolver unless the operator says the path is secured
    const checkedResolver = resolverSettings(resolver, INI_RANGES)
    for (const e of 'errors' in checkedResolver ? checkedResolver.errors : []) {
        errors.push({
            file: ini.file,
            line: resolverLines[e.field] ?? 0,
            message:
                e.kind === 'not-loopback'
                    ? `resolver.address ${resolver.address} is not a loopback address: its AD bit cannot be trusted over the network. Run a validating resolver on 127.0.0.1, or set trust_non_loopback=true if the path to it is secured (IPsec, a private link)`
                    : e.message,
        })
    }
    exceptions.lines.forEach((raw, i) => {
        const text = raw.replace(/#.*$/, '').trim()
        if (!text) return
        const name = normalizeDomain(text)
        if (!DOMAIN_RE.test(name) || /\s/.test(text)) {
            errors.push({ file: exceptions.file, line: i + 1, message: `"${text}" is not a domain name (one domain a line, # comments)` })
            return
        }
        cfg.exceptions.add(name)
    })
    // RFC 8460 4.4: a report names who sent it and how to reach them; there is no sensible default for either
    if (cfg.tlsrpt.sendAfterMinutes + cfg.tlsrpt.spreadMinutes > 2880)
        errors.push({
            file: ini.file,
            line: tlsrptLine,
            message: 'tlsrpt.send_after_minutes + tlsrpt.spread_minutes must not exceed 2880 (two days: the sender looks back four)',
        })
    if (cfg.tlsrpt.enabled) {
        if (!cfg.tlsrpt.organizationName) errors.push({ file: ini.file, line: tlsrptLine, message: 'tlsrpt.enabled=true needs tlsrpt.organization_name' })
        if (!cfg.tlsrpt.contactInfo)
            errors.push({ file: ini.file, line: tlsrptLine, message: 'tlsrpt.enabled=true needs tlsrpt.contact_info (a mail address)' })
    }
    if (errors.length || 'errors' in checkedResolver) return { errors }
    const { policy, log, limits, domains, tlsrpt, mtasts } = cfg
    return { config: { policy, resolver: checkedResolver.settings, log, limits, domains, exceptions: cfg.exceptions, tlsrpt, mtasts }, errors }
}

function isPolicy(v: string): v is PolicyWord {
    return (POLICY_WORDS as readonly string[]).includes(v)
}

/** The most specific entry of `table` for `domain`: exact name, then `.parent` entries, nearest first (C21). */
export function mostSpecific<T>(domain: string, lookup: (key: string) => T | undefined): { key: string; value: T } | undefined {
    const d = normalizeDomain(domain)
    const exact = lookup(d)
    if (exact !== undefined) return { key: d, value: exact }
    const labels = d.split('.')
    for (let i = 1; i < labels.length; i++) {
        const key = `.${labels.slice(i).join('.')}`
        const v = lookup(key)
        if (v !== undefined) return { key, value: v }
    }
    return undefined
}

/** An exact name is more specific than `.name`, and a longer name more specific than its parents. */
function specificity(key: string): number {
    return key.replace(/^\./, '').split('.').length * 2 + (key.startsWith('.') ? 0 : 1)
}

export interface DomainPolicy {
    policy: PolicyWord
    exception: boolean
    matched?: string // the entry that decided, for the log
}

/** policyFor's answers by configuration and domain: a configuration never changes once built (a reload builds another) */
const policies = new WeakMap<DaneConfig, Map<string, DomainPolicy>>()
const MAX_REMEMBERED_POLICIES = 10_000

// C21 + C22: the policy for one destination domain
export function policyFor(cfg: DaneConfig, domain: string): DomainPolicy {
    let known = policies.get(cfg)
    if (!known) policies.set(cfg, (known = new Map()))
    return remembered(known, domain, MAX_REMEMBERED_POLICIES, () => Object.freeze(findPolicy(cfg, domain)))
}

function findPolicy(cfg: DaneConfig, domain: string): DomainPolicy {
    const override = mostSpecific(domain, (k) => cfg.domains.get(k))
    const policy = override ? override.value : cfg.policy
    const exc = mostSpecific(domain, (k) => (cfg.exceptions.has(k) ? true : undefined))
    // the most specific entry wins across both files: a [domains] entry for sub.example.com beats .example.com on the list
    const excWins = exc && (!override || specificity(exc.key) >= specificity(override.key))
    // the exception list turns DANE enforcement into opportunistic TLS; it never strengthens or weakens other words
    if (excWins && (policy === 'dane' || policy === 'dane-only')) return { policy: 'may', exception: true, matched: exc.key }
    return { policy, exception: false, matched: override?.key }
}

export function formatErrors(errors: ConfigError[]): string {
    return errors.map((e) => `${e.file}:${e.line}: ${e.message}`).join('\n')
}
