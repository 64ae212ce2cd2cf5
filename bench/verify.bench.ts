/**
 * Verification throughput: DANE-EE and DANE-TA, 1/4/16 TLSA records × chains of 1/2/3
 * certificates. Each iteration is one simulated connection: parseChain once, then
 * verifyChain ("parse+verify": certificates seen before, whose facts lib/cert-facts
 * keeps, as a receiver presents the same chain to every connection); "verify only"
 * reuses one ParsedChain. The matching record is always last, so every decoy is tried
 * first. Then the cost of a chain never seen before (its certificates parsed, hashed and
 * their signatures checked), and of taking the presented chain from a TLS socket in wire
 * order (getPeerX509Certificate, lib/peer-chain) for one and three certificates.
 */
import { randomBytes } from 'node:crypto'
import tls from 'node:tls'
import { performance } from 'node:perf_hooks'
import { tlsaFromText, type TlsaRecord } from '../lib/tlsa'
import { parseChain, verifyChain, type ParsedChain } from '../lib/verify'
import { makeCertificate, tlsaText, type TestCert } from '../test/world/certs'

const RECORD_COUNTS = [1, 4, 16]
const CHAIN_LENGTHS = [1, 2, 3]
const MIN_MS = 250

interface Case {
    label: string
    chain: Buffer[]
    records: TlsaRecord[]
}

function decoys(n: number, usage: number): TlsaRecord[] {
    return Array.from({ length: n }, () => tlsaFromText(`${usage} 1 1 ${randomBytes(32).toString('hex')}`))
}

function measure(c: Case, preparsed?: ParsedChain): number {
    const run = (): void => {
        const parsed = preparsed ?? parseChain(c.chain)
        const r = verifyChain({ chain: parsed, records: c.records, referenceNames: ['mx.example.com'] })
        if (!r.authenticated) throw new Error(`bench case ${c.label} did not authenticate: ${r.failure?.detail}`)
    }
    for (let i = 0; i < 20; i++) run() // warm-up
    let n = 0
    const start = performance.now()
    let elapsed = 0
    while (elapsed < MIN_MS) {
        for (let i = 0; i < 10; i++) run()
        n += 10
        elapsed = performance.now() - start
    }
    return (n * 1000) / elapsed
}

export async function benchVerify(): Promise<void> {
    const root: TestCert = makeCertificate({ cn: 'Bench Root', ca: true })
    const inter: TestCert = makeCertificate({ cn: 'Bench Intermediate', ca: true, issuer: root })
    const leaf: TestCert = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'], issuer: inter })
    const full = [leaf.der, inter.der, root.der]

    // DANE-TA anchor per chain length: 1 = leaf only, anchor `2 0 0` in DNS; 2 = intermediate presented; 3 = root presented
    const taRecord = (len: number): TlsaRecord =>
        tlsaFromText(len === 1 ? tlsaText(inter, 2, 0, 0) : len === 2 ? tlsaText(inter, 2, 1, 1) : tlsaText(root, 2, 1, 1))

    const rows: string[] = []
    const header = `${'usage'.padEnd(8)}${'records'.padStart(8)}${'chain'.padStart(7)}${'parse+verify/s'.padStart(16)}${'verify only/s'.padStart(16)}`
    for (const usage of ['EE', 'TA'] as const) {
        for (const len of CHAIN_LENGTHS) {
            for (const count of RECORD_COUNTS) {
                const right = usage === 'EE' ? tlsaFromText(tlsaText(leaf, 3, 1, 1)) : taRecord(len)
                const c: Case = {
                    label: `${usage} ${count}×${len}`,
                    chain: full.slice(0, len),
                    records: [...decoys(count - 1, usage === 'EE' ? 3 : 2), right],
                }
                const rate = measure(c)
                const verifyOnly = measure(c, parseChain(c.chain))
                const fmt = (n: number): string => Math.round(n).toLocaleString('en-US').padStart(16)
                rows.push(`${`DANE-${usage}`.padEnd(8)}${String(count).padStart(8)}${String(len).padStart(7)}${fmt(rate)}${fmt(verifyOnly)}`)
                await new Promise((resolve) => setImmediate(resolve)) // let the event loop breathe between cells
            }
        }
    }
    console.log('verifyChain, ECDSA P-256 certificates; the matching record is the last one')
    console.log(header)
    for (const row of rows) console.log(row)
    await benchVerifyCosts()
}

function median(xs: number[]): number {
    const s = [...xs].sort((a, b) => a - b)
    return s[Math.floor(s.length / 2)]
}

/** µs to verify chains never seen before: fresh certificates every time */
function firstSeen(len: number, usage: 'EE' | 'TA', n: number): number {
    const times: number[] = []
    for (let i = 0; i < n; i++) {
        const root = makeCertificate({ cn: `First Root ${i}`, ca: true })
        const inter = makeCertificate({ cn: `First Intermediate ${i}`, ca: true, issuer: root })
        const leaf = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'], issuer: inter })
        const chain = [leaf.der, inter.der, root.der].slice(0, len)
        const record = tlsaFromText(usage === 'EE' ? tlsaText(leaf, 3, 1, 1) : tlsaText(root, 2, 1, 1))
        const t = performance.now()
        const r = verifyChain({ chain: parseChain(chain), records: [record], referenceNames: ['mx.example.com'] })
        times.push((performance.now() - t) * 1000)
        if (!r.authenticated) throw new Error(`first-seen ${usage} ${len} did not authenticate: ${r.failure?.detail}`)
    }
    return median(times)
}

/** µs for getPeerX509Certificate() on a client socket, after getPeerCertificate() as Haraka calls it */
async function peerChainCost(certs: TestCert[], n: number): Promise<number> {
    const server = tls.createServer({ key: certs[0].keyPem, cert: certs.map((c) => c.pem).join('') }, (s) => s.end())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    const times: number[] = []
    for (let i = 0; i < n; i++) {
        await new Promise<void>((resolve) => {
            const c = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
                c.getPeerCertificate()
                const t = performance.now()
                c.getPeerX509Certificate()
                times.push((performance.now() - t) * 1000)
                c.end()
                resolve()
            })
            c.on('error', () => resolve())
        })
    }
    server.close()
    return median(times.slice(10))
}

export async function benchVerifyCosts(): Promise<void> {
    const root = makeCertificate({ cn: 'Peer Root', ca: true })
    const inter = makeCertificate({ cn: 'Peer Intermediate', ca: true, issuer: root })
    const leaf = makeCertificate({ cn: 'mx.example.com', sans: ['mx.example.com'], issuer: inter })
    const lines = [
        `a chain never seen before (median of 40): DANE-EE, 1 certificate ${firstSeen(1, 'EE', 40).toFixed(0)} µs; DANE-TA, 3 certificates ${firstSeen(3, 'TA', 40).toFixed(0)} µs`,
        `the presented chain from a TLS socket (getPeerX509Certificate, median of 190): 1 certificate ${(await peerChainCost([leaf], 200)).toFixed(1)} µs; 3 certificates ${(await peerChainCost([leaf, inter, root], 200)).toFixed(1)} µs`,
    ]
    for (const l of lines) console.log(l)
}
