/**
 * What is read or computed from one certificate's DER (its parsed fields, its RFC 5280 profile, the
 * association data a TLSA record would carry for it), kept across connections by the certificate's
 * exact bytes. A receiver presents the same certificates to every connection, and reading them was
 * most of what verifying a DANE-EE peer cost. Only facts of the bytes are kept: every connection is
 * still verified against its own TLSA records, reference names and time (lib/verify).
 *
 * C30: bounded, at most MAX_CERTIFICATES certificates and MAX_BYTES estimated bytes (each keeps a fixed
 * set of facts), and MAX_PAIR_FACTS facts about pairs; the least recently used go first. A fact whose
 * computation throws is not kept.
 */
import { X509Certificate } from 'node:crypto'
import { LRUCache } from 'lru-cache'

export const MAX_CERTIFICATES = 1000
export const MAX_BYTES = 16 * 1024 * 1024

interface Facts {
    /** the certificate's DER, a copy of its own */
    der: Buffer
    /** names these exact bytes while they are kept (never reused: a certificate kept again gets a new one) */
    id: number
    values: Map<string, unknown>
}
let lastId = 0

const byBytes = new LRUCache<string, Facts>({
    max: MAX_CERTIFICATES,
    maxSize: MAX_BYTES,
    // the DER, and what is read from it (fields, profile, digests): a few times its size
    sizeCalculation: (f) => 1024 + 4 * f.der.length,
})
/** the facts of a certificate object already looked up (a connection asks several times; the object cannot change) */
const byObject = new WeakMap<X509Certificate, Facts>()

function factsOf(cert: X509Certificate | Buffer): Facts {
    // a Buffer can change under its owner: it is looked up by its bytes every time, and copied when kept
    if (Buffer.isBuffer(cert)) return factsOfBytes(cert, true)
    const known = byObject.get(cert)
    if (known) return known
    // X509Certificate.raw is the object's own Buffer (node keeps it; nothing here ever writes to it)
    const f = factsOfBytes(cert.raw, false)
    byObject.set(cert, f)
    return f
}

/** bytes at the end of a certificate (its signature) that name it in the cache, beside its length */
const KEY_TAIL = 32

function factsOfBytes(der: Buffer, copy: boolean): Facts {
    // found by the length and the last bytes (the signature), then compared whole: a Map key of every byte
    // cost more than the rest of a lookup. Two certificates that share a key (a peer can make one) replace
    // each other in the cache; facts are only ever given for the exact bytes.
    const key = `${der.length} ${der.toString('latin1', Math.max(0, der.length - KEY_TAIL))}`
    let f = byBytes.get(key)
    if (!f || !f.der.equals(der)) {
        f = { der: copy ? Buffer.from(der) : der, id: ++lastId, values: new Map() }
        byBytes.set(key, f)
    }
    return f
}

/**
 * The fact `kind` of this certificate: computed from its DER once, then shared by every connection
 * that presents the same bytes. The value must not be changed by its users (it is frozen).
 */
export function certificateFact<T>(cert: X509Certificate | Buffer, kind: string, compute: (der: Buffer) => T): T {
    const f = factsOf(cert)
    if (f.values.has(kind)) return f.values.get(kind) as T
    const v = compute(f.der)
    // plain values are frozen; a Buffer cannot be, and node's X509Certificate keeps state of its own
    f.values.set(kind, typeof v === 'object' && v !== null && !Buffer.isBuffer(v) && !(v instanceof X509Certificate) ? Object.freeze(v) : v)
    return v
}

/**
 * A number for these exact bytes (a certificate, or a bare public key), for facts about a pair. Two
 * objects get the same number only if their bytes are equal.
 */
export function certificateId(cert: X509Certificate | Buffer): number {
    return factsOf(cert).id
}

/** C30: facts about a pair (does one certificate issue, or its key sign, another), bounded on their own */
export const MAX_PAIR_FACTS = 20_000
const pairs = new LRUCache<string, boolean>({ max: MAX_PAIR_FACTS })

/**
 * A yes-or-no fact about two byte strings (lib/verify: `issued-by`, `signed-by`), kept by their ids in a
 * cache of its own, so that a hostile peer pairing one certificate with ever new keys cannot grow what is
 * kept for that certificate.
 */
export function pairFact(kind: string, child: X509Certificate | Buffer, other: X509Certificate | Buffer, compute: () => boolean): boolean {
    const key = `${kind} ${certificateId(child)}>${certificateId(other)}`
    const known = pairs.get(key)
    if (known !== undefined) return known
    const v = compute()
    pairs.set(key, v)
    return v
}

/** C30: certificates whose facts are kept now, their estimated bytes, and the pair facts kept. */
export function certificateFactsUsage(): { certificates: number; bytes: number; pairs: number } {
    return { certificates: byBytes.size, bytes: byBytes.calculatedSize, pairs: pairs.size }
}
