// RFC 8461 3.3: fetching a domain's MTA-STS policy from https://mta-sts.<domain>/.well-known/mta-sts.txt.
// The server is authenticated by PKIX for that name (SNI the same; node's store, or the CA file the operator
// names); redirects are not followed; only a 200 with a text/plain body of at most 64 KiB is a policy; the
// whole fetch has a deadline. The host's addresses come from the caller (the plugin's resolver), so that
// the fetch asks the same DNS as everything else and never blocks Haraka's event loop.
import https from 'node:https'
import tls from 'node:tls'
import type { LookupAddress } from 'node:dns'
import { isCertificateError } from '../webpki'

/** RFC 8461 3.3: senders SHOULD limit the policy to 64 KiB. */
export const MAX_POLICY_BYTES = 64 * 1024

export interface FetchOptions {
    /** CA certificates (PEM) to trust instead of node's own store */
    ca?: string | Buffer
    /** the whole fetch, from the address lookup to the last byte */
    timeoutMs?: number
    /** the addresses of mta-sts.<domain> (the plugin's resolver); node's own lookup when absent */
    addresses?: (host: string) => Promise<string[]>
    /** 443 unless a test says otherwise */
    port?: number
}

/** A failed fetch says whether it failed on the policy host's certificate (RFC 8460 sts-webpki-invalid). */
export type FetchResult = { ok: true; text: string; host: string } | { ok: false; error: string; host: string; webpki?: boolean }

/**
 * The TLS context of the CAs given, made once for as long as the same CAs are given: a context made with
 * `ca` parses every certificate of it, synchronously, which for each fetch would hold the event loop.
 */
let lastContext: { ca: string | Buffer; context: tls.SecureContext } | undefined
function contextFor(ca: string | Buffer): tls.SecureContext {
    if (lastContext?.ca !== ca) lastContext = { ca, context: tls.createSecureContext({ ca, minVersion: 'TLSv1.2' }) }
    return lastContext.context
}

/** the whole fetch, when the caller says nothing */
export const DEFAULT_FETCH_MS = 10_000

export function policyHost(domain: string): string {
    return `mta-sts.${domain}`
}

export function policyUrl(domain: string): string {
    return `https://${policyHost(domain)}/.well-known/mta-sts.txt`
}

/** Fetch one domain's policy. Never throws; resolves once. */
export function fetchStsPolicy(domain: string, opts: FetchOptions = {}): Promise<FetchResult> {
    const host = policyHost(domain)
    const timeoutMs = opts.timeoutMs ?? DEFAULT_FETCH_MS
    return new Promise((resolve) => {
        let done = false
        const finish = (r: { ok: true; text: string } | { ok: false; error: string; webpki?: boolean }): void => {
            if (done) return
            done = true
            clearTimeout(deadline)
            // nothing more is read: a refused answer's body, however long, does not keep the connection
            req?.destroy()
            resolve({ ...r, host })
        }
        const deadline = setTimeout(() => {
            req?.destroy()
            finish({ ok: false, error: `no policy within ${timeoutMs / 1000} s` })
        }, timeoutMs)
        deadline.unref()
        const lookup = opts.addresses
            ? (name: string, o: { all?: boolean; family?: number }, cb: (err: Error | null, a: string | LookupAddress[], f?: number) => void): void => {
                  opts.addresses!(name).then(
                      (list) => {
                          const found = list
                              .map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))
                              .filter((a) => !o.family || a.family === o.family)
                          if (found.length === 0) return cb(Object.assign(new Error(`no address for ${name}`), { code: 'ENOTFOUND' }), o.all ? [] : '', 4)
                          if (o.all) cb(null, found)
                          else cb(null, found[0].address, found[0].family)
                      },
                      (e: Error) => cb(e, o.all ? [] : '', 4),
                  )
              }
            : undefined
        let req: ReturnType<typeof https.request> | undefined
        try {
            req = https.request(
                {
                    host,
                    port: opts.port ?? 443,
                    path: '/.well-known/mta-sts.txt',
                    method: 'GET',
                    servername: host,
                    headers: { Host: host, Accept: 'text/plain' },
                    ...(opts.ca ? { secureContext: contextFor(opts.ca) } : {}),
                    rejectUnauthorized: true,
                    minVersion: 'TLSv1.2',
                    agent: false,
                    lookup: lookup as never,
                },
                (res) => {
                    const status = res.statusCode ?? 0
                    // RFC 8461 3.3: no redirects; only 200
                    if (status !== 200) {
                        return finish({ ok: false, error: `HTTP ${status}${status >= 300 && status < 400 ? ' (a redirect: not followed)' : ''}` })
                    }
                    const type = String(res.headers['content-type'] ?? '')
                        .split(';')[0]
                        .trim()
                        .toLowerCase()
                    if (type !== 'text/plain') {
                        return finish({ ok: false, error: `Content-Type "${type || 'none'}" is not text/plain` })
                    }
                    const chunks: Buffer[] = []
                    let size = 0
                    res.on('data', (c: Buffer) => {
                        size += c.length
                        if (size > MAX_POLICY_BYTES) {
                            return finish({ ok: false, error: `policy larger than ${MAX_POLICY_BYTES} bytes` })
                        }
                        chunks.push(c)
                    })
                    res.on('end', () => finish({ ok: true, text: Buffer.concat(chunks).toString('utf8') }))
                    res.on('error', (e) => finish({ ok: false, error: e.message }))
                },
            )
        } catch (e) {
            return finish({ ok: false, error: (e as Error)?.message ?? String(e) })
        }
        req.on('error', (e: NodeJS.ErrnoException) =>
            finish({ ok: false, error: e.code ? `${e.code}: ${e.message}` : e.message, ...(isCertificateError(e.code) ? { webpki: true } : {}) }),
        )
        req.end()
    })
}
