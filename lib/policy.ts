// The RFC 7672 decision for one recipient domain: MX → addresses → TLSA, host
// by host. It asks the resolver through the `lookup` function it is given and
// decides nothing by I/O of its own; the result is plain data with a reason
// for every choice, and the delivery log prints those reasons verbatim.
import type { Answer, RRType } from './resolver'
import { TlsaRecord, tlsaFromRdata, usableRecords, unusableReason } from './tlsa'

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
 * - skip: do not connect (C7, C11, or `dane-only` without DANE)
 */
export type HostMode = 'dane' | 'encrypt' | 'opportunistic' | 'plaintext' | 'skip'

export type TlsaState = 'secure' | 'none' | 'insecure' | 'failed' | 'not-looked-up'

export interface HostDecision {
    name: string // MX host name as published (lower-case)
    preference: number
    addresses: string[] // validated addresses, IPv4 first
    addressSecure: boolean
    cname?: string // the fully expanded name when the host is a CNAME
    tlsaBase?: string // owner base of the TLSA RRset in use (C8)
    referenceNames: string[] // names a DANE-TA leaf may carry (C16)
    tlsa: { state: TlsaState; records: TlsaRecord[]; usable: number; owner?: string; detail?: string }
    mode: HostMode
    reason: string
    /** RFC 8460 result type when the host is skipped for a DNS reason (C25). */
    resultType?: string
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
    resultType?: string
    hosts: HostDecision[]
}

export interface DecideOptions {
    policy?: PolicyWord
    exception?: boolean
    /** Random source for shuffling MX hosts of equal preference (tests pass a fixed one). */
    random?: () => number
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

    const mx = await lookup(domain, 'MX')
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
    const hosts = await Promise.all(names.map((h) => decideHost(h.name, h.preference, lookup, policy)))
    const decision: Decision = { ...base, mxSecure: mx.secure, implicitMx, action: 'deliver', reason: '', hosts }
    return finish(decision)
}

// C11: every MX host skipped → defer; otherwise deliver to the hosts left
function finish(d: Decision): Decision {
    const usable = d.hosts.filter((h) => h.mode !== 'skip')
    const mxWord = d.implicitMx ? 'implicit MX' : `MX${d.mxSecure ? ' (secure)' : ' (insecure)'}`
    if (usable.length === 0) {
        const why = d.hosts.map((h) => `${h.name}: ${h.reason}`).join('; ')
        const resultType = d.hosts.find((h) => h.resultType)?.resultType
        return { ...d, action: 'defer', reason: `every MX host was skipped (${why})`, resultType }
    }
    const modes = usable.map((h) => `${h.name}=${h.mode}`).join(', ')
    return { ...d, action: 'deliver', reason: `${mxWord}: ${modes}` }
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
    addresses: string[]
    secure: boolean
    cname?: string
    cnameSecure: boolean
    reason: string
}

// C7: A and AAAA of one MX host; any failure skips the host
export async function resolveHostAddresses(name: string, lookup: Lookup): Promise<AddressResult> {
    const [a, aaaa] = await Promise.all([lookup(name, 'A'), lookup(name, 'AAAA')])
    const failed = [a, aaaa].filter((x) => x.status === 'failed')
    if (failed.length) {
        return { ok: false, addresses: [], secure: false, cnameSecure: false, reason: failed.map(describe).join('; ') }
    }
    const addresses = [...(a.addresses ?? []), ...(aaaa.addresses ?? [])]
    if (addresses.length === 0) {
        return { ok: false, addresses, secure: false, cnameSecure: false, reason: `${name} has no A or AAAA records` }
    }
    // an answer without addresses (NODATA) still tells whether the name is signed
    const secure = a.secure && aaaa.secure
    const withCname = [a, aaaa].find((x) => x.cnames.length > 0)
    const cname = withCname ? withCname.canonicalName : undefined
    return { ok: true, addresses, secure, cname, cnameSecure: secure, reason: secure ? 'addresses secure' : 'addresses insecure' }
}

// RFC 7672 2.2.2, RFC 7671 7 (C8): the TLSA base domains to try, in order
export function tlsaCandidates(host: string, cname: string | undefined, cnameSecure: boolean): string[] {
    if (cname && cname !== host && cnameSecure) return [cname, host]
    return [host]
}

// C16: the names a DANE-TA leaf certificate may carry
export function referenceIdentifiers(host: string, tlsaBase: string): string[] {
    return tlsaBase === host ? [host] : [tlsaBase, host]
}

async function decideHost(name: string, preference: number, lookup: Lookup, policy: PolicyWord): Promise<HostDecision> {
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
    if (!addr.ok) {
        host.resultType = 'dnssec-invalid'
        return host
    }
    // operator policies that do not look at TLSA at all (C21)
    if (policy === 'may') return { ...host, mode: 'opportunistic', reason: 'policy may: opportunistic TLS, DANE not enforced' }
    if (policy === 'encrypt') return { ...host, mode: 'encrypt', reason: 'policy encrypt: TLS mandatory, no authentication' }
    if (policy === 'none') return { ...host, mode: 'plaintext', reason: 'policy none: no TLS' }

    // C7: insecure addresses → no TLSA lookup, opportunistic TLS
    if (!addr.secure) {
        return onlyDane(policy, { ...host, mode: 'opportunistic', reason: 'addresses insecure: no TLSA lookup, opportunistic TLS' })
    }

    const candidates = tlsaCandidates(name, addr.cname, addr.cnameSecure)
    let last: Answer | undefined
    for (const candidate of candidates) {
        const t = await lookup(tlsaQueryName(candidate), 'TLSA')
        last = t
        // C11: TLSA lookup failure → skip the host without connecting
        if (t.status === 'failed') {
            return {
                ...host,
                mode: 'skip',
                tlsa: { state: 'failed', records: [], usable: 0, detail: t.reason },
                reason: `${describe(t)}: host skipped`,
                resultType: 'dnssec-invalid',
            }
        }
        // C8: the first secure non-empty TLSA RRset wins; its owner is the TLSA base domain
        if (t.status === 'ok' && t.secure && (t.tlsa ?? []).length > 0) {
            const records = (t.tlsa ?? []).map(tlsaFromRdata)
            const usable = usableRecords(records)
            const referenceNames = referenceIdentifiers(name, candidate)
            const tlsa = { state: 'secure' as const, records, usable: usable.length, owner: t.canonicalName }
            if (usable.length > 0) {
                // C9: DANE applies: STARTTLS mandatory, the peer must authenticate
                return { ...host, tlsaBase: candidate, referenceNames, tlsa, mode: 'dane', reason: `${usable.length} usable TLSA record(s) at ${tlsaQueryName(candidate)}` }
            }
            // C12: secure but unusable → TLS mandatory without authentication
            const why = [...new Set(records.map((r) => unusableReason(r) ?? ''))].join('; ')
            return onlyDane(policy, {
                ...host,
                tlsaBase: candidate,
                referenceNames,
                tlsa,
                mode: 'encrypt',
                reason: `TLSA at ${tlsaQueryName(candidate)} has no usable record (${why}): TLS mandatory, unauthenticated`,
                resultType: 'tlsa-invalid',
            })
        }
    }
    // C10: secure NODATA/NXDOMAIN, or insecure → no DANE for this host
    const state: TlsaState = last && last.secure ? 'none' : 'insecure'
    const what = state === 'none' ? 'no TLSA records (secure denial)' : 'TLSA answer insecure'
    return onlyDane(policy, {
        ...host,
        tlsa: { state, records: [], usable: 0 },
        mode: 'opportunistic',
        reason: `${what}: opportunistic TLS`,
    })
}

// C21 dane-only: a host that DANE would not authenticate is not used
function onlyDane(policy: PolicyWord, host: HostDecision): HostDecision {
    if (policy !== 'dane-only' || host.mode === 'dane') return host
    return { ...host, mode: 'skip', reason: `policy dane-only: ${host.reason}; host not used`, resultType: 'dane-required' }
}
