// RFC 8460 5.4: a report POSTed to a real HTTPS endpoint on loopback, whose certificate a test CA issued
// (given to the client as its CA: the system store is never altered): the body and media type arrive as
// sent; a 2xx is delivery; a redirect, a 5xx, an untrusted certificate or a name mismatch are failures.
import assert from 'node:assert/strict'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'
import { makeCertificate, type TestCert } from '../world/certs'
import { postReport } from '../../lib/tlsrpt/https'
import { gzipReport } from '../../lib/tlsrpt/message'
import { buildReport } from '../../lib/tlsrpt/report'

const ADDRESS = '127.0.0.42'
const REPORT = buildReport(
    '2026-11-24',
    'dest.example',
    [
        {
            id: 'h1',
            at: Date.parse('2026-11-24T10:00:00Z'),
            recipientDomain: 'dest.example',
            policy: { type: 'no-policy-found', strings: [], domain: 'dest.example', mxHosts: [] },
            ok: true,
        },
    ],
    { organizationName: 'Test', contactInfo: 'tls@sender.example' },
)!

describe('TLSRPT over HTTPS (RFC 8460 5.4) to a real endpoint', () => {
    const ca = makeCertificate({ cn: 'Report Test CA', ca: true })
    const other = makeCertificate({ cn: 'Some Other CA', ca: true })
    const good = makeCertificate({ cn: 'report endpoint', sans: [], ipSans: [ADDRESS], issuer: ca })
    const wrongName = makeCertificate({ cn: 'report endpoint', sans: ['elsewhere.example'], issuer: ca })
    const received: { type?: string; body: Buffer; path?: string }[] = []

    async function endpoint(cert: TestCert, status = 200, location?: string): Promise<{ url: string; close: () => void }> {
        const server = https.createServer({ cert: cert.pem, key: cert.keyPem }, (req, res) => {
            const chunks: Buffer[] = []
            req.on('data', (c: Buffer) => chunks.push(c))
            req.on('end', () => {
                received.push({ type: req.headers['content-type'], body: Buffer.concat(chunks), path: req.url })
                res.writeHead(status, location ? { Location: location } : {})
                res.end('thanks')
            })
        })
        await new Promise<void>((r) => server.listen(0, ADDRESS, r))
        const port = (server.address() as AddressInfo).port
        return { url: `https://${ADDRESS}:${port}/v1/tlsrpt`, close: () => server.close() }
    }

    beforeEach(() => (received.length = 0))

    it('delivers: the gzipped report as application/tlsrpt+gzip, a 2xx status', async () => {
        const e = await endpoint(good, 201)
        try {
            const r = await postReport(e.url, gzipReport(REPORT), { ca: ca.pem })
            assert.deepEqual(r, { ok: true, status: 201 })
            assert.equal(received.length, 1)
            assert.equal(received[0].type, 'application/tlsrpt+gzip')
            assert.equal(received[0].path, '/v1/tlsrpt')
            assert.deepEqual(JSON.parse(gunzipSync(received[0].body).toString()), REPORT)
        } finally {
            e.close()
        }
    })

    it('a 5xx and a redirect are failures (no redirect is followed)', async () => {
        const e = await endpoint(good, 503)
        const r = await endpoint(good, 302, 'https://127.0.0.42:1/elsewhere')
        try {
            assert.deepEqual(await postReport(e.url, gzipReport(REPORT), { ca: ca.pem }), { ok: false, status: 503, error: 'HTTP 503 Service Unavailable' })
            const redirected = await postReport(r.url, gzipReport(REPORT), { ca: ca.pem })
            assert.equal(redirected.ok, false)
            assert.equal(redirected.status, 302)
            assert.equal(received.length, 2, 'nothing was sent to the redirect target')
        } finally {
            e.close()
            r.close()
        }
    })

    it('PKIX: a certificate from a CA not trusted, or for another name, is refused before anything is sent', async () => {
        const e = await endpoint(good)
        const w = await endpoint(wrongName)
        try {
            const untrusted = await postReport(e.url, gzipReport(REPORT), { ca: other.pem })
            assert.equal(untrusted.ok, false)
            assert.match(untrusted.error ?? '', /certificate|self.signed|issuer/i)
            const mismatch = await postReport(w.url, gzipReport(REPORT), { ca: ca.pem })
            assert.equal(mismatch.ok, false)
            assert.match(mismatch.error ?? '', /ERR_TLS_CERT_ALTNAME_INVALID|altnames/i)
            assert.equal(received.length, 0)
        } finally {
            e.close()
            w.close()
        }
    })

    it('a URL that is not https, and an address where nothing listens, are failures, never a throw', async () => {
        assert.equal((await postReport('http://127.0.0.42/x', gzipReport(REPORT))).ok, false)
        const refused = await postReport(`https://${ADDRESS}:1/x`, gzipReport(REPORT), { ca: ca.pem, timeoutMs: 2000 })
        assert.equal(refused.ok, false)
        assert.match(refused.error ?? '', /ECONNREFUSED/)
    })
})
