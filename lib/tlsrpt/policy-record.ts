// RFC 8460 3: where a domain wants its TLS reports, read from its `_smtp._tls` TXT records. Pure:
// the lookup is the resolver's, through the same validating resolver as every other answer.
import { EXT_NAME, EXT_VALUE, malformedRecord, taggedRecord } from '../dns/tagged-record'

/** One place to send reports (RFC 8460 3, "rua"): mail to an address, or an HTTPS POST. */
export type ReportUri = { scheme: 'mailto'; uri: string; address: string } | { scheme: 'https'; uri: string; url: string }

export interface TlsrptPolicy {
    /** the record as published (its strings joined), for the log and the report's store */
    record: string
    /** the destinations this plugin can use, in the record's order */
    rua: ReportUri[]
    /** destinations left out, and why (an unknown scheme, a mailto without an address) */
    ignored: string[]
}

/** The outcome of reading a domain's records: a policy, or why the domain is taken to have none. */
export type TlsrptLookup = { kind: 'policy'; policy: TlsrptPolicy } | { kind: 'none'; reason: string }

export function tlsrptRecordName(domain: string): string {
    return `_smtp._tls.${domain}`
}

/**
 * RFC 8460 3: the TXT records at `_smtp._tls.<domain>` (each record's strings already joined without
 * spaces, RFC 8460 3 / RFC 7208 3.3). Records that do not begin with "v=TLSRPTv1;" are discarded; unless
 * exactly one is left, the domain does not do TLSRPT. A record that breaks the grammar is treated the same
 * way (as Postfix and mox do: a malformed policy is no policy), and so is one without a destination this
 * plugin can use. Unknown fields are ignored; several rua URIs, comma-separated, are all kept.
 */
export function parseTlsrptRecords(txts: string[]): TlsrptLookup {
    const r = taggedRecord(txts, 'v=TLSRPTv1')
    if (r.kind === 'none') return r
    const { record } = r
    const rua: ReportUri[] = []
    const ignored: string[] = []
    let sawRua = false
    for (const { name, value, field } of r.fields) {
        if (name === 'rua') {
            sawRua = true
            const uris = value.split(/[ \t]*,[ \t]*/)
            if (uris.some((u) => u === '')) return malformedRecord(record, 'empty URI in rua')
            for (const u of uris) {
                const parsed = reportUri(u)
                if (typeof parsed === 'string') ignored.push(`${u}: ${parsed}`)
                else rua.push(parsed)
            }
            continue
        }
        if (!EXT_NAME.test(name) || !EXT_VALUE.test(value)) return malformedRecord(record, `field "${field}" is neither rua= nor a valid extension`)
    }
    if (!sawRua) return malformedRecord(record, 'no rua= field')
    if (rua.length === 0) return { kind: 'none', reason: `record "${record}" names no destination this plugin can send to (${ignored.join('; ')})` }
    return { kind: 'policy', policy: { record, rua, ignored } }
}

/** One rua URI (RFC 3986), or why it cannot be used. Commas, "!" and ";" are percent-encoded in it. */
export function reportUri(text: string): ReportUri | string {
    const colon = text.indexOf(':')
    if (colon <= 0) return 'not a URI (no scheme)'
    const scheme = text.slice(0, colon).toLowerCase()
    if (scheme === 'mailto') {
        let address: string
        try {
            address = decodeURIComponent(text.slice(colon + 1).split('?')[0])
        } catch {
            return 'bad percent-encoding'
        }
        // one addr-spec: local@domain, nothing that would let a header or a second recipient in
        if (!/^[^\s@<>(),;:"\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(address)) return `not one mail address ("${address}")`
        return { scheme: 'mailto', uri: text, address }
    }
    if (scheme === 'https') {
        if (!/^https:\/\//i.test(text)) return 'not an https URL (https://host/...)'
        let url: URL
        try {
            url = new URL(text)
        } catch {
            return 'not a valid https URL'
        }
        if (url.username || url.password) return 'credentials in an https URL'
        return { scheme: 'https', uri: text, url: url.href }
    }
    return `scheme "${scheme}" is not mailto or https`
}
