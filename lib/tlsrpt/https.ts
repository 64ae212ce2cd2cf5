// RFC 8460 5.4: a report delivered by HTTPS POST. The server is authenticated by PKIX (node's store, or
// the CA file the operator names), without redirects; a 2xx status is delivery, anything else a failure
// to retry later (RFC 8460 5.5).
import https from 'node:https'

export interface PostResult {
    ok: boolean
    /** the HTTP status, when one came back */
    status?: number
    /** why it failed: the status line, a TLS or connection error, a timeout */
    error?: string
}

export interface PostOptions {
    /** CA certificates (PEM) to trust instead of node's own store */
    ca?: string | Buffer
    timeoutMs?: number
}

/** POST one gzipped report to an https rua URI. Never throws; resolves once, with the outcome. */
export function postReport(url: string, gz: Buffer, opts: PostOptions = {}): Promise<PostResult> {
    return new Promise((resolve) => {
        let done = false
        const finish = (r: PostResult): void => {
            if (done) return
            done = true
            resolve(r)
        }
        let u: URL
        try {
            u = new URL(url)
        } catch {
            return finish({ ok: false, error: `not a URL: ${url}` })
        }
        if (u.protocol !== 'https:') return finish({ ok: false, error: `not an https URL: ${url}` })
        const req = https.request(
            u,
            {
                method: 'POST',
                headers: { 'Content-Type': 'application/tlsrpt+gzip', 'Content-Length': gz.length },
                ca: opts.ca,
                rejectUnauthorized: true,
                timeout: opts.timeoutMs ?? 30000,
            },
            (res) => {
                // the body is not needed; read (and drop) it so the connection ends cleanly
                res.resume()
                res.on('end', () => {
                    const status = res.statusCode ?? 0
                    finish(
                        status >= 200 && status < 300 ? { ok: true, status } : { ok: false, status, error: `HTTP ${status} ${res.statusMessage ?? ''}`.trim() },
                    )
                })
                res.on('error', (e) => finish({ ok: false, status: res.statusCode, error: e.message }))
            },
        )
        req.on('timeout', () => {
            req.destroy(new Error(`no answer within ${opts.timeoutMs ?? 30000} ms`))
        })
        req.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: e.code ? `${e.code}: ${e.message}` : e.message }))
        req.end(gz)
    })
}
