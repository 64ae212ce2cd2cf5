/**
 * DANE authentication of a presented certificate chain against TLSA records
 * (RFC 6698 2.1, RFC 7671 5 and 9, RFC 7672 3). Pure: no I/O, no clock unless
 * `now` is omitted, and it never throws.
 *
 * Decisions worth knowing when reading this against the RFCs:
 *  - DANE-EE(3) matches the leaf only; nothing else about the chain matters (RFC 7672 3.1.1).
 *  - DANE-TA(2) is RFC 5280 path validation with the matched certificate or key as the only
 *    trust anchor (RFC 6698 2.1.1), done by lib/pkix.ts: dates, CA flags, path length, name
 *    constraints, purpose and critical extensions of every certificate below the anchor, and the
 *    anchor certificate's own path length and name constraints (RFC 7671 5.2.1), not its dates.
 *  - The anchor is a presented certificate above the leaf that a record matches, or the
 *    certificate (`2 0 0`) or key (`2 1 0`) a record gives in full, which need not be presented
 *    (RFC 7671 5.2.3) and must have signed the top certificate of the path. The leaf is never
 *    its own anchor: usage 2 names the anchor "when validating the end entity certificate"
 *    (RFC 6698 2.1.1), and a path needs a certificate below its anchor; OpenSSL (and so Postfix)
 *    rejects it too (depth 0 is never a trust anchor). The same key published as `3 x x` works.
 *    The shallowest anchor on a path wins: going higher can only add certificates to check.
 *  - Paths are built from every presented certificate, in any order (servers send them out of
 *    order, with extras, with an old and a new intermediate of the same name during a CA
 *    rollover). Each link needs `checkIssued` (issuer/subject names, key identifiers, keyUsage)
 *    and a good signature; among several candidate issuers those whose key identifier matches
 *    and which are within their dates are tried first, and a candidate that fails is left for
 *    the next one, so a same-named decoy ahead of the real intermediate does not stop the path.
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto'
import { certificateFields, matchesAnyReference, certificateDnsNames } from './names'
import { parseChain, Matcher, type ParsedChain } from './chain'
import { pairFact } from './cert-facts'
import { keyIdentifiersMatch, validatePath, type PkixFailureCode } from './pkix'
import { type TlsaRecord, strongestDigests, unusableReason, USAGE, MTYPE } from './tlsa'
import type { ResultType } from './result-type'

export { parseChain, associationData, MAX_CHAIN, type ParsedChain } from './chain'

export type FailureCode =
    | PkixFailureCode
    | 'no-usable-records'
    | 'empty-chain'
    | 'bad-certificate'
    | 'no-match'
    | 'name-mismatch'
    | 'expired'
    | 'not-yet-valid'
    | 'bad-signature'
    | 'chain-not-built'

export interface VerifyInput {
    chain: (Buffer | X509Certificate)[] | ParsedChain
    records: TlsaRecord[]
    referenceNames: string[]
    /** default true; only DANE-TA(2) matches check names */
    checkNames?: boolean
    now?: Date
}

/** The record that authenticated the peer, and where (C18). */
export interface Match {
    record: TlsaRecord
    depth: number // 0 = leaf; OpenSSL's convention
    anchor?: 'presented' | 'from-record'
}

/** A verification's outcome: authenticated with the match, or not with the failure. Never both. */
export type VerifyResult =
    | {
          authenticated: true
          /** number of usable records after digest agility (RFC 7671 9) */
          usable: number
          match: Match
          /** the reference identifier the leaf matched (DANE-TA with name checks only) */
          matchedName?: string
          failure?: undefined
      }
    | {
          authenticated: false
          usable: number
          failure: { code: FailureCode; detail: string }
          match?: undefined
          matchedName?: undefined
      }

/** Upper bound on path-building steps, against pathological cross-signed chains */
const MAX_PATH_STEPS = 256
const MAX_DEPTH = 16
/**
 * Signature verifications one DANE-TA check may spend. Without a bound a hostile server
 * (many same-named CA certificates) makes path building cost seconds of CPU in the
 * STARTTLS callback, stalling the whole MTA; with it the worst case is a few milliseconds.
 */
export const MAX_SIGNATURE_CHECKS = 64

function errorText(e: unknown): string {
    return e instanceof Error ? e.message : String(e)
}

function subjectOf(c: X509Certificate): string {
    return c.subject.replace(/\n/g, ', ')
}

function recordBrief(r: TlsaRecord): string {
    return r.text.length > 80 ? `${r.text.slice(0, 77)}...` : r.text
}

// RFC 8460 4.3: TLSRPT result types
export function rfc8460ResultType(code: FailureCode): ResultType {
    switch (code) {
        case 'name-mismatch':
            return 'certificate-host-mismatch'
        case 'expired':
        case 'not-yet-valid':
            return 'certificate-expired'
        case 'no-usable-records':
            return 'tlsa-invalid'
        default:
            return 'validation-failure'
    }
}

/** how informative a failure is: the further a chain got, the more the log should say about it */
const FAILURE_RANK: Record<FailureCode, number> = {
    'name-mismatch': 7,
    expired: 6,
    'not-yet-valid': 6,
    'not-a-ca': 6,
    'path-length-exceeded': 6,
    'name-constraint-violation': 6,
    'unhandled-critical-extension': 6,
    'not-for-tls-server': 6,
    'bad-signature': 5,
    'chain-not-built': 4,
    'no-match': 3,
    'bad-certificate': 2,
    'empty-chain': 1,
    'no-usable-records': 0,
}

type Failure = { code: FailureCode; detail: string }

function better(a: Failure | undefined, b: Failure): Failure {
    return a === undefined || FAILURE_RANK[b.code] > FAILURE_RANK[a.code] ? b : a
}

interface ExternalAnchor {
    record: TlsaRecord
    cert?: X509Certificate // 2 0 0
    key: KeyObject // 2 0 0 (its key) or 2 1 0
    /** 2 1 0: presented certificates that carry this key (where one issued a certificate, it is the anchor) */
    holders: number[]
}

/** parsed `2 0 0` / `2 1 0` anchors, per record object: records are decoded once and reused across connections */
const anchorCache = new WeakMap<TlsaRecord, { cert?: X509Certificate; key: KeyObject } | { error: string }>()

function parseAnchor(record: TlsaRecord): { cert?: X509Certificate; key: KeyObject } | { error: string } {
    let v = anchorCache.get(record)
    if (v === undefined) {
        try {
            if (record.selector === 0) {
                const cert = new X509Certificate(record.data)
                if (cert.raw.length !== record.data.length) throw new Error('trailing bytes after the certificate')
                v = { cert, key: cert.publicKey }
            } else {
                v = { key: createPublicKey({ key: record.data, format: 'der', type: 'spki' }) }
            }
        } catch (e) {
            v = { error: `data is not a ${record.selector === 0 ? 'certificate' : 'public key'} (${errorText(e)})` }
        }
        anchorCache.set(record, v)
    }
    return v
}

// RFC 7671 5.2.3: `2 0 0` and `2 1 0` carry the trust anchor itself, so it need not be presented
function externalAnchors(taRecords: TlsaRecord[], chain: ParsedChain, notes: string[]): ExternalAnchor[] {
    const out: ExternalAnchor[] = []
    for (const record of taRecords) {
        if (record.mtype !== MTYPE.FULL) continue
        // a presented copy of a `2 0 0` anchor is a presented anchor: its constraints apply, as OpenSSL applies them
        if (record.selector === 0 && chain.der.some((d) => d.equals(record.data))) continue
        const a = parseAnchor(record)
        if ('error' in a) notes.push(`${recordBrief(record)}: ${a.error}`)
        else {
            const holders =
                record.selector === 1 ? chain.certs.map((c, i) => (certificateFields(c).spki.equals(record.data) ? i : -1)).filter((i) => i >= 0) : []
            out.push({ record, ...a, holders })
        }
    }
    return out
}

/**
 * Whether `issuer` issued `cert` by names, key identifiers and keyUsage, and whether a key signed it: facts
 * of their bytes alone, kept across connections (lib/cert-facts) like the certificates' parsed fields. A
 * path is still built and validated for every connection, against its records, names and time.
 */
function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
    return pairFact('issued-by', cert, issuer, () => safeCheckIssued(cert, issuer))
}

function signedBy(cert: X509Certificate, issuer: { cert?: X509Certificate; spki?: Buffer; key: () => KeyObject }): boolean {
    const by = issuer.cert ?? issuer.spki
    if (!by) return safeVerify(cert, issuer.key())
    return pairFact('signed-by', cert, by, () => safeVerify(cert, issuer.key()))
}

function safeVerify(cert: X509Certificate, key: KeyObject): boolean {
    try {
        return cert.verify(key)
    } catch {
        return false
    }
}

function safeCheckIssued(cert: X509Certificate, issuer: X509Certificate): boolean {
    try {
        return cert.checkIssued(issuer)
    } catch {
        return false
    }
}

interface TaSuccess {
    record: TlsaRecord
    depth: number
    anchor: 'presented' | 'from-record'
    matchedName?: string
}

// RFC 7671 5.2 and RFC 7672 3.1.2: DANE-TA(2), build a path from the leaf to an anchor a record names
function verifyTrustAnchor(
    chain: ParsedChain,
    matcher: Matcher,
    taRecords: TlsaRecord[],
    input: VerifyInput,
    now: Date,
): { ok: TaSuccess } | { fail: Failure } {
    const certs = chain.certs
    const notes: string[] = []

    // which presented certificates a record names as anchor (computed lazily, once)
    const anchorMemo = new Map<number, TlsaRecord | null>()
    const presentedAnchor = (i: number): TlsaRecord | null => {
        let r = anchorMemo.get(i)
        if (r === undefined) {
            r = taRecords.find((t) => matcher.matches(i, t)) ?? null
            anchorMemo.set(i, r)
        }
        return r
    }
    const externals = externalAnchors(taRecords, chain, notes)
    // the leaf is never its own trust anchor (head of this file): a record that names it is no anchor
    const leafRecord = presentedAnchor(0)
    if (leafRecord !== null)
        notes.push(
            `${recordBrief(leafRecord)} matches the leaf itself, which cannot be its own DANE-TA trust anchor (RFC 6698 2.1.1; publish it as a 3 x x record)`,
        )
    const matchedPresented = certs.map((_, i) => i).filter((i) => i > 0 && presentedAnchor(i) !== null)

    if (matchedPresented.length === 0 && externals.length === 0) {
        const extra = notes.length ? `; ${notes.join('; ')}` : ''
        return {
            fail: {
                code: 'no-match',
                detail: `no certificate of the ${certs.length}-certificate chain matches any of ${taRecords.length} DANE-TA record(s)${extra}`,
            },
        }
    }

    let failure: Failure | undefined
    let steps = 0
    let signatureChecks = 0
    let exhausted = false
    // each (certificate, issuer) pair is examined once: name link, then signature within the budget
    const linkMemo = new Map<string, 'none' | 'bad-signature' | 'ok'>()
    const link = (
        child: number,
        key: string,
        issuer: { cert?: X509Certificate; spki?: Buffer; key: () => KeyObject },
    ): 'none' | 'bad-signature' | 'ok' | 'exhausted' => {
        const memoKey = `${child}>${key}`
        const known = linkMemo.get(memoKey)
        if (known) return known
        if (issuer.cert && !issuedBy(certs[child], issuer.cert)) {
            linkMemo.set(memoKey, 'none')
            return 'none'
        }
        // the budget counts signature checks as if each were made: a hostile chain is refused alike, kept facts or not
        if (++signatureChecks > MAX_SIGNATURE_CHECKS) {
            exhausted = true
            return 'exhausted'
        }
        const r = signedBy(certs[child], issuer) ? 'ok' : issuer.cert ? 'bad-signature' : 'none'
        linkMemo.set(memoKey, r)
        return r
    }
    const presentedIssuer = (c: X509Certificate) => ({ cert: c, key: () => c.publicKey })
    let incomplete = false // some path ended at a certificate whose issuer was not presented

    // RFC 6698 2.1.1: the path below the anchor must pass RFC 5280 validation (lib/pkix), then RFC 7672 3.2 names.
    // `below` counts the path's certificates under the anchor; `anchorCert` is the anchor certificate, presented
    // or given in full (`2 0 0`), whose constraints apply, and undefined for a bare key (`2 1 0`).
    // The depth reported is OpenSSL's (C18), as `openssl s_client -dane_tlsa_rrdata` prints it: a trust-anchor
    // certificate, presented or given in DNS, at its own depth ("matched TA certificate at depth 2"); a bare key
    // given in DNS at the depth of the certificate it signed ("signed the certificate at depth 1").
    const evaluate = (
        path: number[],
        below: number,
        record: TlsaRecord,
        anchor: 'presented' | 'from-record',
        anchorCert: X509Certificate | undefined,
    ): TaSuccess | null => {
        const depth = anchor === 'from-record' && record.selector === 1 ? below - 1 : below
        const where = `anchor ${recordBrief(record)} ${anchor === 'from-record' && record.selector === 1 ? `given in DNS, signer of depth ${depth}` : `at depth ${depth}`}`
        const broken = validatePath(
            path.slice(0, below).map((i) => certs[i]),
            anchorCert,
            now,
        )
        if (broken) {
            failure = better(failure, { code: broken.code, detail: `${broken.detail} (${where})` })
            return null
        }
        if (input.checkNames === false) return { record, depth, anchor }
        const leaf = certs[0]
        const matchedName = matchesAnyReference(leaf, input.referenceNames ?? [])
        if (matchedName === null) {
            const names = certificateDnsNames(leaf)
            failure = better(failure, {
                code: 'name-mismatch',
                detail: `leaf names [${names.join(', ')}] match none of [${(input.referenceNames ?? []).join(', ')}] (${where})`,
            })
            return null
        }
        return { record, depth, anchor, matchedName }
    }

    // OpenSSL's preference among the presented certificates that may have issued `child`: a matching
    // authority key identifier first, then those within their dates, then the order presented
    const issuerCandidates = (child: number, path: number[]): number[] => {
        const rank = (j: number): number => {
            const ids = keyIdentifiersMatch(certs[child], certs[j])
            const f = certificateFields(certs[j])
            const current = f.notBefore !== undefined && f.notAfter !== undefined && f.notBefore <= now && now <= f.notAfter
            return (ids === false ? 2 : 0) + (current ? 0 : 1)
        }
        const js = certs.map((_, j) => j).filter((j) => !path.includes(j))
        return js
            .map((j) => ({ j, r: rank(j) }))
            .sort((a, b) => a.r - b.r || a.j - b.j)
            .map((x) => x.j)
    }

    const walk = (path: number[]): TaSuccess | null => {
        if (++steps > MAX_PATH_STEPS || exhausted) return null
        const depth = path.length - 1
        const idx = path[depth]
        const node = certs[idx]

        // a presented certificate a record names is the anchor, the leaf excepted (see the head of this file)
        const presented = depth > 0 ? presentedAnchor(idx) : null
        if (presented !== null) return evaluate(path, depth, presented, 'presented', node)
        if (depth >= MAX_DEPTH) return null

        let issuerFound = false
        for (const j of issuerCandidates(idx, path)) {
            const cand = certs[j]
            const l = link(idx, `c${j}`, presentedIssuer(cand))
            if (l === 'exhausted') return null
            if (l === 'none') continue
            issuerFound = true
            if (l === 'bad-signature') {
                failure = better(failure, {
                    code: 'bad-signature',
                    detail: `signature of ${subjectOf(node)} at depth ${depth} does not verify with the key of ${subjectOf(cand)}`,
                })
                continue
            }
            const ok = walk([...path, j])
            if (ok) return ok
        }

        for (const [e, ext] of externals.entries()) {
            // a `2 1 0` key that a presented certificate carries: where that certificate issued this one it was
            // tried above as the anchor, with its constraints (OpenSSL's answer); the bare key stands in only elsewhere
            if (ext.holders.includes(idx)) continue // the key is this certificate's own: it cannot anchor itself
            if (ext.holders.some((j) => !path.includes(j) && link(idx, `c${j}`, presentedIssuer(certs[j])) === 'ok')) continue
            const l = link(idx, `x${e}`, { cert: ext.cert, spki: ext.record.data, key: () => ext.key })
            if (l === 'exhausted') return null
            if (l === 'none') continue
            issuerFound = true
            if (l === 'bad-signature') {
                failure = better(failure, {
                    code: 'bad-signature',
                    detail: `signature of ${subjectOf(node)} at depth ${depth} does not verify with the anchor of ${recordBrief(ext.record)}`,
                })
                continue
            }
            const ok = evaluate(path, depth + 1, ext.record, 'from-record', ext.cert)
            if (ok) return ok
        }

        if (!issuerFound && !safeCheckIssued(node, node)) incomplete = true
        return null
    }

    const ok = walk([0])
    if (ok) return { ok }
    if (exhausted) {
        return {
            fail: {
                code: 'chain-not-built',
                detail: `gave up building a path after ${MAX_SIGNATURE_CHECKS} signature checks (${certs.length} certificates presented)`,
            },
        }
    }
    if (failure === undefined) {
        const named = matchedPresented.map((i) => `${recordBrief(presentedAnchor(i) as TlsaRecord)} matches ${subjectOf(certs[i])} at position ${i}`)
        if (matchedPresented.length > 0 || incomplete) {
            const what = named.length ? named.join('; ') : `anchor(s) ${externals.map((e) => recordBrief(e.record)).join(', ')} given in DNS`
            failure = {
                code: 'chain-not-built',
                detail: `no path from the leaf to the trust anchor: ${what}${incomplete ? '; an issuer is missing from the presented chain' : ''}`,
            }
        } else {
            failure = { code: 'no-match', detail: `no presented certificate is signed by ${externals.map((e) => recordBrief(e.record)).join(', ')}` }
        }
    }
    if (notes.length) failure = { ...failure, detail: `${failure.detail}; ${notes.join('; ')}` }
    return { fail: failure }
}

function verifyInner(input: VerifyInput): VerifyResult {
    // RFC 7671 9 / RFC 7672 2.2: usable records, strongest digest per usage+selector
    const records = strongestDigests(Array.isArray(input.records) ? input.records : [])
    const usable = records.length
    if (usable === 0) {
        const all = Array.isArray(input.records) ? input.records : []
        const why = all.slice(0, 4).map((r) => `${recordBrief(r)}: ${unusableReason(r) ?? 'usable'}`)
        const more = all.length > 4 ? `; and ${all.length - 4} more` : ''
        return {
            authenticated: false,
            usable,
            failure: { code: 'no-usable-records', detail: `${all.length} record(s), none usable${why.length ? `: ${why.join('; ')}` : ''}${more}` },
        }
    }

    const chain = Array.isArray(input.chain) ? parseChain(input.chain) : input.chain
    if (!chain || !Array.isArray(chain.certs)) {
        return { authenticated: false, usable, failure: { code: 'bad-certificate', detail: 'no parsed chain' } }
    }
    if (chain.error !== undefined) return { authenticated: false, usable, failure: { code: 'bad-certificate', detail: chain.error } }
    if (chain.certs.length === 0) return { authenticated: false, usable, failure: { code: 'empty-chain', detail: 'the server presented no certificate' } }

    const now = input.now ?? new Date()
    const matcher = new Matcher(chain.certs)

    // RFC 7672 3.1.1: DANE-EE(3) matches the leaf only; names, dates and the rest of the chain are ignored
    const eeRecords = records.filter((r) => r.usage === USAGE.DANE_EE)
    for (const record of eeRecords) {
        if (matcher.matches(0, record)) return { authenticated: true, usable, match: { record, depth: 0 } }
    }

    const taRecords = records.filter((r) => r.usage === USAGE.DANE_TA)
    let failure: Failure = {
        code: 'no-match',
        detail: `leaf ${subjectOf(chain.certs[0])} matches none of ${eeRecords.length} DANE-EE record(s)`,
    }
    if (taRecords.length > 0) {
        const ta = verifyTrustAnchor(chain, matcher, taRecords, input, now)
        if ('ok' in ta) {
            const { record, depth, anchor, matchedName } = ta.ok
            const result: VerifyResult = { authenticated: true, usable, match: { record, depth, anchor } }
            if (matchedName !== undefined) result.matchedName = matchedName
            return result
        }
        failure = eeRecords.length > 0 && ta.fail.code === 'no-match' ? { code: 'no-match', detail: `${failure.detail}; ${ta.fail.detail}` } : ta.fail
    }
    return { authenticated: false, usable, failure }
}

// RFC 7672 3: one matching usable record authenticates the peer (RFC 6698 2.1, RFC 7671 5)
export function verifyChain(input: VerifyInput): VerifyResult {
    try {
        return verifyInner(input)
    } catch (e) {
        let usable = 0
        try {
            usable = strongestDigests(input.records).length
        } catch {
            /* keep 0 */
        }
        return { authenticated: false, usable, failure: { code: 'bad-certificate', detail: `verification error: ${errorText(e)}` } }
    }
}
