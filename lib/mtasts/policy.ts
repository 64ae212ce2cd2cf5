// MTA-STS (RFC 8461): the `_mta-sts` TXT record, the policy file, and which MX hosts a policy allows.
// Pure: the TXT lookup is the validating resolver's, the fetch lib/mtasts/fetch.ts's.
import { EXT_NAME, EXT_VALUE, malformedRecord, taggedRecord } from '../dns/tagged-record'

/** RFC 8461 3.1: the record that says a domain has a policy, and the id that changes with it. */
export interface StsRecord {
    id: string
    /** the record as published (its strings joined) */
    record: string
}

export type StsRecordLookup = { kind: 'record'; record: StsRecord } | { kind: 'none'; reason: string }

export function stsRecordName(domain: string): string {
    return `_mta-sts.${domain}`
}

const ID = /^[A-Za-z0-9]{1,32}$/

/**
 * RFC 8461 3.1: the TXT records at `_mta-sts.<domain>` (each record's strings joined). Records that do not
 * begin with "v=STSv1;" are discarded; unless exactly one is left, and it is valid (an id of 1 to 32
 * letters and digits; other fields name=value, ignored), the domain is taken to have no policy.
 */
export function parseStsRecords(txts: string[]): StsRecordLookup {
    const r = taggedRecord(txts, 'v=STSv1')
    if (r.kind === 'none') return r
    const { record } = r
    let id: string | undefined
    for (const { name, value, field } of r.fields) {
        if (name === 'id') {
            if (id !== undefined) return malformedRecord(record, 'id given twice')
            if (!ID.test(value)) return malformedRecord(record, `id "${value}" is not 1 to 32 letters and digits`)
            id = value
        } else if (!EXT_NAME.test(name) || !EXT_VALUE.test(value)) return malformedRecord(record, `field "${field}"`)
    }
    if (id === undefined) return malformedRecord(record, 'no id')
    return { kind: 'record', record: { id, record } }
}

export type StsMode = 'enforce' | 'testing' | 'none'

/** RFC 8461 3.2: a policy as fetched. */
export interface StsPolicy {
    mode: StsMode
    /** the mx patterns, lower-case, without a trailing dot ("*.example.com" or "mx.example.com") */
    mx: string[]
    /** seconds, at most MAX_AGE_S */
    maxAge: number
}

/** RFC 8461 3.2: max_age is at most 31557600 seconds (about a year); a larger value is held to that. */
export const MAX_AGE_S = 31557600

export type StsPolicyParse = { kind: 'policy'; policy: StsPolicy } | { kind: 'invalid'; reason: string }

// RFC 8461 3.2 ABNF: a pattern is a domain, or "*." and a domain (the wildcard one whole left-most label)
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?'
const MX_PATTERN = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})+$`)

/**
 * RFC 8461 3.2: the policy file: "key: value" lines (CRLF or LF). version STSv1, mode, max_age and, unless
 * the mode is none, at least one mx; other keys are ignored. A policy that breaks this is invalid: the
 * domain is then treated as having none (RFC 8461 3.3 and 5: a fetch failure), never as enforce.
 */
export function parseStsPolicy(text: string): StsPolicyParse {
    const invalid = (reason: string): StsPolicyParse => ({ kind: 'invalid', reason })
    let version: string | undefined
    let mode: string | undefined
    let maxAge: number | undefined
    const mx: string[] = []
    // a byte-order mark and blank lines are no fields (a policy is not made invalid by them)
    const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/)
    for (const raw of lines) {
        if (/^[ \t]*$/.test(raw)) continue
        const colon = raw.indexOf(':')
        if (colon <= 0) return invalid(`line "${raw.slice(0, 80)}" is not "key: value"`)
        const key = raw.slice(0, colon)
        const value = raw.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')
        if (!/^[A-Za-z0-9_.-]{1,32}$/.test(key)) return invalid(`key "${key.slice(0, 40)}" is not a field name`)
        switch (key) {
            case 'version':
                if (version !== undefined) return invalid('version given twice')
                version = value
                break
            case 'mode':
                if (mode !== undefined) return invalid('mode given twice')
                mode = value
                break
            case 'max_age':
                if (maxAge !== undefined) return invalid('max_age given twice')
                if (!/^\d{1,10}$/.test(value)) return invalid(`max_age "${value}" is not a number of seconds (1 to 10 digits)`)
                maxAge = Math.min(Number(value), MAX_AGE_S)
                break
            case 'mx': {
                // ASCII only, checked before case is folded (toLowerCase maps some non-ASCII letters to ASCII)
                if (!/^[\x21-\x7e]+$/.test(value)) return invalid(`mx "${value}" is not an ASCII host name`)
                const p = value.toLowerCase().replace(/\.$/, '')
                if (!MX_PATTERN.test(p)) return invalid(`mx "${value}" is not a host name or "*." and a domain`)
                if (!mx.includes(p)) mx.push(p)
                break
            }
        }
    }
    if (version !== 'STSv1') return invalid(version === undefined ? 'no version' : `version "${version}" is not STSv1`)
    if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none')
        return invalid(mode === undefined ? 'no mode' : `mode "${mode}" is not enforce, testing or none`)
    if (maxAge === undefined) return invalid('no max_age')
    if (mode !== 'none' && mx.length === 0) return invalid(`mode ${mode} without any mx`)
    return { kind: 'policy', policy: { mode, mx, maxAge } }
}

/**
 * RFC 8461 4.1: whether an MX host name is one the policy allows: equal to a pattern, or, for "*.domain",
 * the domain with exactly one more label in front (not the domain itself, not two labels more: mailauth's
 * suffix test lets "*.example.com" match "a.b.example.com", which the RFC does not).
 */
export function mxMatches(host: string, pattern: string): boolean {
    const h = host.toLowerCase().replace(/\.$/, '')
    const p = pattern.toLowerCase().replace(/\.$/, '')
    if (!p.startsWith('*.')) return h === p
    const dot = h.indexOf('.')
    return dot > 0 && h.slice(dot + 1) === p.slice(2)
}

/** The pattern of the policy that allows `host`, or undefined. */
export function allowedBy(host: string, policy: StsPolicy): string | undefined {
    return policy.mx.find((p) => mxMatches(host, p))
}
