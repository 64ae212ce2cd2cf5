// The RFC 7672 decision for one recipient domain: MX → addresses → TLSA, host
// by host. It asks the resolver through the `lookup` function it is given and
// decides nothing by I/O of its own; the result is plain data with a reason
// for every choice, and the delivery log prints those reasons verbatim.
import { domainToASCII } from 'node:url'
import type { Answer, RRType } from './resolver'
import { remembered } from './remembered'
import { TlsaRecord, tlsaFromRdata, usableRecords, unusableReason } from './tlsa'
import type { ResultType } from './result-type'
import { MAX_CACHE_TTL_S } from './dns/cache'
import type { StsApplied } from './mtasts/apply'

export type Lookup = (name: string, type: RRType) => Promise<Answer>

/** Operator policy for a destination (C21, C22). */
export type PolicyWord = 'dane-only' | 'dane' | 'may' | 'encrypt' | 'none'
export const POLICY_WORDS: readonly PolicyWord[] = ['dane-only', 'dane', 'may', 'encrypt', 'none']

/**
 * What Haraka must do with one MX host:
 * - dane: STARTTLS mandatory, the chain must match the TLSA records
 * - encrypt: STARTTLS mandatory, no authentication (C12, or the `encrypt` policy)
 * - opportunistic: Haraka's usual STARTTLS-if-offered
 * - plaintext: no TLS at all (the `none` policy)
 * - sts: STARTTLS mandatory, a PKIX-valid certificate for the MX host name (an MTA-STS policy in
 *   enforce mode allows this host, which has no DANE: lib/mtasts/apply, C37)
 * - skip: do not connect (C7, C11, or `dane-only` without DANE, or not among an enforced MTA-STS policy's mx)
 */
export type HostMode = 'dane' | 'encrypt' | 'opportunistic' | 'plaintext' | 'sts' | 'skip'

export type TlsaState = 'secure' | 'none' | 'insecure' | 'failed' | 'not-looked-up'

export interface HostDecision {
    name: string // MX host name as published (lower-case)
    preference: number
    addresses: string[] // validated addresses, IPv4 first
    addressSecure: boolean
    cname?: string // the fully expanded name when the host is a CNAME
    tlsaBase?: string // owner base of the TLSA RRset in use (C8)
    referenceNames: string[] // names a DANE-TA leaf may carry (C16)
    /** owner: where the RRset in use was found (after CNAME/DNAME); asked: the TLSA base domains looked up, in order */
    tlsa: { state: TlsaState; records: TlsaRecord[]; usable: number; owner?: string; detail?: string; asked?: string[] }
    mode: HostMode
    reason: string
    /** RFC 8460 result type when the host is skipped for a DNS reason (C25). */
    resultType?: ResultType
    /** address families whose lookup failed and which contribute no address (C7) */
    failedFamilies?: RRType[]
    /** MTA-STS for this host without DANE (lib/mtasts/apply): the policy's mode, and the mx pattern that allows it */
    sts?: { mode: 'enforce' | 'testing'; allowedBy?: string }
}

export type Action = 'deliver' | 'defer' | 'bounce'

export interface Decision {
    domain: string
    policy: PolicyWord
    exception: boolean // the danefail list turned enforcement off (C22)
    mxSecure: boolean
    implicitMx: boolean
    action: Action
    reason: string
    resultType?: ResultType
    hosts: HostDecision[]
    /** C30: how many MX hosts were beyond the limit of `limit`, not considered */
    notConsidered?: { count: number; limit: number }
    /** MTA-STS, when it was asked (lib/mtasts/apply): the policy in force, or why there is none */
    sts?: StsApplied
}

/** C30: work per destination (lib/config's [limits]) */
export interface DecisionLimits {
    /** MX hosts looked up, lowest preference first */
    mxHosts: number
    /** addresses handed on, in MX order */
    addresses: number
}

export const DEFAULT_LIMITS: DecisionLimits = { mxHosts: 10, addresses: 20 }

export interface DecideOptions {
    policy?: PolicyWord
    exception?: boolean
    limits?: DecisionLimits
    /** Random source for shuffling MX hosts of equal preference (tests pass a fixed one). */
    random?: () => number
    /** Where host decisions are kept while the answers they came from last (the resolver's cache). */
    memo?: HostMemo
    /**
     * Cold DNS: under a secure MX RRset, when the policy looks at TLSA records, ask for each host's
     * TLSA records at its own name beside its addresses instead of after them. Only the time changes:
     * the lookup the decision makes later joins this one or finds it cached, and nothing is decided
     * from it unless the rules ask for it. Off by default, decided by `npm run bench -- policy`: on a
     * loopback unbound it saves 0.1-0.3 ms of a first decision (once per destination and TTL), and a
     * host whose addresses turn out insecure pays one query more (4 instead of 3), the very TLSA
     * query RFC 7672 2.2.2 spares such hosts (C7).
     */
    tlsaAhead?: boolean
}

/**
 * A place to keep host decisions (lib/resolver's cache, within its bounds): `remember` keeps a
 * value for `ttlS` seconds, `recall` gives it back while it lasts.
 */
export interface HostMemo {
    remember(key: string, value: unknown, ttlS: number, bytes: number): void
    recall(key: string): unknown
}

/** recipient domains whose A-label form is remembered at most (past it, the memory starts again): C30, a few MB at most */
const MAX_REMEMBERED_DOMAINS = 4096
/** longer is no domain name (RFC 1035 2.3.4): converted, never remembered */
const MAX_REMEMBERED_LENGTH = 253
const asciiForms = new Map<string, string>()

/**
 * The recipient domain in the A-label form it is looked up in (an internationalised domain, as Haraka's own
 * MX lookup does); '' when it has none. node's domainToASCII (ICU) costs several microseconds a call and a
 * queue sends to the same domains again and again: the answer, a pure function of the name, is remembered.
 */
export function asciiDomain(domain: string): string {
    if (domain.length > MAX_REMEMBERED_LENGTH) return domainToASCII(domain)
    return remembered(asciiForms, domain, MAX_REMEMBERED_DOMAINS, () => domainToASCII(domain))
}

// RFC 7672 2.2.1 / 3: the TLSA owner for SMTP on port 25
export function tlsaQueryName(base: string): string {
    return `_25._tcp.${base}`
}

function describe(a: Answer): string {
    if (a.status === 'failed') return `${a.type} lookup for ${a.name} failed (${a.reason ?? 'unknown'})`
    return `${a.type} ${a.name}: ${a.status}${a.secure ? ', secure' : ', insecure'}`
}

// C5, RFC 7505: a null MX is the only MX record, with the root as exchange; a "." among real hosts is ignored
function isNullMx(a: Answer): boolean {
    const mx = a.mx ?? []
    return mx.length === 1 && (mx[0].exchange === '' || mx[0].exchange === '.')
}

/** MX hosts sorted by preference, duplicates removed, equal preferences shuffled (RFC 5321 5.1). */
export function orderMxHosts(mx: { preference: number; exchange: string }[], random: () => number = Math.random): { name: string; preference: number }[] {
    const best = new Map<string, number>()
    for (const m of mx) {
        const name = m.exchange.toLowerCase().replace(/\.$/, '')
        if (!name) continue // a "." exchange beside real hosts (RFC 7505 forbids the mix): not a host
        const p = best.get(name)
        if (p === undefined || m.preference < p) best.set(name, m.preference)
    }
    const hosts = [...best].map(([name, preference]) => ({ name, preference, r: random() }))
    hosts.sort((a, b) => a.preference - b.preference || a.r - b.r)
    return hosts.map(({ name, preference }) => ({ name, preference }))
}

/** The decision for one recipient domain. Never throws: a lookup that throws counts as failed. */
export async function decide(domainIn: string, lookupIn: Lookup, opts: DecideOptions = {}): Promise<Decision> {
    const lookup = safeLookup(lookupIn)
    const domain = domainIn.toLowerCase().replace(/\.$/, '')
    const policy = opts.policy ?? 'dane'
    const exception = !!opts.exception
    const base = { domain, policy, exception, implicitMx: false, mxSecure: false }
    const limits = opts.limits ?? DEFAULT_LIMITS
    // the same decision while its answers last: no lookups, only the order of equal preferences drawn again
    const memoKey = `decision ${policy} ${exception} ${limits.mxHosts} ${limits.addresses} ${opts.tlsaAhead === true} ${domain}`
    const known = opts.memo?.recall(memoKey) as KeptDecision | undefined
    if (known) return fromKept(known, limits, opts.random)

    const mx = await lookup(domain, 'MX')
    // when the MX answer stops being good, counted from its arrival (the host stages that follow take time)
    const mxExpires = Date.now() + Math.min(mx.ttl, MAX_CACHE_TTL_S) * 1000
    // C4: a failed MX lookup defers; never fall back to the domain's addresses
    if (mx.status === 'failed') {
        return { ...base, action: 'defer', reason: describe(mx), resultType: 'dnssec-invalid', hosts: [] }
    }
    // C5: NXDOMAIN is permanent
    if (mx.status === 'nxdomain') {
        return { ...base, mxSecure: mx.secure, action: 'bounce', reason: `${domain}: no such domain (NXDOMAIN)`, hosts: [] }
    }
    if (mx.status === 'ok' && isNullMx(mx)) {
        return { ...base, mxSecure: mx.secure, action: 'bounce', reason: `${domain} accepts no mail (null MX, RFC 7505)`, hosts: [] }
    }
    // C5: NODATA → implicit MX, the domain itself (RFC 5321 5.1)
    const implicitMx = mx.status === 'nodata'
    const names = implicitMx ? [{ name: domain, preference: 0 }] : orderMxHosts(mx.mx ?? [], opts.random)
    if (names.length === 0) {
        return { ...base, mxSecure: mx.secure, implicitMx, action: 'defer', reason: `${domain}: MX answer held no usable host`, hosts: [] }
    }
    const nextHop: NextHop = { domain, trust: mxTrust(mx.secure) }
    // C30: a hostile MX RRset of thousands of hosts costs at most limits.mxHosts host lookups
    const considered = names.slice(0, limits.mxHosts)
    const ahead = opts.tlsaAhead === true && nextHop.trust === 'dane' && (policy === 'dane' || policy === 'dane-only') ? lookup : undefined
    const kept = await Promise.all(considered.map((h) => hostDecision(h, lookup, policy, nextHop, opts.memo, ahead)))
    const decision = assemble(
        { ...base, mxSecure: mx.secure, implicitMx },
        kept.map((k) => k.host),
        names.length,
        limits,
    )
    // the whole decision, kept while every answer it came from lasts (the MX answer and each host's), when
    // every MX host was considered (with more, which are considered depends on the shuffle below)
    const expires = Math.min(mxExpires, ...kept.map((k) => k.expires))
    const left = Math.floor((expires - Date.now()) / 1000) - 1
    if (opts.memo && names.length <= limits.mxHosts && left >= 1) {
        const byName = new Map(kept.map((k) => [k.host.name, k.host]))
        const hosts = names.map((n) => byName.get(n.name)!)
        const orders = possibleOrders(hosts)
        const fixedOrder = orders === 1
        const k: KeptDecision = Object.freeze({
            head: Object.freeze({ ...base, mxSecure: mx.secure, implicitMx }),
            hosts: Object.freeze(hosts),
            fixedOrder,
            assembled: new Map(),
        })
        // C30: counted with its hosts, which it holds whether or not their own entries are still in the cache, and
        // with the assembled decisions it may come to hold
        opts.memo.remember(memoKey, k, left, 512 + orders * assembledBytes(hosts) + hosts.reduce((n, h) => n + hostDecisionBytes(h), 0))
        // this message's decision is the first of its order: kept, and shared from now on like the others
        return keepAssembled(k, orderKey(k, hosts), decision)
    }
    return decision
}

/**
 * C30: an estimate of what one assembled decision of these hosts holds beside them: its reason (every host's
 * name, and every reason when all are skipped), the copies of hosts cut down by the address limit (a longer
 * reason, fewer addresses), and the arrays of it and of its log summary (lib/log).
 */
function assembledBytes(hosts: readonly HostDecision[]): number {
    return 512 + hosts.reduce((n, h) => n + 256 + 2 * (2 * h.name.length + 2 * h.reason.length + 160) + 16 * h.addresses.length, 0)
}

/** how many orders equal preferences allow (the product of each preference's count factorial), at most MAX_KEPT_ORDERS */
export function possibleOrders(hosts: readonly Pick<HostDecision, 'preference'>[]): number {
    const count = new Map<number, number>()
    let orders = 1
    for (const h of hosts) {
        const n = (count.get(h.preference) ?? 0) + 1
        count.set(h.preference, n)
        orders = Math.min(orders * n, MAX_KEPT_ORDERS)
    }
    return orders
}

/** The assembled decisions one kept decision holds at most, one per order of its hosts (4 hosts of equal preference: 24 orders). */
const MAX_KEPT_ORDERS = 24

/**
 * A whole decision as kept (DecideOptions.memo): its head and its hosts, before their order is drawn, and
 * the decisions already assembled from it, by the order of their hosts. The same order of the same hosts
 * assembles the same decision, so it is assembled once and then shared (frozen) by every message that draws
 * that order: only the drawing is done for each message, and only where two hosts share a preference.
 */
interface KeptDecision {
    head: Omit<Decision, 'action' | 'reason' | 'resultType' | 'hosts'>
    hosts: readonly HostDecision[]
    /** no two hosts share a preference: there is one order, the one `hosts` is in */
    fixedOrder: boolean
    assembled: Map<string, Decision>
}

/** The hosts in MX order (equal preferences shuffled, RFC 5321 5.1), within the limits, and the outcome (C11). */
function assemble(head: KeptDecision['head'], ordered: HostDecision[], mxCount: number, limits: DecisionLimits): Decision {
    const beyond = mxCount > ordered.length ? { notConsidered: { count: mxCount - ordered.length, limit: limits.mxHosts } } : {}
    return conclude({ ...head, ...beyond, action: 'deliver', reason: '', hosts: withinAddressLimit(ordered, limits.addresses) })
}

/** A kept decision for this message: its hosts in an order drawn again (equal preferences, C3), assembled once per order. */
function fromKept(k: KeptDecision, limits: DecisionLimits, random?: () => number): Decision {
    let hosts: readonly HostDecision[] = k.hosts
    if (!k.fixedOrder) {
        const byName = new Map(k.hosts.map((h) => [h.name, h]))
        hosts = orderMxHosts(
            k.hosts.map((h) => ({ preference: h.preference, exchange: h.name })),
            random,
        ).map((o) => byName.get(o.name)!)
    }
    const key = orderKey(k, hosts)
    return k.assembled.get(key) ?? keepAssembled(k, key, assemble(k.head, [...hosts], k.hosts.length, limits))
}

/** the key of one order of a kept decision's hosts in its `assembled` */
function orderKey(k: KeptDecision, hosts: readonly HostDecision[]): string {
    return k.fixedOrder ? '' : hosts.map((h) => h.name).join(' ')
}

/** An assembled decision, frozen, kept under its order's key (up to MAX_KEPT_ORDERS of them). */
function keepAssembled(k: KeptDecision, key: string, d: Decision): Decision {
    // shared by the messages that draw this order: nothing may change it (lib/mtasts/apply makes a new one), nor
    // the copies of hosts the address limit cut down (the kept hosts themselves are frozen already)
    for (const h of d.hosts) {
        if (Object.isFrozen(h)) continue
        Object.freeze(h.addresses)
        Object.freeze(h)
    }
    Object.freeze(d.hosts)
    Object.freeze(d)
    if (k.assembled.size < MAX_KEPT_ORDERS) k.assembled.set(key, d)
    return d
}

// C30: at most `limit` addresses in all, in MX order; a host left with none is not connected to
function withinAddressLimit(hosts: HostDecision[], limit: number): HostDecision[] {
    let left = limit
    return hosts.map((h) => {
        if (h.mode === 'skip') return h
        if (left <= 0)
            return {
                ...h,
                addresses: [],
                mode: 'skip' as const,
                reason: `${h.reason}; not used: the limit of ${limit} address(es) per destination was reached`,
            }
        const kept = h.addresses.slice(0, left)
        left -= kept.length
        return kept.length === h.addresses.length
            ? h
            : { ...h, addresses: kept, reason: `${h.reason}; ${h.addresses.length - kept.length} address(es) beyond the limit of ${limit} not used` }
    })
}

/**
 * C11: the outcome of a decision from its hosts (every MX host skipped → defer, otherwise deliver to the
 * hosts left) and its reason; also after MTA-STS changed some hosts (lib/mtasts/apply).
 */
export function conclude(d: Decision): Decision {
    const usable = d.hosts.filter((h) => h.mode !== 'skip')
    const mxWord = d.implicitMx ? 'implicit MX' : `MX${d.mxSecure ? ' (secure)' : ' (insecure)'}`
    const n = d.notConsidered
    const beyond = n ? ` (${n.count} more MX host(s) beyond the limit of ${n.limit} not considered)` : ''
    if (usable.length === 0) {
        const why = d.hosts.map((h) => `${h.name}: ${h.reason}`).join('; ')
        const resultType = d.hosts.find((h) => h.resultType)?.resultType
        return { ...d, action: 'defer', reason: `every MX host was skipped (${why})${beyond}`, resultType }
    }
    const modes = usable.map((h) => `${h.name}=${h.mode}`).join(', ')
    return { ...d, action: 'deliver', reason: `${mxWord}: ${modes}${beyond}` }
}

function safeLookup(lookup: Lookup): Lookup {
    return async (name, type) => {
        try {
            return await lookup(name, type)
        } catch (err) {
            return {
                name,
                type,
                status: 'failed',
                secure: false,
                canonicalName: name,
                cnames: [],
                ttl: 0,
                rcode: -1,
                reason: `lookup threw: ${(err as Error).message ?? String(err)}`,
            }
        }
    }
}

interface AddressResult {
    ok: boolean
    /** the addresses of the families whose lookup succeeded, IPv4 first */
    addresses: string[]
    /** judged from the answers that succeeded (C7) */
    secure: boolean
    /** the fully expanded name when the answers came through a CNAME chain */
    cname?: string
    /** the families whose lookup failed: they contribute no address (C7) */
    failed: RRType[]
    /** what the failed families said, for the host's reason */
    failureNote?: string
    reason: string
    resultType?: ResultType
}

// C7: A and AAAA of one MX host. A family whose lookup fails contributes no addresses and is
// named in the reason; the host is skipped only when no family yields an address, and its
// security is judged from the answers that succeeded (Postfix keeps the IPv4 answer when the
// AAAA denial is broken). A failed family is never used.
export async function resolveHostAddresses(name: string, lookup: Lookup): Promise<AddressResult> {
    const answers = await Promise.all([lookup(name, 'A'), lookup(name, 'AAAA')])
    const good = answers.filter((x) => x.status !== 'failed')
    const bad = answers.filter((x) => x.status === 'failed')
    const failed = bad.map((x) => x.type)
    const failures = bad.map(describe).join('; ')
    const addresses = good.flatMap((x) => x.addresses ?? [])
    if (addresses.length === 0) {
        if (bad.length === 0) return { ok: false, addresses, secure: false, failed, reason: `${name} has no A or AAAA records` }
        const rest = good.length ? `; ${good.map((x) => x.type).join(', ')}: no addresses` : ''
        return { ok: false, addresses, secure: false, failed, reason: `${failures}${rest}`, resultType: 'dnssec-invalid' }
    }
    // an answer without addresses (NODATA) still tells whether the name is signed
    const secure = good.every((x) => x.secure)
    const withCname = good.find((x) => x.cnames.length > 0)
    const cname = withCname ? withCname.canonicalName : undefined
    const failureNote = bad.length ? `${failures}: ${failed.join(', ')} not used` : undefined
    const reason = `addresses ${secure ? 'secure' : 'insecure'}${failureNote ? `; ${failureNote}` : ''}`
    return { ok: true, addresses, secure, cname, failed, failureNote, reason }
}

/**
 * RFC 7672 2.2.2, RFC 7671 7 (C8): the TLSA base domains to try, in order, or why there are none.
 * - secure addresses: the fully expanded name first (when a CNAME chain was followed), then the MX name;
 * - insecure addresses reached through a CNAME: the MX name alone, if its own CNAME record is secure
 *   (an explicit CNAME query, answered from the alias RRset without chasing the insecure target);
 * - insecure addresses otherwise: none (C7).
 * A CNAME lookup that fails leaves DANE undecidable: the host is skipped (C11), never downgraded.
 */
export type TlsaBaseDomains = { kind: 'candidates'; names: string[]; why?: string } | { kind: 'none'; reason: string } | { kind: 'failed'; reason: string }

export async function tlsaBaseDomains(host: string, addr: Pick<AddressResult, 'secure' | 'cname'>, lookup: Lookup): Promise<TlsaBaseDomains> {
    if (addr.secure) return { kind: 'candidates', names: addr.cname && addr.cname !== host ? [addr.cname, host] : [host] }
    if (!addr.cname || addr.cname === host) return { kind: 'none', reason: 'addresses insecure: no TLSA lookup, opportunistic TLS' }
    const alias = await lookup(host, 'CNAME')
    if (alias.status === 'failed') return { kind: 'failed', reason: `addresses insecure through CNAME ${addr.cname}, and ${describe(alias)}: host skipped` }
    if (alias.status === 'ok' && alias.secure) {
        return { kind: 'candidates', names: [host], why: `addresses insecure (CNAME to ${addr.cname}), but the CNAME at ${host} is secure` }
    }
    return { kind: 'none', reason: `addresses insecure and the CNAME at ${host} is insecure: no TLSA lookup, opportunistic TLS` }
}

/**
 * C6, RFC 7672 2.2.1: how far the MX RRset is trusted, named as Postfix names its levels (tls.h
 * TLS_LEV_DANE, TLS_LEV_HALF_DANE). 'dane': the MX RRset is secure, its host names are trusted, and
 * the next-hop domain is a reference identifier. 'half-dane': it is insecure; DANE still applies host
 * by host to MX hosts with secure address and TLSA records, but the next-hop domain never is one.
 */
export type MxTrust = 'dane' | 'half-dane'

export function mxTrust(mxSecure: boolean): MxTrust {
    return mxSecure ? 'dane' : 'half-dane'
}

/** The next hop as RFC 7672 3.2.2 sees it: the recipient domain, and how far its MX RRset is trusted. */
export interface NextHop {
    domain: string
    trust: MxTrust
}

// RFC 7672 3.2.2 (C16): the names a DANE-TA leaf may carry: the TLSA base domain, the MX host name
// when CNAME expansion changed the base, and the next-hop domain only under a secure MX RRset (C6)
export function referenceIdentifiers(host: string, tlsaBase: string, nextHop?: NextHop): string[] {
    const names = [tlsaBase, host]
    if (nextHop?.trust === 'dane') names.push(nextHop.domain)
    return [...new Set(names)]
}

/**
 * C19, RFC 7672 8.1: the SNI name of a connection the plugin makes: the TLSA base domain of a DANE
 * host; the MX host name of an MTA-STS host (`host`, the MX context's). Other hosts get none from this rule (Haraka's own choice, or the host name in the command).
 */
export function serverName(host: { mode: HostMode; tlsaBase?: string; host?: string }): string | undefined {
    if (host.mode === 'dane') return host.tlsaBase
    // RFC 8461 4.2: an MTA-STS host is authenticated by its MX host name, which SNI carries
    if (host.mode === 'sts') return host.host
    return undefined
}

/**
 * One MX host's decision, from the memo when the answers it came from are all still cached. A host
 * decision is a function of its answers, the policy word and the next hop alone, so one kept until the
 * first of those answers expires (counted from its arrival, less a second for the cache's rounding up)
 * is the decision a fresh derivation would make. A decision that saw a failed lookup, or an answer about to expire, is
 * not kept. The MX RRset's order, its shuffle and the limits are applied afresh for every message.
 */
async function hostDecision(
    h: { name: string; preference: number },
    lookup: Lookup,
    policy: PolicyWord,
    nextHop: NextHop,
    memo?: HostMemo,
    ahead?: Lookup,
): Promise<KeptHost> {
    const key = `host ${policy} ${nextHop.trust} ${nextHop.domain} ${h.name} ${h.preference}`
    const known = memo?.recall(key) as KeptHost | undefined
    if (known) return known
    // the TLSA records at the host's own name, asked beside its addresses (DecideOptions.tlsaAhead); the answer is
    // not read here: the decision's own lookup of the same name, if the rules make one, joins it or finds it cached
    if (ahead) void ahead(tlsaQueryName(h.name), 'TLSA')
    if (!memo) return { host: await decideHost(h.name, h.preference, lookup, policy, nextHop), expires: -Infinity }
    // when the first of the answers used expires, counted from each answer's arrival (the stages run one after another)
    let expires = Infinity
    let failed = false
    const tracked: Lookup = async (n, t) => {
        const a = await lookup(n, t)
        if (a.status === 'failed') failed = true
        expires = Math.min(expires, Date.now() + a.ttl * 1000)
        return a
    }
    const host = await decideHost(h.name, h.preference, tracked, policy, nextHop)
    // no longer than anything is kept in the cache (MAX_CACHE_TTL_S), whatever the TTLs
    const left = Math.min((expires - Date.now()) / 1000 - 1, MAX_CACHE_TTL_S)
    if (failed || !Number.isFinite(left) || left < 1) return { host, expires: -Infinity }
    const kept: KeptHost = Object.freeze({ host: frozenHost(host), expires: Date.now() + Math.floor(left) * 1000 })
    memo.remember(key, kept, Math.floor(left), hostDecisionBytes(host))
    return kept
}

/** A host decision and when the first answer it came from expires (-Infinity: not to be kept). */
interface KeptHost {
    host: HostDecision
    expires: number
}

/** A kept host decision is shared by every message that uses it: nothing may change it. */
function frozenHost(h: HostDecision): HostDecision {
    for (const r of h.tlsa.records) Object.freeze(r)
    Object.freeze(h.tlsa.records)
    if (h.tlsa.asked) Object.freeze(h.tlsa.asked)
    Object.freeze(h.tlsa)
    Object.freeze(h.addresses)
    Object.freeze(h.referenceNames)
    if (h.failedFamilies) Object.freeze(h.failedFamilies)
    return Object.freeze(h)
}

/** C30: an estimate of the memory one kept host decision takes (strings at two bytes a character). */
export function hostDecisionBytes(h: HostDecision): number {
    let n = 512 + 2 * (h.name.length + h.reason.length + (h.cname?.length ?? 0) + (h.tlsaBase?.length ?? 0) + (h.tlsa.detail?.length ?? 0))
    for (const s of [...h.addresses, ...h.referenceNames, ...(h.tlsa.asked ?? [])]) n += 64 + 2 * s.length
    for (const r of h.tlsa.records) n += 256 + r.data.length + 2 * r.text.length
    return n
}

async function decideHost(name: string, preference: number, lookup: Lookup, policy: PolicyWord, nextHop: NextHop): Promise<HostDecision> {
    const addr = await resolveHostAddresses(name, lookup)
    const host: HostDecision = {
        name,
        preference,
        addresses: addr.addresses,
        addressSecure: addr.secure,
        cname: addr.cname,
        referenceNames: [],
        tlsa: { state: 'not-looked-up', records: [], usable: 0 },
        mode: 'skip',
        reason: addr.reason,
    }
    if (addr.failed.length) host.failedFamilies = addr.failed
    if (!addr.ok) {
        if (addr.resultType) host.resultType = addr.resultType
        return host
    }
    // operator policies that do not look at TLSA at all (C21)
    if (policy === 'may') return { ...host, mode: 'opportunistic', reason: withAddressNote(addr, 'policy may: opportunistic TLS, DANE not enforced') }
    if (policy === 'encrypt') return { ...host, mode: 'encrypt', reason: withAddressNote(addr, 'policy encrypt: TLS mandatory, no authentication') }
    if (policy === 'none') return { ...host, mode: 'plaintext', reason: withAddressNote(addr, 'policy none: no TLS') }

    const bases = await tlsaBaseDomains(name, addr, lookup)
    // C8, C11: the alias's own security could not be learnt: skip, never guess
    if (bases.kind === 'failed') return { ...host, reason: withAddressNote(addr, bases.reason), resultType: 'dnssec-invalid' }
    // C7: insecure addresses → no TLSA lookup, opportunistic TLS
    if (bases.kind === 'none') return onlyDane(policy, { ...host, mode: 'opportunistic', reason: withAddressNote(addr, bases.reason) })
    const why = (text: string): string => withAddressNote(addr, bases.why ? `${bases.why}: ${text}` : text)

    let last: Answer | undefined
    const asked: string[] = []
    for (const candidate of bases.names) {
        const t = await lookup(tlsaQueryName(candidate), 'TLSA')
        last = t
        asked.push(candidate)
        // C11: TLSA lookup failure → skip the host without connecting
        if (t.status === 'failed') {
            return {
                ...host,
                mode: 'skip',
                tlsa: { state: 'failed', records: [], usable: 0, detail: t.reason, asked },
                reason: why(`${describe(t)}: host skipped`),
                resultType: 'dnssec-invalid',
            }
        }
        // C8: the first secure non-empty TLSA RRset wins; its owner is the TLSA base domain
        if (t.status === 'ok' && t.secure && (t.tlsa ?? []).length > 0) {
            const records = (t.tlsa ?? []).map(tlsaFromRdata)
            const usable = usableRecords(records)
            const referenceNames = referenceIdentifiers(name, candidate, nextHop)
            const tlsa = { state: 'secure' as const, records, usable: usable.length, owner: t.canonicalName, asked }
            if (usable.length > 0) {
                // C9: DANE applies: STARTTLS mandatory, the peer must authenticate
                return {
                    ...host,
                    tlsaBase: candidate,
                    referenceNames,
                    tlsa,
                    mode: 'dane',
                    reason: why(`${usable.length} usable TLSA record(s) at ${tlsaQueryName(candidate)}`),
                }
            }
            // C12: secure but unusable → TLS mandatory without authentication
            const unusable = [...new Set(records.map((r) => unusableReason(r) ?? ''))].join('; ')
            return onlyDane(policy, {
                ...host,
                tlsaBase: candidate,
                referenceNames,
                tlsa,
                mode: 'encrypt',
                reason: why(`TLSA at ${tlsaQueryName(candidate)} has no usable record (${unusable}): TLS mandatory, unauthenticated`),
                resultType: 'tlsa-invalid',
            })
        }
    }
    // C10: secure NODATA/NXDOMAIN, or insecure → no DANE for this host
    const state: TlsaState = last && last.secure ? 'none' : 'insecure'
    const what = state === 'none' ? 'no TLSA records (secure denial)' : 'TLSA answer insecure'
    return onlyDane(policy, {
        ...host,
        tlsa: { state, records: [], usable: 0, asked },
        mode: 'opportunistic',
        reason: why(`${what}: opportunistic TLS`),
    })
}

// C7: a reason says which address family failed and was left out, whatever else it says
function withAddressNote(addr: AddressResult, reason: string): string {
    return addr.failureNote ? `${reason}; ${addr.failureNote}` : reason
}

// C21 dane-only: a host that DANE would not authenticate is not used
function onlyDane(policy: PolicyWord, host: HostDecision): HostDecision {
    if (policy !== 'dane-only' || host.mode === 'dane') return host
    return { ...host, mode: 'skip', reason: `policy dane-only: ${host.reason}; host not used`, resultType: 'dane-required' }
}
