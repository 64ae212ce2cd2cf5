// Issue 15 (MTA-STS, RFC 8461 3.3): fetching a policy from a real HTTPS server on loopback
// (127.0.7.80:8443, its certificate for mta-sts.sts.test from a test CA given as the CA file; the
// system store is never changed). What is and is not a policy: a 200 text/plain within 64 KiB from a
// server PKIX-valid for mta-sts.<domain>; never a redirect, another status or type, an oversized body,
// another name, an untrusted CA, or a server that does not answer in time.
import assert from 'node:assert/strict'
import https from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { makeCertificate } from '../world/certs'
import { fetchStsPolicy, MAX_POLICY_BYTES } from '../../lib/mtasts/fetch'

const ADDRESS = '127.0.7.80'
const PORT = 8443
const POLICY = 'version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n'

describe('MTA-STS policy fetch (RFC 8461 3.3) from a real HTTPS server', function () {
    this.timeout(30000)
    const ca = makeCertificate({ cn: 'STS Test CA', ca: true })
    const other = makeCertificate({ cn: 'Other CA', ca: true })
    let server: https.Server
    let answer: (req: IncomingMessage, res: ServerResponse) => void
    const seen: { host?: string; path?: string; servername?: string }[] = []
    const fetch = (domain = 'sts.test', o: { ca?: string; timeoutMs?: number } = {}) =>
        fetchStsPolicy(domain, { ca: o.ca ?? ca.pem, port: PORT, timeoutMs: o.timeoutMs ?? 5000, addresses: async () => [ADDRESS] })

    before(async () => {
        // certificates for two names, chosen by SNI: the policy host, and one for another name
        const good = makeCertificate({ cn: 'mta-sts.sts.test', sans: ['mta-sts.sts.test'], issuer: ca })
        const wrongName = makeCertificate({ cn: 'mta-sts.other.test', sans: ['mta-sts.other.test'], issuer: ca })
        const untrusted = makeCertificate({ cn: 'mta-sts.untrusted.test', sans: ['mta-sts.untrusted.test'], issuer: other })
        const byName: Record<string, { cert: string; key: string }> = {
            'mta-sts.sts.test': { cert: good.pem, key: good.keyPem },
            'mta-sts.untrusted.test': { cert: untrusted.pem, key: untrusted.keyPem },
        }
        const tls = await import('node:tls')
        server = https.createServer(
            {
                cert: wrongName.pem,
                key: wrongName.keyPem,
                SNICallback: (name, cb) => {
                    const c = byName[name]
                    cb(null, c ? tls.createSecureContext(c) : undefined)
                },
            },
            (req, res) => {
                seen.push({ host: req.headers.host, path: req.url, servername: (req.socket as unknown as { servername?: string }).servername })
                answer(req, res)
            },
        )
        await new Promise<void>((r) => server.listen(PORT, ADDRESS, r))
    })
    after(() => server?.close())

    it('C34: a 200 text/plain policy from mta-sts.<domain>, asked by its name (SNI and Host) at /.well-known/mta-sts.txt', async () => {
        answer = (_req, res) => res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end(POLICY)
        const r = await fetch()
        assert.deepEqual(r, { ok: true, text: POLICY, host: 'mta-sts.sts.test' })
        assert.deepEqual(seen[seen.length - 1], { host: 'mta-sts.sts.test', path: '/.well-known/mta-sts.txt', servername: 'mta-sts.sts.test' })
    })

    it('C34: a redirect is not followed, and no other status or type is a policy', async () => {
        const cases: [(req: IncomingMessage, res: ServerResponse) => void, RegExp][] = [
            [(_q, res) => res.writeHead(301, { Location: 'https://mta-sts.sts.test/elsewhere' }).end(), /HTTP 301 \(a redirect: not followed\)/],
            [(_q, res) => res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no'), /HTTP 404/],
            [(_q, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end(POLICY), /Content-Type "text\/html" is not text\/plain/],
            [(_q, res) => res.writeHead(200).end(POLICY), /Content-Type "none"/],
        ]
        for (const [handler, why] of cases) {
            answer = handler
            const before = seen.length
            const r = await fetch()
            assert.equal(r.ok, false)
            assert.match((r as { error: string }).error, why)
            assert.equal(seen.length, before + 1, 'one request, nothing followed')
        }
    })

    it('C34: a refused answer whose body never ends does not keep the connection', async () => {
        answer = (_req, res) => {
            res.writeHead(404, { 'Content-Type': 'text/plain' })
            res.write('not here, and more to come ')
        }
        const r = await fetch()
        assert.match((r as { error: string }).error, /HTTP 404/)
        const end = Date.now() + 2000
        let open = 1
        while (Date.now() < end && (open = await new Promise<number>((res) => server.getConnections((_e, n) => res(n)))) > 0)
            await new Promise((res) => setTimeout(res, 50))
        assert.equal(open, 0, 'the client closed it')
    })

    it(`C34: a body over ${MAX_POLICY_BYTES} bytes is no policy`, async () => {
        answer = (_req, res) => res.writeHead(200, { 'Content-Type': 'text/plain' }).end(POLICY + 'x'.repeat(MAX_POLICY_BYTES))
        const r = await fetch()
        assert.equal(r.ok, false)
        assert.match((r as { error: string }).error, /larger than 65536 bytes/)
    })

    it('C34: PKIX: a certificate for another name, or from a CA not trusted, is refused before anything is read', async () => {
        answer = (_req, res) => res.writeHead(200, { 'Content-Type': 'text/plain' }).end(POLICY)
        const before = seen.length
        const wrong = await fetch('stranger.test') // served the default certificate, for mta-sts.other.test
        assert.equal(wrong.ok, false)
        assert.match((wrong as { error: string }).error, /ERR_TLS_CERT_ALTNAME_INVALID|does not match/)
        const untrusted = await fetch('untrusted.test')
        assert.equal(untrusted.ok, false)
        assert.match((untrusted as { error: string }).error, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/)
        // the system store does not know the test CA either
        const system = await fetchStsPolicy('sts.test', { port: PORT, timeoutMs: 5000, addresses: async () => [ADDRESS] })
        assert.equal(system.ok, false)
        assert.equal(seen.length, before, 'no request was sent')
    })

    it('C34: a server that does not answer in time, and a name without an address, are failures, never a hang or a throw', async () => {
        answer = () => undefined // never answers
        const started = Date.now()
        const slow = await fetch('sts.test', { timeoutMs: 500 })
        assert.equal(slow.ok, false)
        assert.match((slow as { error: string }).error, /no policy within 0.5 s/)
        assert.ok(Date.now() - started < 3000)
        const none = await fetchStsPolicy('sts.test', { ca: ca.pem, port: PORT, timeoutMs: 2000, addresses: async () => [] })
        assert.equal(none.ok, false)
        assert.match((none as { error: string }).error, /no address for mta-sts\.sts\.test/)
    })
})
