// dane.ini and the exception list → one typed, validated configuration.
// Pure: it takes the files' lines (Haraka's config loader reads them, with
// `data` type so that line numbers survive) and returns the configuration or
// errors that name file and line (C23).
import net from 'node:net'
import { POLICY_WORDS, PolicyWord } from './policy'
import { isLoopbackAddress } from './resolver'

export interface ResolverSettings {
    address: string
    port: number
    timeoutMs: number
    retries: number
    cacheSize: number
    /** C30: the answer cache's bound in bytes (an answer larger than 1/16 of it is not cached) */
    cacheMaxBytes: number
    trustNonLoopback: boolean
}

/** C30: work per destination, as Postfix's smtp_mx_address_limit bounds it */
export interface Limits {
    /** MX hosts looked up per destination, lowest preference first */
    mxHosts: number
    /** addresses handed to Haraka per destination, in MX order */
    addresses: number
}

export interface DaneConfig {
    policy: PolicyWord
    resolver: ResolverSettings
    log: { destination: string; level: string }
    limits: Limits
    /** Per-domain overrides: 'example.com' exact, '.example.com' its subdomains (C21). */
    domains: Map<string, PolicyWord>
    /** The danefail-style exception list, same name syntax (C22). */
    exceptions: Set<string>
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
    resolver: { address: '127.0.0.1', port: 53, timeoutMs: 2000, retries: 2, cacheSize: 10000, cacheMaxBytes: 32 * 1024 * 1024, trustNonLoopback: false },
    log: { destination: 'stdout', level: 'info' },
    limits: { mxHosts: 10, addresses: 20 },
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

// RFC 1035 2.3.1 (with RFC 1123 digits), case-insensitive, optional leading dot for "subdomains of"
const DOMAIN_RE = /^\.?(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/

export function normalizeDomain(d: string): string {
    return d.trim().toLowerCase().replace(/\.$/, '')
}

export const isLoopback = isLoopbackAddress

function parseBool(v: string): boolean | undefined {
    if (/^(true|yes|on|1)$/i.test(v)) return true
    if (/^(false|no|off|0)$/i.test(v)) return false
    return undefined
}

function parseIntIn(v: string, min: number, max: number): number | undefined {
    if (!/^\d+$/.test(v)) return undefined
    const n = parseInt(v, 10)
    return n >= min && n <= max ? n : undefined
}

/** Build the configuration; `config` is absent when any error was found. */
export function buildConfig(ini: Source, exceptions: Source): { config?: DaneConfig; errors: ConfigError[] } {
    const errors: ConfigError[] = []
    const cfg: DaneConfig = {
        policy: DEFAULTS.policy,
        resolver: { ...DEFAULTS.resolver },
        log: { ...DEFAULTS.log },
        limits: { ...DEFAULTS.limits },
        domains: new Map(),
        exceptions: new Set(),
    }
    let section = 'main'
    let addressLine = 0
    ini.lines.forEach((raw, i) => {
        const line = i + 1
        const err = (message: string) => errors.push({ file: ini.file, line, message })
        const text = raw.trim()
        if (!text || text.startsWith(';') || text.startsWith('#')) return
        const sec = /^\[([^\]]+)\]$/.exec(text)
        if (sec) {
            section = sec[1].trim().toLowerCase()
            if (!['main', 'resolver', 'log', 'limits', 'domains'].includes(section)) err(`unknown section [${section}]`)
            return
        }
        const kv = /^([^=]+?)\s*=\s*(.*?)\s*$/.exec(text)
        if (!kv) return err(`cannot read "${text}": expected key=value`)
        const key = kv[1].trim().toLowerCase()
        const value = kv[2].replace(/^"(.*)"$/, '$1')
        const bad = (what: string) => err(`${section}.${key}: ${what}, got "${value}"`)
        switch (`${section}.${key}`) {
            case 'main.policy':
                if (isPolicy(value)) cfg.policy = value
                else bad(`unknown policy word (one of ${POLICY_WORDS.join(', ')})`)
                return
            case 'resolver.address':
                addressLine = line
                if (net.isIP(value)) cfg.resolver.address = value
                else bad('not an IP address')
                return
            case 'resolver.port': {
                const n = parseIntIn(value, 1, 65535)
                if (n === undefined) return bad('not a port number')
                cfg.resolver.port = n
                return
            }
            case 'resolver.timeout_ms': {
                const n = parseIntIn(value, 50, 60000)
                if (n === undefined) return bad('not a whole number of milliseconds from 50 to 60000')
                cfg.resolver.timeoutMs = n
                return
            }
            case 'resolver.retries': {
                const n = parseIntIn(value, 0, 10)
                if (n === undefined) return bad('not a whole number from 0 to 10')
                cfg.resolver.retries = n
                return
            }
            case 'resolver.cache_size': {
                const n = parseIntIn(value, 1, 10_000_000)
                if (n === undefined) return bad('not a whole number from 1 to 10000000')
                cfg.resolver.cacheSize = n
                return
            }
            case 'resolver.cache_max_bytes': {
                const n = parseIntIn(value, 65536, 4 * 1024 * 1024 * 1024)
                if (n === undefined) return bad('not a whole number of bytes from 65536 to 4294967296')
                cfg.resolver.cacheMaxBytes = n
                return
            }
            case 'limits.mx_hosts': {
                const n = parseIntIn(value, 1, 100)
                if (n === undefined) return bad('not a whole number from 1 to 100')
                cfg.limits.mxHosts = n
                return
            }
            case 'limits.addresses': {
                const n = parseIntIn(value, 1, 1000)
                if (n === undefined) return bad('not a whole number from 1 to 1000')
                cfg.limits.addresses = n
                return
            }
            case 'resolver.trust_non_loopback': {
                const b = parseBool(value)
                if (b === undefined) return bad('not true or false')
                cfg.resolver.trustNonLoopback = b
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
    if (!isLoopback(cfg.resolver.address) && !cfg.resolver.trustNonLoopback) {
        errors.push({
            file: ini.file,
            line: addressLine,
            message: `resolver.address ${cfg.resolver.address} is not a loopback address: its AD bit cannot be trusted over the network. Run a validating resolver on 127.0.0.1, or set trust_non_loopback=true if the path to it is secured (IPsec, a private link)`,
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
    return errors.length ? { errors } : { config: cfg, errors }
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

// C21 + C22: the policy for one destination domain
export function policyFor(cfg: DaneConfig, domain: string): DomainPolicy {
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
