// The TXT record grammar RFC 8460 3 (TLSRPT) and RFC 8461 3.1 (MTA-STS) share: a version tag, then
// name=value fields separated by ";" with optional spaces around it, one trailing ";" allowed. Of a
// domain's TXT records (each record's strings joined), those not beginning with the tag are discarded;
// exactly one must be left. Pure.

export type TaggedRecord = { kind: 'record'; record: string; fields: { name: string; value: string; field: string }[] } | { kind: 'none'; reason: string }

/** Extension fields both RFCs allow, and ignore (RFC 8460 3 / RFC 8461 3.1 ext-name, ext-value). */
export const EXT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/
export const EXT_VALUE = /^[\x21-\x3a\x3c\x3e-\x7e]+$/

/** `tag` is the version field as published, e.g. "v=STSv1" (case-sensitive, RFC 7405 %s). */
export function taggedRecord(txts: string[], tag: string): TaggedRecord {
    const begins = (t: string): boolean => t.startsWith(tag) && /^[ \t]*;/.test(t.slice(tag.length))
    const candidates = txts.filter(begins)
    if (candidates.length === 0)
        return { kind: 'none', reason: txts.length ? `no record begins with "${tag};" (${txts.length} TXT record(s))` : 'no TXT record' }
    if (candidates.length > 1) return { kind: 'none', reason: `${candidates.length} records begin with "${tag};"; exactly one is required` }
    const record = candidates[0]
    const parts = record.split(';').map((f) => f.replace(/^[ \t]+|[ \t]+$/g, ''))
    if (parts[parts.length - 1] === '') parts.pop()
    const fields: { name: string; value: string; field: string }[] = []
    for (const field of parts.slice(1)) {
        const eq = field.indexOf('=')
        if (eq <= 0) return malformedRecord(record, `field "${field}" is not name=value`)
        fields.push({ name: field.slice(0, eq), value: field.slice(eq + 1), field })
    }
    return { kind: 'record', record, fields }
}

export function malformedRecord(record: string, why: string): { kind: 'none'; reason: string } {
    return { kind: 'none', reason: `malformed record "${record}": ${why}` }
}
