// What the TLS report tests share: a DANE session result as the plugin keeps one, a TXT answer as the
// resolver gives one, and a real HTTPS report endpoint on loopback whose certificate a test CA issued.
import https from 'node:https'
import type { Answer } from '../../lib/dns/answer'
import { sessionResult, type SessionResult } from '../../lib/tlsrpt/result'
import { makeCertificate } from './certs'

/** One DANE session to `host` (default mx.<domain>): verified, or failed with `no-match`. */
export function daneResult(o: { id: string; at: number; domain: string; ok: boolean; host?: string }): SessionResult {
    const host = o.host ?? `mx.${o.domain}`
    return sessionResult({
        id: o.id,
        at: o.at,
        recipientDomain: o.domain,
        host,
        mode: 'dane',
        tlsaBase: host,
        tlsaRecords: ['3 1 1 0011'],
        usableRecords: 1,
        address: '127.0.0.13',
        localAddress: '127.0.0.1',
        outcome: o.ok ? 'verified' : 'failed',
        resultType: o.ok ? undefined : 'validation-failure',
        reasonCode: o.ok ? undefined : 'no-match',
    })!
}

/** The resolver's answer for a TXT lookup: these strings (secure), a failure, or NXDOMAIN. */
export function txtAnswer(name: string, records: string[] | 'failed' | 'nxdomain'): Answer {
    const base = { name, type: 'TXT' as const, secure: true, canonicalName: name, cnames: [], ttl: 300, rcode: 0 }
    if (records === 'failed') return { ...base, status: 'failed', secure: false, reason: 'servfail', rcode: 2 }
    if (records === 'nxdomain') return { ...base, status: 'nxdomain' }
    return { ...base, status: 'ok', txt: records }
}

export interface ReportEndpoint {
    server: https.Server
    /** every POST received */
    posts: { type?: string; body: Buffer }[]
    /** the CA that issued its certificate (give it to the plugin as https_ca_file) */
    caPem: string
}

/** A real HTTPS endpoint on `address`:443 answering 200 to every POST, its certificate for that address. */
export async function startReportEndpoint(address: string): Promise<ReportEndpoint> {
    const ca = makeCertificate({ cn: 'Report Test CA', ca: true })
    const cert = makeCertificate({ cn: 'report endpoint', ipSans: [address], issuer: ca })
    const posts: ReportEndpoint['posts'] = []
    const server = https.createServer({ cert: cert.pem, key: cert.keyPem }, (req, res) => {
        const chunks: Buffer[] = []
        req.on('data', (c: Buffer) => chunks.push(c))
        req.on('end', () => {
            posts.push({ type: req.headers['content-type'], body: Buffer.concat(chunks) })
            res.writeHead(200).end()
        })
    })
    await new Promise<void>((r) => server.listen(443, address, r))
    return { server, posts, caPem: ca.pem }
}
