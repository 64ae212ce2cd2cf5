// The scenario world shared by the end-to-end tests and the live demo
// (`npm start`): certificates, receiving MTAs on 127.0.0.x:25, and the signed,
// unsigned and bogus zones that point at them. Each recipient domain is one
// situation of docs/conformance.md.
import { makeCertificate, tlsaText, TestCert, CertificateOptions } from './certs'
import { DnsWorld, ZoneSpec } from './dns'
import { Listener, ListenerOptions } from './smtp'
import { RedisWorld } from './redis'
import path from 'node:path'
import { generateKeyPairSync } from 'node:crypto'
import { Haraka } from './haraka'

export interface Scenario {
    domain: string
    title: string
    /** What a correct DANE client must do. */
    expect: 'delivered' | 'deferred' | 'bounced'
    /** For delivered: the listener that must receive it. */
    deliveredTo?: string
    /** For delivered: the TLS the listener must have seen. */
    tls?: 'verified' | 'unauthenticated-tls' | 'opportunistic-tls'
    /** SNI the receiving listener must see (C19). */
    sni?: string
}

export interface ScenarioWorld {
    dns: DnsWorld
    /** Haraka's TLS NO-GO store; give Haraka `redis.tlsIni()` as tls.ini to use it */
    redis: RedisWorld
    listeners: Map<string, Listener>
    scenarios: Scenario[]
    certs: Record<string, TestCert>
    /** The DKIM key of the world's Haraka (haraka.world.test), its public half published at `selector._domainkey.haraka.world.test` */
    dkim: { domain: string; selector: string; privateKeyPem: string }
    /** The signed zone as started, and a way to publish a changed record set. */
    zone: (overrides?: Record<string, string[]>) => ZoneSpec
    stop: () => Promise<void>
}

const DAY = 86400_000

function chainPem(...certs: TestCert[]): string {
    return certs.map((c) => c.pem).join('')
}

export function makeCerts(): Record<string, TestCert> {
    const now = Date.now()
    const root = makeCertificate({ cn: 'World Test Root CA', ca: true })
    const inter = makeCertificate({ cn: 'World Test Issuing CA', ca: true, issuer: root })
    return {
        root,
        inter,
        // DANE-EE: self-signed, names and dates deliberately wrong (C14 ignores them)
        ee: makeCertificate({ cn: 'not-the-mx.example', notBefore: new Date(now - 400 * DAY), notAfter: new Date(now - 30 * DAY) }),
        taLeaf: makeCertificate({ cn: 'mx.ta.dane.test', sans: ['mx.ta.dane.test'], issuer: inter }),
        good: makeCertificate({ cn: 'mx2.fallback.dane.test' }),
        wrong: makeCertificate({ cn: 'impostor' }),
        allbad: makeCertificate({ cn: 'mx.allbad.dane.test' }),
        plain: makeCertificate({ cn: 'plain' }),
        cnameLeaf: makeCertificate({ cn: 'real.hosting.dane.test', sans: ['real.hosting.dane.test'], issuer: inter }),
        // DANE-TA leaf that names only next-hop domains, never its MX host (C16)
        nhLeaf: makeCertificate({ cn: 'nh.dane.test', sans: ['nh.dane.test', 'nh.insecure.test'], issuer: inter }),
        // DANE-TA leaf whose root is given only in DNS (2 1 0): the server presents leaf and intermediate
        ta210Leaf: makeCertificate({ cn: 'mx.ta210.dane.test', sans: ['mx.ta210.dane.test'], issuer: inter }),
        ...pkixCerts(root, inter),
    }
}

/**
 * C15: chains under the world's root that break one RFC 5280 rule below the DANE-TA anchor (each leaf
 * names its MX host, so only the broken rule can fail it), and one with a decoy intermediate: a
 * certificate with the real intermediate's name and another key, sent ahead of the real one.
 */
function pkixCerts(root: TestCert, inter: TestCert): Record<string, TestCert> {
    const leafFor = (label: string, issuer: TestCert, more: Partial<CertificateOptions> = {}): TestCert =>
        makeCertificate({ cn: `mx1.${label}.dane.test`, sans: [`mx1.${label}.dane.test`], issuer, ...more })
    const pathLen0 = makeCertificate({ cn: 'World PathLen 0 CA', ca: true, pathLen: 0, issuer: root })
    const subCa = makeCertificate({ cn: 'World Sub CA', ca: true, issuer: pathLen0 })
    const constrained = makeCertificate({ cn: 'World Constrained CA', ca: true, issuer: root, nameConstraints: { permitted: [{ dns: '.example.org' }] } })
    return {
        pathLen0,
        subCa,
        constrained,
        pathlenLeaf: leafFor('pathlen', subCa),
        ncLeaf: leafFor('nc', constrained),
        ekuLeaf: leafFor('eku', inter, { extKeyUsage: ['clientAuth'] }),
        critLeaf: leafFor('crit', inter, { extraExtensions: [{ oid: '1.3.6.1.4.1.55555.1', critical: true, value: Buffer.from([0x05, 0x00]) }] }),
        decoyLeaf: leafFor('decoy', inter),
        decoy: makeCertificate({ cn: 'World Test Issuing CA', ca: true, issuer: root }),
    }
}

/** C15: the first MX presents a chain under the world's root (TLSA 2 0 1), the second is an honest DANE-EE host. */
function taThenHonest(label: string, address: string, root: TestCert, honest: TestCert): string[] {
    return [
        `${label} MX 10 mx1.${label}`,
        `mx1.${label} A ${address}`,
        `_25._tcp.mx1.${label} TLSA ${tlsaText(root, 2, 0, 1)}`,
        `${label} MX 20 mx2.${label}`,
        `mx2.${label} A 127.0.0.27`,
        `_25._tcp.mx2.${label} TLSA ${tlsaText(honest, 3, 1, 1)}`,
    ]
}

/** A domain with two MX hosts, each with an address and a DANE-EE record (optionally with its own TTL). */
function twoMx(label: string, hosts: [address: string, tlsaFor: TestCert][], ttl = ''): string[] {
    return hosts.flatMap(([address, cert], i) => [
        `${label} MX ${(i + 1) * 10} mx${i + 1}.${label}`,
        `mx${i + 1}.${label} A ${address}`,
        `_25._tcp.mx${i + 1}.${label} ${ttl} TLSA ${tlsaText(cert, 3, 1, 1)}`,
    ])
}

/** Start the DNS world and the listeners. */
export async function startScenarioWorld(): Promise<ScenarioWorld> {
    const c = makeCerts()
    const listen: Record<string, ListenerOptions> = {
        ee: { address: '127.0.0.11', certChainPem: c.ee.pem, keyPem: c.ee.keyPem },
        ta: { address: '127.0.0.12', certChainPem: chainPem(c.taLeaf, c.inter, c.root), keyPem: c.taLeaf.keyPem },
        fallback1: { address: '127.0.0.13', certChainPem: c.wrong.pem, keyPem: c.wrong.keyPem },
        fallback2: { address: '127.0.0.14', certChainPem: c.good.pem, keyPem: c.good.keyPem },
        allbad1: { address: '127.0.0.15', certChainPem: c.allbad.pem, keyPem: c.allbad.keyPem },
        allbad2: { address: '127.0.0.16', certChainPem: c.allbad.pem, keyPem: c.allbad.keyPem },
        nostarttls: { address: '127.0.0.17', noStartTls: true },
        servfail: { address: '127.0.0.18', certChainPem: c.plain.pem, keyPem: c.plain.keyPem },
        insecure: { address: '127.0.0.19', certChainPem: c.plain.pem, keyPem: c.plain.keyPem },
        unusable: { address: '127.0.0.20', certChainPem: c.plain.pem, keyPem: c.plain.keyPem },
        cname: { address: '127.0.0.21', certChainPem: chainPem(c.cnameLeaf, c.inter), keyPem: c.cnameLeaf.keyPem },
        handshake: { address: '127.0.0.22', certChainPem: c.plain.pem, keyPem: c.plain.keyPem, failHandshake: true },
        handshake2: { address: '127.0.0.23', certChainPem: c.good.pem, keyPem: c.good.keyPem },
        tlsrefused: { address: '127.0.0.24', starttlsReply: ['454 4.7.0 TLS not available due to temporary reason'] },
        injected: { address: '127.0.0.26', starttlsReply: ['220 2.0.0 Ready to start TLS', '250 2.0.0 injected in plaintext'] },
        second: { address: '127.0.0.27', certChainPem: c.good.pem, keyPem: c.good.keyPem },
        insecurebroken: { address: '127.0.0.29', certChainPem: c.plain.pem, keyPem: c.plain.keyPem, failHandshake: true },
        cu: { address: '127.0.0.32', certChainPem: c.good.pem, keyPem: c.good.keyPem },
        nh: { address: '127.0.0.33', certChainPem: chainPem(c.nhLeaf, c.inter, c.root), keyPem: c.nhLeaf.keyPem },
        v4: { address: '127.0.0.34', certChainPem: c.good.pem, keyPem: c.good.keyPem },
        ta210: { address: '127.0.0.35', certChainPem: chainPem(c.ta210Leaf, c.inter), keyPem: c.ta210Leaf.keyPem },
        pathlen: { address: '127.0.0.36', certChainPem: chainPem(c.pathlenLeaf, c.subCa, c.pathLen0, c.root), keyPem: c.pathlenLeaf.keyPem },
        nc: { address: '127.0.0.37', certChainPem: chainPem(c.ncLeaf, c.constrained, c.root), keyPem: c.ncLeaf.keyPem },
        eku: { address: '127.0.0.38', certChainPem: chainPem(c.ekuLeaf, c.inter, c.root), keyPem: c.ekuLeaf.keyPem },
        crit: { address: '127.0.0.39', certChainPem: chainPem(c.critLeaf, c.inter, c.root), keyPem: c.critLeaf.keyPem },
        decoy: { address: '127.0.0.40', certChainPem: chainPem(c.decoyLeaf, c.decoy, c.inter, c.root), keyPem: c.decoyLeaf.keyPem },
    }
    const listeners = new Map<string, Listener>()
    for (const [name, o] of Object.entries(listen)) listeners.set(name, new Listener(o))

    const records: Record<string, string[]> = {
        ee: ['ee MX 10 mx.ee', 'mx.ee A 127.0.0.11', `_25._tcp.mx.ee TLSA ${tlsaText(c.ee, 3, 1, 1)}`],
        ta: ['ta MX 10 mx.ta', 'mx.ta A 127.0.0.12', `_25._tcp.mx.ta TLSA ${tlsaText(c.root, 2, 0, 1)}`],
        fallback: twoMx('fallback', [
            ['127.0.0.13', c.good],
            ['127.0.0.14', c.good],
        ]),
        // both hosts publish a record for a key they do not have; TTL 1 s so a fix is seen at once
        allbad: twoMx(
            'allbad',
            [
                ['127.0.0.15', c.wrong],
                ['127.0.0.16', c.wrong],
            ],
            '1',
        ),
        nostarttls: ['nostarttls MX 10 mx.nostarttls', 'mx.nostarttls A 127.0.0.17', `_25._tcp.mx.nostarttls TLSA ${tlsaText(c.plain, 3, 1, 1)}`],
        servfail: ['servfail MX 10 mx.servfail', 'mx.servfail A 127.0.0.18', `_25._tcp.mx.servfail TLSA ${tlsaText(c.plain, 3, 1, 1)}`],
        unusable: ['unusable MX 10 mx.unusable', 'mx.unusable A 127.0.0.20', `_25._tcp.mx.unusable TLSA ${tlsaText(c.plain, 1, 1, 1)}`],
        cname: ['cname MX 10 mx.cname', 'mx.cname CNAME real.hosting', 'real.hosting A 127.0.0.21', `_25._tcp.real.hosting TLSA ${tlsaText(c.inter, 2, 1, 1)}`],
        handshake: twoMx('handshake', [
            ['127.0.0.22', c.plain],
            ['127.0.0.23', c.good],
        ]),
        // the first MX answers STARTTLS with 454: C9 says try the next MX, not defer the message
        tlsrefused: twoMx('tlsrefused', [
            ['127.0.0.24', c.good],
            ['127.0.0.27', c.good],
        ]),
        // the first MX's STARTTLS reply carries an extra plaintext line (a STARTTLS injection)
        injected: twoMx('injected', [
            ['127.0.0.26', c.good],
            ['127.0.0.27', c.good],
        ]),
        // the first MX's address has no listener (the connection is refused): the next MX is tried
        down: twoMx('down', [
            ['127.0.0.41', c.good],
            ['127.0.0.27', c.good],
        ]),
        // C8: a secure CNAME to a host in an unsigned zone; the TLSA record at the original name decides
        cu: ['cu MX 10 smtp.cu', 'smtp.cu CNAME smtp.insecure.test.', `_25._tcp.smtp.cu TLSA ${tlsaText(c.good, 3, 1, 1)}`],
        cubad: ['cubad MX 10 smtp.cubad', 'smtp.cubad CNAME smtp.insecure.test.', `_25._tcp.smtp.cubad TLSA ${tlsaText(c.wrong, 3, 1, 1)}`],
        // C16: the leaf names the next-hop domain only (secure MX RRset here; nh.insecure.test points at the same host)
        nh: ['nh MX 10 mx.nh', 'mx.nh A 127.0.0.33', `_25._tcp.mx.nh TLSA ${tlsaText(c.root, 2, 0, 1)}`],
        // C7: the AAAA denial is broken (NSEC tampered below); A and TLSA are secure
        v4: ['v4 MX 10 mx.v4', 'mx.v4 A 127.0.0.34', `_25._tcp.mx.v4 TLSA ${tlsaText(c.good, 3, 1, 1)}`],
        // C18: the trust anchor's key is given in DNS only
        ta210: ['ta210 MX 10 mx.ta210', 'mx.ta210 A 127.0.0.35', `_25._tcp.mx.ta210 TLSA ${tlsaText(c.root, 2, 1, 0)}`],
        // C15: RFC 5280 rules below a DANE-TA anchor; the honest second MX gets the mail
        pathlen: taThenHonest('pathlen', '127.0.0.36', c.root, c.good),
        nc: taThenHonest('nc', '127.0.0.37', c.root, c.good),
        eku: taThenHonest('eku', '127.0.0.38', c.root, c.good),
        crit: taThenHonest('crit', '127.0.0.39', c.root, c.good),
        decoy: ['decoy MX 10 mx1.decoy', 'mx1.decoy A 127.0.0.40', `_25._tcp.mx1.decoy TLSA ${tlsaText(c.root, 2, 0, 1)}`],
        nullmx: ['nullmx MX 0 .'],
        bogusmx: ['bogusmx MX 10 mx.ee'],
        // RFC 8460 3: where some of these domains want their TLS reports (one malformed: two records)
        tlsrpt: [
            '_smtp._tls.ee TXT "v=TLSRPTv1; rua=mailto:tlsrpt@ee.dane.test"',
            '_smtp._tls.fallback TXT "v=TLSRPTv1;rua=https://127.0.0.42/tlsrpt," "mailto:tlsrpt@fallback.dane.test"',
            '_smtp._tls.servfail TXT "v=TLSRPTv1; rua=mailto:tlsrpt@servfail.dane.test"',
            '_smtp._tls.unusable TXT "v=TLSRPTv1; rua=mailto:a@unusable.dane.test"',
            '_smtp._tls.unusable TXT "v=TLSRPTv1; rua=mailto:b@unusable.dane.test"',
        ],
    }
    const zone = (overrides: Record<string, string[]> = {}): ZoneSpec => {
        const all = { ...records, ...overrides }
        return {
            name: 'dane.test',
            signing: 'signed',
            records: Object.values(all).flat(),
            tamper: [
                { owner: '_25._tcp.mx.servfail', type: 'TLSA', rdata: tlsaText(c.wrong, 3, 1, 1) },
                { owner: 'bogusmx', type: 'MX', rdata: '10 mx.insecure.test.' },
                { owner: 'mx.v4', type: 'NSEC', rdata: 'zzz.dane.test. A RRSIG NSEC' },
            ],
        }
    }
    const dkim = dkimKey('haraka.world.test', 'rpt')
    const dns = new DnsWorld()
    await dns.start([
        zone(),
        // the world's own mail domain: where a verifier finds the key that signed Haraka's mail
        { name: 'world.test', signing: 'signed', records: [dkim.record] },
        {
            name: 'insecure.test',
            signing: 'unsigned',
            records: [
                '@ MX 10 mx',
                'mx A 127.0.0.19',
                '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@insecure.test"',
                'broken MX 10 mxb',
                'mxb A 127.0.0.29',
                'smtp A 127.0.0.32',
                'nh MX 10 mx.nh.dane.test.',
            ],
        },
    ])
    for (const l of listeners.values()) await l.start()
    const redis = new RedisWorld()
    await redis.start()

    const scenarios: Scenario[] = [
        {
            domain: 'ee.dane.test',
            title: 'DANE-EE 3 1 1 match (self-signed, expired, wrong name: all ignored)',
            expect: 'delivered',
            deliveredTo: 'ee',
            tls: 'verified',
            sni: 'mx.ee.dane.test',
        },
        {
            domain: 'ta.dane.test',
            title: 'DANE-TA 2 0 1 on a presented root, name checked',
            expect: 'delivered',
            deliveredTo: 'ta',
            tls: 'verified',
            sni: 'mx.ta.dane.test',
        },
        {
            domain: 'fallback.dane.test',
            title: 'first MX presents the wrong key, second MX is right',
            expect: 'delivered',
            deliveredTo: 'fallback2',
            tls: 'verified',
        },
        {
            domain: 'cname.dane.test',
            title: "CNAME'd MX host: TLSA at the expanded name, SNI the expanded name",
            expect: 'delivered',
            deliveredTo: 'cname',
            tls: 'verified',
            sni: 'real.hosting.dane.test',
        },
        {
            domain: 'handshake.dane.test',
            title: 'TLS handshake fails on the first MX, second MX verifies',
            expect: 'delivered',
            deliveredTo: 'handshake2',
            tls: 'verified',
        },
        {
            domain: 'tlsrefused.dane.test',
            title: 'first MX answers STARTTLS with 454, second MX verifies',
            expect: 'delivered',
            deliveredTo: 'second',
            tls: 'verified',
        },
        {
            domain: 'injected.dane.test',
            title: 'plaintext injected after the STARTTLS reply on the first MX, second MX verifies',
            expect: 'delivered',
            deliveredTo: 'second',
            tls: 'verified',
        },
        {
            domain: 'down.dane.test',
            title: 'first MX refuses the connection, second MX verifies',
            expect: 'delivered',
            deliveredTo: 'second',
            tls: 'verified',
        },
        {
            domain: 'unusable.dane.test',
            title: 'only unusable TLSA (1 1 1): TLS mandatory, unauthenticated',
            expect: 'delivered',
            deliveredTo: 'unusable',
            tls: 'unauthenticated-tls',
        },
        {
            domain: 'insecure.test',
            title: 'insecure (unsigned) domain: opportunistic TLS',
            expect: 'delivered',
            deliveredTo: 'insecure',
            tls: 'opportunistic-tls',
        },
        {
            domain: 'broken.insecure.test',
            title: 'no DANE, and the host\'s TLS is broken: Haraka\'s own behaviour (marked "no TLS", deferred)',
            expect: 'deferred',
        },
        { domain: 'allbad.dane.test', title: 'every MX presents a key its TLSA does not match', expect: 'deferred' },
        { domain: 'nostarttls.dane.test', title: 'DANE host does not offer STARTTLS', expect: 'deferred' },
        { domain: 'servfail.dane.test', title: 'TLSA answer is bogus (SERVFAIL) on the only MX', expect: 'deferred' },
        { domain: 'bogusmx.dane.test', title: 'MX RRset is bogus: defer, never fall back to A', expect: 'deferred' },
        {
            domain: 'cu.dane.test',
            title: 'secure CNAME to a host in an unsigned zone: TLSA at the original name, key matches',
            expect: 'delivered',
            deliveredTo: 'cu',
            tls: 'verified',
            sni: 'smtp.cu.dane.test',
        },
        { domain: 'cubad.dane.test', title: 'secure CNAME to a host in an unsigned zone: TLSA at the original name, key does not match', expect: 'deferred' },
        {
            domain: 'nh.dane.test',
            title: 'DANE-TA leaf names only the next-hop domain; the MX RRset is secure',
            expect: 'delivered',
            deliveredTo: 'nh',
            tls: 'verified',
            sni: 'mx.nh.dane.test',
        },
        { domain: 'nh.insecure.test', title: 'the same host under an insecure MX RRset: the next hop is no reference identifier', expect: 'deferred' },
        {
            domain: 'v4.dane.test',
            title: 'the AAAA denial is bogus; the secure IPv4 answer is used, with DANE',
            expect: 'delivered',
            deliveredTo: 'v4',
            tls: 'verified',
            sni: 'mx.v4.dane.test',
        },
        {
            domain: 'ta210.dane.test',
            title: 'DANE-TA 2 1 0: the root key given in DNS only, leaf and intermediate presented',
            expect: 'delivered',
            deliveredTo: 'ta210',
            tls: 'verified',
            sni: 'mx.ta210.dane.test',
        },
        {
            domain: 'pathlen.dane.test',
            title: 'DANE-TA chain with a CA below a pathLenConstraint 0 intermediate: refused, second MX',
            expect: 'delivered',
            deliveredTo: 'second',
            tls: 'verified',
            sni: 'mx2.pathlen.dane.test',
        },
        {
            domain: 'nc.dane.test',
            title: "DANE-TA leaf outside its issuer's name constraints: refused, second MX",
            expect: 'delivered',
            deliveredTo: 'second',
            tls: 'verified',
            sni: 'mx2.nc.dane.test',
        },
        {
            domain: 'eku.dane.test',
            title: 'DANE-TA leaf for TLS clients only (extendedKeyUsage clientAuth): refused, second MX',
            expect: 'delivered',
            deliveredTo: 'second',
            tls: 'verified',
            sni: 'mx2.eku.dane.test',
        },
        {
            domain: 'crit.dane.test',
            title: 'DANE-TA leaf with an unknown critical extension: refused, second MX',
            expect: 'delivered',
            deliveredTo: 'second',
            tls: 'verified',
            sni: 'mx2.crit.dane.test',
        },
        {
            domain: 'decoy.dane.test',
            title: 'a same-named decoy intermediate sent before the real one: the path is built through the real one',
            expect: 'delivered',
            deliveredTo: 'decoy',
            tls: 'verified',
            sni: 'mx1.decoy.dane.test',
        },
        { domain: 'nullmx.dane.test', title: 'null MX: permanent failure', expect: 'bounced' },
    ]

    return {
        dns,
        redis,
        listeners,
        scenarios,
        certs: c,
        dkim,
        zone,
        stop: async () => {
            for (const l of listeners.values()) await l.stop()
            await redis.stop()
            await dns.stop()
        },
    }
}

/** An RSA DKIM key and its DNS record (RFC 6376 3.6.1), the base64 split into strings a zone file takes. */
function dkimKey(domain: string, selector: string): ScenarioWorld['dkim'] & { record: string } {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64')
    const strings = ['v=DKIM1; k=rsa; p=', ...(p.match(/.{1,200}/g) ?? [])].map((x) => `"${x}"`).join(' ')
    const owner = `${selector}._domainkey.${domain}.`
    return { domain, selector, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), record: `${owner} TXT ${strings}` }
}

/** dane.ini for a Haraka in this world: its resolver, the delivery log file, then `extra` sections (line 8 on). */
export function worldDaneIni(world: ScenarioWorld, logFile: string, extra = ''): string {
    return `[resolver]\naddress=${world.dns.resolverAddress}\nport=${world.dns.port}\ntimeout_ms=1000\nretries=1\n[log]\ndestination=${logFile}\n${extra}`
}

/** The scenario world and a Haraka with the plugin, its dane.ini pointed at the world (not started). */
export async function worldWithHaraka(extraIni: string): Promise<{ world: ScenarioWorld; haraka: Haraka; daneLog: string }> {
    const world = await startScenarioWorld()
    const haraka = new Haraka({ withDane: true })
    const daneLog = path.join(haraka.dir, 'dane.jsonl')
    haraka.writeConfigFile('dane.ini', worldDaneIni(world, daneLog, extraIni))
    return { world, haraka, daneLog }
}

/** The corrected records for allbad.dane.test: both hosts publish the key they present. */
export function allbadFixed(c: Record<string, TestCert>): Record<string, string[]> {
    return {
        allbad: twoMx(
            'allbad',
            [
                ['127.0.0.15', c.allbad],
                ['127.0.0.16', c.allbad],
            ],
            '1',
        ),
    }
}
