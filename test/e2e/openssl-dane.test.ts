// Differential test of DANE-TA path validation (C15): every case is put to
// OpenSSL itself (`openssl s_client -dane_tlsa_domain … -dane_tlsa_rrdata …`
// against an in-process TLS server presenting the chain) and to the project's
// verifyChain, and the two must agree. OpenSSL's verify return code is asserted
// too, so a case that OpenSSL was not asked properly fails instead of passing
// by accident. To add a case, append to `cases`.
//
// Servers listen on 127.0.7.1 (port chosen by the system); nothing else is bound.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import tls from 'node:tls'
import type { AddressInfo, Socket } from 'node:net'
import { makeCertificate, tlsaText, TestCert, CertificateOptions } from '../world/certs'
import { verifyChain, VerifyResult } from '../../lib/verify'
import { tlsaFromText } from '../../lib/tlsa'

const HOST = '127.0.7.1'
const NAME = 'mx.good.test'
const DAY = 86_400_000
const OPENSSL_TIMEOUT_MS = 10000

// X509_V_ERR_* codes from OpenSSL's x509_vfy.h, for the expectations below
const X509_V = {
    OK: 0,
    CERT_SIGNATURE_FAILURE: 7,
    CERT_HAS_EXPIRED: 10,
    PATH_LENGTH_EXCEEDED: 25,
    INVALID_PURPOSE: 26,
    UNHANDLED_CRITICAL_EXTENSION: 34,
    PERMITTED_VIOLATION: 47,
    EXCLUDED_VIOLATION: 48,
    DEPTH_ZERO_SELF_SIGNED_CERT: 18,
    DANE_NO_MATCH: 65,
    HOSTNAME_MISMATCH: 62,
    INVALID_CA: 79,
} as const

interface Setup {
    /** as presented by the server: leaf first */
    chain: TestCert[]
    /** TLSA record data, "u s m hex" */
    rr: string
    /** the TLSA base domain and SNI name, and the project's reference identifier; default mx.good.test */
    name?: string
}

interface Case {
    /** short label: the item of the brief it implements */
    id: string
    /** what the case is (the test title is "C15: <id> <title>") */
    title: string
    build: () => Setup
    /** OpenSSL's "Verify return code" (the last error its verify callback saw; 0 = accepted) */
    openssl: number
    /** where it says more: every "verify error:num=N" s_client printed, in order */
    opensslErrors?: number[]
    /** only where the project deliberately differs from OpenSSL: its answer, and why */
    project?: { authenticated: boolean; why: string }
}

// ---- certificates --------------------------------------------------------------

/** a CA certificate as real CAs make them: key identifiers, keyCertSign + cRLSign */
function ca(cn: string, issuer?: TestCert, more: Partial<CertificateOptions> = {}): TestCert {
    return makeCertificate({ cn, ca: true, issuer, keyIds: true, keyUsage: ['keyCertSign', 'cRLSign'], ...more })
}

/** a server certificate for `name` (SAN and CN) with key identifiers */
function leaf(issuer: TestCert | undefined, more: Partial<CertificateOptions> = {}, name = NAME): TestCert {
    return makeCertificate({ cn: name, sans: [name], issuer, keyIds: true, ...more })
}

/** root → inter → leaf, with options for the intermediate and the leaf */
function twoLevel(interMore: Partial<CertificateOptions> = {}, leafMore: Partial<CertificateOptions> = {}, name = NAME) {
    const root = ca('C15 Test Root CA')
    const inter = ca('C15 Test Intermediate CA', root, interMore)
    return { root, inter, leaf: leaf(inter, leafMore, name) }
}

/** root → inter (pathLen 0) → subca → leaf */
function pathLenChain() {
    const root = ca('C15 Test Root CA')
    const inter = ca('C15 Test Intermediate CA', root, { pathLen: 0 })
    const subca = ca('C15 Test Sub CA', inter)
    return { root, inter, subca, leaf: leaf(subca) }
}

/** "2 1 0 <hex>": the full SubjectPublicKeyInfo of `cert` */
function bareKey(cert: TestCert): string {
    return tlsaText(cert, 2, 1, 0)
}

const UNKNOWN_CRITICAL = { oid: '1.2.3.4', critical: true, value: Buffer.from([0x05, 0x00]) }
const UNKNOWN = { oid: '1.2.3.4', value: Buffer.from([0x05, 0x00]) }
const expired = { notBefore: new Date(Date.now() - 400 * DAY), notAfter: new Date(Date.now() - 30 * DAY) }

// ---- the cases -------------------------------------------------------------------

const cases: Case[] = [
    {
        id: '1',
        title: 'good root → inter → leaf, leaf + inter presented, 2 1 1 of the intermediate: accepted',
        build: () => {
            const c = twoLevel()
            return { chain: [c.leaf, c.inter], rr: tlsaText(c.inter, 2, 1, 1) }
        },
        openssl: X509_V.OK,
    },
    {
        id: '2',
        title: 'pathLenConstraint 0 on an intermediate with a sub-CA below it, root anchor 2 0 1: rejected',
        build: () => {
            const c = pathLenChain()
            return { chain: [c.leaf, c.subca, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1) }
        },
        openssl: X509_V.PATH_LENGTH_EXCEEDED,
    },
    {
        id: '3',
        title: "pathLenConstraint 0 on the anchor itself (2 0 1 of it), a sub-CA below: rejected, the anchor's pathLen applies",
        build: () => {
            const c = pathLenChain()
            return { chain: [c.leaf, c.subca, c.inter, c.root], rr: tlsaText(c.inter, 2, 0, 1) }
        },
        openssl: X509_V.PATH_LENGTH_EXCEEDED,
    },
    {
        id: '4',
        title: 'name constraints: intermediate permits .good.test only, leaf is mx.evil.test: rejected',
        build: () => {
            const c = twoLevel({ nameConstraints: { permitted: [{ dns: '.good.test' }] } }, {}, 'mx.evil.test')
            return { chain: [c.leaf, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1), name: 'mx.evil.test' }
        },
        openssl: X509_V.PERMITTED_VIOLATION,
    },
    {
        id: '5',
        title: 'name constraints satisfied: intermediate permits .good.test, leaf mx.good.test: accepted',
        build: () => {
            const c = twoLevel({ nameConstraints: { permitted: [{ dns: '.good.test' }] } })
            return { chain: [c.leaf, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1) }
        },
        openssl: X509_V.OK,
    },
    {
        id: '6',
        title: 'excluded subtree .evil.test, leaf SANs mx.good.test and mx.evil.test: rejected',
        build: () => {
            const c = twoLevel({ nameConstraints: { excluded: [{ dns: '.evil.test' }] } }, { sans: [NAME, 'mx.evil.test'] })
            return { chain: [c.leaf, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1) }
        },
        openssl: X509_V.EXCLUDED_VIOLATION,
    },
    {
        id: '7',
        title: 'name constraints on the CN: permitted .good.test, leaf without SANs and CN mx.evil.test: rejected',
        build: () => {
            const c = twoLevel({ nameConstraints: { permitted: [{ dns: '.good.test' }] } }, { sans: [] }, 'mx.evil.test')
            return { chain: [c.leaf, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1), name: 'mx.evil.test' }
        },
        openssl: X509_V.PERMITTED_VIOLATION,
    },
    {
        id: '8',
        title: 'leaf extKeyUsage clientAuth only: rejected',
        build: () => {
            const c = twoLevel({}, { extKeyUsage: ['clientAuth'] })
            return { chain: [c.leaf, c.inter], rr: tlsaText(c.inter, 2, 1, 1) }
        },
        openssl: X509_V.INVALID_PURPOSE,
    },
    {
        id: '9',
        title: 'DEVIATION: leaf extKeyUsage anyExtendedKeyUsage only: OpenSSL 3.0 rejects (its sslserver purpose wants serverAuth itself), the project accepts (RFC 5280 4.2.1.12)',
        build: () => {
            const c = twoLevel({}, { extKeyUsage: ['any'] })
            return { chain: [c.leaf, c.inter], rr: tlsaText(c.inter, 2, 1, 1) }
        },
        openssl: X509_V.INVALID_PURPOSE,
        project: { authenticated: true, why: 'RFC 5280 4.2.1.12: anyExtendedKeyUsage allows every purpose; the issue names it beside serverAuth' },
    },
    {
        id: '10',
        title: 'leaf extKeyUsage serverAuth + clientAuth: accepted',
        build: () => {
            const c = twoLevel({}, { extKeyUsage: ['serverAuth', 'clientAuth'] })
            return { chain: [c.leaf, c.inter], rr: tlsaText(c.inter, 2, 1, 1) }
        },
        openssl: X509_V.OK,
    },
    {
        id: '11',
        title: 'intermediate extKeyUsage clientAuth only, below a root anchor 2 0 1: rejected',
        build: () => {
            const c = twoLevel({ extKeyUsage: ['clientAuth'] })
            return { chain: [c.leaf, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1) }
        },
        openssl: X509_V.INVALID_PURPOSE,
    },
    {
        id: '11b',
        title: "intermediate extKeyUsage clientAuth only, the intermediate itself the anchor (2 1 1): rejected, the anchor's EKU applies",
        build: () => {
            const c = twoLevel({ extKeyUsage: ['clientAuth'] })
            return { chain: [c.leaf, c.inter], rr: tlsaText(c.inter, 2, 1, 1) }
        },
        openssl: X509_V.INVALID_PURPOSE,
    },
    {
        id: '12',
        title: 'unknown critical extension on the leaf: rejected',
        build: () => {
            const c = twoLevel({}, { extraExtensions: [UNKNOWN_CRITICAL] })
            return { chain: [c.leaf, c.inter], rr: tlsaText(c.inter, 2, 1, 1) }
        },
        openssl: X509_V.UNHANDLED_CRITICAL_EXTENSION,
    },
    {
        id: '13',
        title: 'unknown critical extension on the intermediate, below a root anchor 2 0 1: rejected',
        build: () => {
            const c = twoLevel({ extraExtensions: [UNKNOWN_CRITICAL] })
            return { chain: [c.leaf, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1) }
        },
        openssl: X509_V.UNHANDLED_CRITICAL_EXTENSION,
    },
    {
        id: '13b',
        title: 'unknown critical extension on the intermediate that is itself the anchor (2 1 1)',
        build: () => {
            const c = twoLevel({ extraExtensions: [UNKNOWN_CRITICAL] })
            return { chain: [c.leaf, c.inter], rr: tlsaText(c.inter, 2, 1, 1) }
        },
        openssl: X509_V.UNHANDLED_CRITICAL_EXTENSION,
    },
    {
        id: '14',
        title: 'unknown non-critical extension on the leaf: accepted',
        build: () => {
            const c = twoLevel({}, { extraExtensions: [UNKNOWN] })
            return { chain: [c.leaf, c.inter], rr: tlsaText(c.inter, 2, 1, 1) }
        },
        openssl: X509_V.OK,
    },
    {
        id: '15',
        title: 'leaf keyUsage keyCertSign only (no digitalSignature): rejected',
        build: () => {
            const c = twoLevel({}, { keyUsage: ['keyCertSign'] })
            return { chain: [c.leaf, c.inter], rr: tlsaText(c.inter, 2, 1, 1) }
        },
        openssl: X509_V.INVALID_PURPOSE,
    },
    {
        id: '15b',
        title: 'leaf keyUsage digitalSignature: accepted',
        build: () => {
            const c = twoLevel({}, { keyUsage: ['digitalSignature'] })
            return { chain: [c.leaf, c.inter], rr: tlsaText(c.inter, 2, 1, 1) }
        },
        openssl: X509_V.OK,
    },
    {
        id: '16',
        title: "expired intermediate that is the anchor (2 0 1 of it): accepted, the anchor's dates are not checked",
        build: () => {
            const c = twoLevel(expired)
            return { chain: [c.leaf, c.inter], rr: tlsaText(c.inter, 2, 0, 1) }
        },
        openssl: X509_V.OK,
    },
    {
        id: '16b',
        title: 'expired intermediate below a root anchor 2 0 1: rejected',
        build: () => {
            const c = twoLevel(expired)
            return { chain: [c.leaf, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1) }
        },
        openssl: X509_V.CERT_HAS_EXPIRED,
    },
    {
        id: '17',
        title: 'bare key anchor 2 1 0 of an intermediate with pathLen 0 that is not presented, a sub-CA below: accepted (a bare key has no constraints)',
        build: () => {
            const c = pathLenChain()
            return { chain: [c.leaf, c.subca], rr: bareKey(c.inter) }
        },
        openssl: X509_V.OK,
    },
    {
        id: '17b',
        title: '2 1 0 of an intermediate with pathLen 0 that IS presented, a sub-CA below: the presented certificate is the anchor',
        build: () => {
            const c = pathLenChain()
            return { chain: [c.leaf, c.subca, c.inter], rr: bareKey(c.inter) }
        },
        openssl: X509_V.PATH_LENGTH_EXCEEDED,
    },
    {
        id: '18',
        title: 'self-signed leaf (not a CA) with 2 0 1 of itself: rejected, depth 0 is never a DANE-TA anchor',
        build: () => {
            const self = leaf(undefined)
            return { chain: [self], rr: tlsaText(self, 2, 0, 1) }
        },
        // s_client's callback goes on after the first error (65), so the last one (18) is the return code
        openssl: X509_V.DEPTH_ZERO_SELF_SIGNED_CERT,
        opensslErrors: [X509_V.DANE_NO_MATCH, X509_V.DEPTH_ZERO_SELF_SIGNED_CERT],
    },
    {
        id: '18b',
        title: 'the same self-signed leaf with 3 0 1 of itself: accepted',
        build: () => {
            const self = leaf(undefined)
            return { chain: [self], rr: tlsaText(self, 3, 0, 1) }
        },
        openssl: X509_V.OK,
    },
    {
        id: '19',
        title: 'decoy intermediate (same subject, other key, own SKI) presented before the real one, leaf with AKI, root anchor: accepted',
        build: () => {
            const c = twoLevel()
            const decoy = ca('C15 Test Intermediate CA', c.root)
            return { chain: [c.leaf, decoy, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1) }
        },
        openssl: X509_V.OK,
    },
    {
        id: '20',
        title: 'DEVIATION: decoy intermediate without any key identifiers before the real one, root anchor: OpenSSL rejects (first same-name issuer), the project accepts (tries every candidate)',
        build: () => {
            const noIds = { keyIds: false }
            const root = ca('C15 Test Root CA', undefined, noIds)
            const inter = ca('C15 Test Intermediate CA', root, noIds)
            const decoy = ca('C15 Test Intermediate CA', root, noIds)
            return { chain: [leaf(inter, noIds), decoy, inter, root], rr: tlsaText(root, 2, 0, 1) }
        },
        openssl: X509_V.CERT_SIGNATURE_FAILURE,
        project: { authenticated: true, why: 'path building tries every same-named candidate by signature' },
    },
    {
        id: '21',
        title: 'a leaf without SANs whose CN has a trailing dot, under a name-constrained CA: rejected (the CN is no host name)',
        build: () => {
            const c = twoLevel({ nameConstraints: { permitted: [{ dns: 'allowed.test' }] } }, {})
            const dotted = makeCertificate({ cn: `${NAME}.`, issuer: c.inter, keyIds: true })
            return { chain: [dotted, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1) }
        },
        openssl: X509_V.HOSTNAME_MISMATCH,
    },
    {
        id: '22',
        title: 'an anchor certificate with neither basicConstraints nor keyUsage (a server certificate) above the leaf: rejected',
        build: () => {
            const plain = makeCertificate({ cn: 'C15 Plain Server', keyIds: true, basicConstraints: false })
            return { chain: [leaf(plain), plain], rr: tlsaText(plain, 2, 0, 1) }
        },
        openssl: X509_V.INVALID_PURPOSE,
        opensslErrors: [X509_V.INVALID_CA, X509_V.INVALID_PURPOSE],
    },
    {
        id: '23',
        title: 'a 2 1 0 key also carried by a presented certificate that issued nothing on the path: the bare key anchors, accepted',
        build: () => {
            const rootA = ca('C15 Root A')
            const rootB = makeCertificate({ cn: 'C15 Root B', ca: true, keyIds: true, keyUsage: ['keyCertSign', 'cRLSign'], keyPem: rootA.keyPem })
            const inter = ca('C15 Test Intermediate CA', rootA)
            return { chain: [leaf(inter), inter, rootB], rr: bareKey(rootA) }
        },
        openssl: X509_V.OK,
    },
    {
        id: '24',
        title: 'requireExplicitPolicy on the intermediate, no policy on the leaf: accepted (OpenSSL checks policies only when asked)',
        build: () => {
            const requireExplicit = { oid: '2.5.29.36', critical: true, value: Buffer.from([0x30, 0x03, 0x80, 0x01, 0x00]) }
            const c = twoLevel({ extraExtensions: [requireExplicit] })
            return { chain: [c.leaf, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1) }
        },
        openssl: X509_V.OK,
    },
    {
        id: '25',
        title: 'DEVIATION: a wildcard SAN *.good.test under a CA excluding mx.good.test: OpenSSL accepts (it compares the "*" as a label), the project rejects',
        build: () => {
            const c = twoLevel({ nameConstraints: { excluded: [{ dns: 'mx.good.test' }] } }, { sans: ['*.good.test'] }, 'other.good.test')
            return { chain: [c.leaf, c.inter, c.root], rr: tlsaText(c.root, 2, 0, 1), name: 'other.good.test' }
        },
        openssl: X509_V.OK,
        project: { authenticated: false, why: 'the wildcard stands for mx.good.test too, which the CA may not certify' },
    },
]

// ---- asking OpenSSL ----------------------------------------------------------------

interface TlsServer {
    port: number
    close: () => Promise<void>
}

function startServer(chain: TestCert[]): Promise<TlsServer> {
    const sockets = new Set<Socket>()
    const server = tls.createServer({ cert: chain.map((c) => c.pem).join(''), key: chain[0].keyPem })
    server.on('connection', (s: Socket) => {
        sockets.add(s)
        s.on('close', () => sockets.delete(s))
    })
    server.on('secureConnection', (s) => s.on('error', () => undefined))
    server.on('tlsClientError', () => undefined)
    return new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, HOST, () => {
            resolve({
                port: (server.address() as AddressInfo).port,
                close: () =>
                    new Promise<void>((done) => {
                        for (const s of sockets) s.destroy()
                        server.close(() => done())
                    }),
            })
        })
    })
}

interface OpensslAnswer {
    code: number
    /** each "verify error:num=N" of s_client's verify callback, in order */
    errors: number[]
    /** the return code and the errors with their depths, for messages */
    text: string
}

// asynchronous on purpose: the TLS server lives in this process and must keep answering
function askOpenssl(port: number, name: string, rr: string): Promise<OpensslAnswer> {
    const args = ['s_client', '-connect', `${HOST}:${port}`, '-servername', name, '-dane_tlsa_domain', name, '-dane_tlsa_rrdata', rr]
    return new Promise((resolve, reject) => {
        const child = spawn('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] })
        let out = ''
        child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')))
        child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')))
        const timer = setTimeout(() => {
            child.kill('SIGKILL')
            reject(new Error(`openssl s_client did not finish within ${OPENSSL_TIMEOUT_MS} ms:\n${out}`))
        }, OPENSSL_TIMEOUT_MS)
        child.on('error', (e) => {
            clearTimeout(timer)
            reject(e)
        })
        child.on('close', () => {
            clearTimeout(timer)
            const m = /Verify return code: (\d+) \(([^)]*)\)/.exec(out)
            if (!m) return reject(new Error(`no "Verify return code" from openssl ${args.join(' ')}:\n${out}`))
            // "depth=1 CN = …" then "verify error:num=25:path length constraint exceeded"
            const errors: number[] = []
            const seen: string[] = []
            for (const e of out.matchAll(/^depth=(\d+) .*\nverify error:num=(\d+):(.*)$/gm)) {
                errors.push(Number(e[2]))
                seen.push(`${e[2]} at depth ${e[1]} (${e[3]})`)
            }
            resolve({ code: Number(m[1]), errors, text: `${m[1]} (${m[2]})${seen.length ? `; errors: ${seen.join(', ')}` : ''}` })
        })
    })
}

function askProject(s: Setup): VerifyResult {
    return verifyChain({ chain: s.chain.map((c) => c.der), records: [tlsaFromText(s.rr)], referenceNames: [s.name ?? NAME] })
}

function projectText(r: VerifyResult): string {
    if (r.authenticated) return `authenticated (${r.match?.record.text.slice(0, 8)} at depth ${r.match?.depth})`
    return `not authenticated (${r.failure?.code}: ${r.failure?.detail})`
}

describe('DANE-TA path validation: OpenSSL and the project agree (openssl s_client -dane_tlsa_rrdata)', function () {
    this.timeout(30000)

    before(function () {
        const probe = spawn('openssl', ['version'])
        return new Promise<void>((resolve, reject) => {
            probe.on('error', () => reject(new Error('the openssl command is needed for this test')))
            probe.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`openssl version exited ${code}`))))
        })
    })

    for (const c of cases) {
        it(`C15: ${c.id} ${c.title}`, async () => {
            const setup = c.build()
            const name = setup.name ?? NAME
            const server = await startServer(setup.chain)
            let answer: OpensslAnswer
            try {
                answer = await askOpenssl(server.port, name, setup.rr)
            } finally {
                await server.close()
            }
            const project = askProject(setup)
            const opensslAccepts = answer.code === 0
            assert.equal(answer.code, c.openssl, `OpenSSL: verify return code ${answer.text}, expected ${c.openssl}`)
            if (c.opensslErrors) assert.deepEqual(answer.errors, c.opensslErrors, `OpenSSL: ${answer.text}`)
            const expected = c.project ? c.project.authenticated : opensslAccepts
            assert.equal(
                project.authenticated,
                expected,
                `project: ${projectText(project)}; OpenSSL: ${answer.text}${c.project ? `; deliberate deviation: ${c.project.why}` : ''}`,
            )
        })
    }
})
