/**
 * RFC 5280 4.2.1.10 name constraints, for DANE-TA path validation (lib/pkix.ts): whether a
 * certificate's names lie within the permitted subtrees and outside the excluded ones of every CA
 * above it. Pure. dNSName, rfc822Name, iPAddress, uniformResourceIdentifier and directoryName are
 * compared; a constraint of any other form that meets a name of that form fails the path.
 */

export type NameForm = 'dns' | 'email' | 'ip' | 'uri' | 'dn' | 'other'

/** One name or one name-constraint base, by GeneralName form (RFC 5280 4.2.1.6). */
export interface GeneralName {
    form: NameForm
    /** dns, email, uri: the text; dn: RDN keys (see rdnKeys); ip: the octets; other: the tag */
    text?: string
    rdns?: string[]
    octets?: Buffer
    tag?: number
}

export interface Subtrees {
    permitted: GeneralName[]
    excluded: GeneralName[]
}

function lower(s: string): string {
    return s.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/\.$/, '')
}

// dNSName: "example.com" covers the name and every name below it; ".example.com" (OpenSSL) only names below it
function dnsWithin(name: string, base: string): boolean {
    const n = lower(name)
    const b = lower(base)
    if (b === '') return true
    if (b.startsWith('.')) return n.endsWith(b)
    return n === b || n.endsWith(`.${b}`)
}

// rfc822Name: a mailbox, a host ("example.com": that host's mailboxes) or a domain (".example.com": below it)
function emailWithin(name: string, base: string): boolean {
    const at = name.lastIndexOf('@')
    if (at < 0) return false
    if (base.includes('@')) {
        const bat = base.lastIndexOf('@')
        return name.slice(0, at) === base.slice(0, bat) && lower(name.slice(at + 1)) === lower(base.slice(bat + 1))
    }
    const host = lower(name.slice(at + 1))
    const b = lower(base)
    return b.startsWith('.') ? host.endsWith(b) : host === b
}

// uniformResourceIdentifier: the host of the URI; "host.example.com" that host, ".example.com" hosts below it
function uriWithin(uri: string, base: string): boolean {
    const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)/i.exec(uri)
    if (!m || !m[1]) return false // no host to constrain: fails the constraint, as OpenSSL does
    const host = lower(m[1])
    const b = lower(base)
    return b.startsWith('.') ? host.endsWith(b) : host === b
}

// iPAddress: the constraint is address then mask, twice the address length
function ipWithin(ip: Buffer, base: Buffer): boolean {
    if (base.length !== ip.length * 2) return false
    for (let i = 0; i < ip.length; i++) {
        const mask = base[ip.length + i]
        if ((ip[i] & mask) !== (base[i] & mask)) return false
    }
    return true
}

// directoryName: the constraint's RDNs are the first RDNs of the name
function dnWithin(rdns: string[], base: string[]): boolean {
    return base.length <= rdns.length && base.every((r, i) => rdns[i] === r)
}

// a wildcard name "*.P" stands for every "x.P": it is within an excluded base when one of those could be
function wildcardMayReach(name: string, base: string): boolean {
    if (!name.startsWith('*.') || base.startsWith('.')) return false
    const parent = lower(name.slice(2))
    const b = lower(base)
    const dot = b.indexOf('.')
    return dot > 0 && b.slice(dot + 1) === parent
}

function within(name: GeneralName, base: GeneralName): boolean {
    switch (name.form) {
        case 'dns':
            return dnsWithin(name.text ?? '', base.text ?? '')
        case 'email':
            return emailWithin(name.text ?? '', base.text ?? '')
        case 'uri':
            return uriWithin(name.text ?? '', base.text ?? '')
        case 'ip':
            return ipWithin(name.octets ?? Buffer.alloc(0), base.octets ?? Buffer.alloc(0))
        case 'dn':
            return dnWithin(name.rdns ?? [], base.rdns ?? [])
        default:
            return false
    }
}

function showName(n: GeneralName): string {
    switch (n.form) {
        case 'ip':
            return `IP:${[...(n.octets ?? [])].join('.')}`
        case 'dn':
            return `DN:${(n.rdns ?? []).join(',')}`
        case 'other':
            return `name of form [${(n.tag ?? 0) & 0x1f}]`
        default:
            return `${n.form.toUpperCase()}:${n.text}`
    }
}

/** null when every name lies within every layer of permitted subtrees and outside every excluded one */
export function nameConstraintFailure(names: GeneralName[], layers: { from: string; nc: Subtrees }[]): string | null {
    for (const { from, nc } of layers) {
        for (const n of names) {
            const sameForm = (b: GeneralName): boolean => b.form === n.form && (n.form !== 'other' || b.tag === n.tag)
            const permitted = nc.permitted.filter(sameForm)
            const excluded = nc.excluded.filter(sameForm)
            if (n.form === 'other') {
                if (permitted.length || excluded.length) return `${showName(n)} cannot be checked against the name constraints of ${from}`
                continue
            }
            if (permitted.length > 0 && !permitted.some((b) => within(n, b))) {
                return `${showName(n)} is outside the permitted subtrees of ${from} (${permitted.map(showName).join(', ')})`
            }
            const hit = excluded.find((b) => within(n, b) || (n.form === 'dns' && wildcardMayReach(n.text ?? '', b.text ?? '')))
            if (hit) return `${showName(n)} is in the excluded subtree ${showName(hit)} of ${from}`
        }
    }
    return null
}
