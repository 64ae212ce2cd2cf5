// The situations Postfix is asked about. One entry per recipient domain: the
// receiving MTA(s) and the certificate chain each presents, the DNS records
// (per zone), any RRset made bogus after signing, and what RFC 7672 (or the
// issue under discussion) expects. To add a case, append a function to
// `scenarioTable`; it gets a fresh certificate kit and returns one scenario.
//
// Zones: `s.test` is signed with a DS in `test.` (secure), `u.test` is unsigned
// (insecure). A scenario may add zones of its own (`zones`).
// Listener addresses: 127.0.5.11 upward, one per scenario and MX host (nsd is
// 127.0.5.52, unbound 127.0.5.53); in use: 11-22, 31-44.
import { randomBytes } from 'node:crypto'
import { makeCertificate, tlsaText, TestCert, CertificateOptions } from '../world/certs'
import { ZoneSpec } from '../world/dns'
import { ListenerOptions } from '../world/smtp'

export const SIGNED = 's.test'
export const UNSIGNED = 'u.test'

export interface ListenerSpec {
    address: string
    /** leaf first, then whatever else the server presents, in order */
    chain: TestCert[]
    /** whose private key the server uses; default chain[0] */
    key?: TestCert
    /** anything else of ../world/smtp's ListenerOptions (noStartTls, failHandshake, starttlsReply) */
    options?: Partial<ListenerOptions>
}

export type TlsSummary = 'Verified' | 'Trusted' | 'Untrusted' | 'Anonymous'

export interface Expectation {
    outcome: 'delivered' | 'deferred' | 'bounced'
    /** for delivered: the listener address that must get it */
    listener?: string
    /** Postfix's "<X> TLS connection established" word */
    tls?: TlsSummary
    /** SNI the listener must see */
    sni?: string
}

export interface PostfixScenario {
    /** short [a-z0-9]+ id: the scenario's master.cf transport name and log tag postfix/<id>/smtp */
    id: string
    domain: string
    title: string
    listeners: ListenerSpec[]
    /** zone name → records in zone-file syntax relative to that zone */
    records: Record<string, string[]>
    /** zone name → RRsets to break after signing (see DnsWorld's ZoneSpec.tamper) */
    tamper?: Record<string, NonNullable<ZoneSpec['tamper']>>
    /** extra zones this scenario needs (their records are not merged with others') */
    zones?: ZoneSpec[]
    /** Postfix settings for this scenario's transport only */
    postfix?: { overrides?: Record<string, string>; args?: string[] }
    /** DNS questions to ask the validating resolver and print before Postfix runs */
    probes?: [name: string, type: string][]
    /** also run posttls-finger against the domain (in Postfix's namespace, same resolver) */
    finger?: boolean
    expect: Expectation
    note?: string
}

/** Certificates for one scenario. */
export class CertKit {
    /** a self-signed certificate: its key is what DANE-EE pins */
    ee(cn = 'dane-ee.invalid', more: Partial<CertificateOptions> = {}): TestCert {
        return makeCertificate({ cn, ...more })
    }
    ca(cn: string, issuer?: TestCert, more: Partial<CertificateOptions> = {}): TestCert {
        return makeCertificate({ cn, ca: true, issuer, ...more })
    }
    leaf(issuer: TestCert, sans: string[], cn = 'leaf', more: Partial<CertificateOptions> = {}): TestCert {
        return makeCertificate({ cn, sans, issuer, ...more })
    }
}

export const tlsa = tlsaText

/** Full SubjectPublicKeyInfo in hex (for "x 1 0" records). */
export function spkiHex(cert: TestCert): string {
    return tlsaText(cert, 2, 1, 0).split(' ')[3]
}

/** A TLSA record data that matches nothing. */
export function randomTlsa(usage = 3, selector = 1): string {
    return `${usage} ${selector} 1 ${randomBytes(32).toString('hex')}`
}

const addr = (n: number) => `127.0.5.${n}`

/** CA certificates as real CAs make them (key identifiers, keyCertSign + cRLSign) */
const REAL_CA: Partial<CertificateOptions> = { keyIds: true, keyUsage: ['keyCertSign', 'cRLSign'] }

type Maker = (k: CertKit) => PostfixScenario

export const scenarioTable: Maker[] = [
    (k) => {
        const key = k.ee()
        return {
            id: 's01',
            domain: 'cu.s.test',
            title: 'MX host is a secure CNAME (signed zone) to an insecure A (unsigned zone); TLSA 3 1 1 at the original name',
            listeners: [{ address: addr(11), chain: [key] }],
            records: {
                [SIGNED]: ['cu MX 10 smtp.cu', 'smtp.cu CNAME smtp.u.test.', `_25._tcp.smtp.cu TLSA ${tlsa(key, 3, 1, 1)}`],
                [UNSIGNED]: [`smtp A ${addr(11)}`],
            },
            probes: [
                ['smtp.cu.s.test', 'A'],
                ['_25._tcp.smtp.cu.s.test', 'TLSA'],
            ],
            postfix: { args: ['-v'] }, // -v: Postfix logs its DNS lookups
            expect: { outcome: 'delivered', listener: addr(11), tls: 'Verified', sni: 'smtp.cu.s.test' },
            note: 'expectation from the issue',
        }
    },
    (k) => {
        const published = k.ee()
        const presented = k.ee('other-key.invalid')
        return {
            id: 's02',
            domain: 'cubad.s.test',
            title: 'as s01 (secure CNAME to insecure A) but the listener presents a key the TLSA does not match',
            listeners: [{ address: addr(12), chain: [presented] }],
            records: {
                [SIGNED]: ['cubad MX 10 smtp.cubad', 'smtp.cubad CNAME smtp2.u.test.', `_25._tcp.smtp.cubad TLSA ${tlsa(published, 3, 1, 1)}`],
                [UNSIGNED]: [`smtp2 A ${addr(12)}`],
            },
            expect: { outcome: 'deferred' },
            note: 'expectation from the issue',
        }
    },
    (k) => {
        const ca = k.ca('NH Test CA')
        const leaf = k.leaf(ca, ['nh.s.test'])
        return {
            id: 's03',
            domain: 'nh.s.test',
            title: 'DANE-TA 2 1 1 (CA presented); leaf names only the next-hop domain; MX RRset secure',
            listeners: [{ address: addr(13), chain: [leaf, ca] }],
            records: { [SIGNED]: ['nh MX 10 mx.nh', `mx.nh A ${addr(13)}`, `_25._tcp.mx.nh TLSA ${tlsa(ca, 2, 1, 1)}`] },
            expect: { outcome: 'delivered', listener: addr(13), tls: 'Verified', sni: 'mx.nh.s.test' },
        }
    },
    (k) => {
        const ca = k.ca('NHU Test CA')
        const leaf = k.leaf(ca, ['nhu.u.test'])
        return {
            id: 's04',
            domain: 'nhu.u.test',
            title: 'insecure MX RRset (unsigned zone) → secure MX host with DANE-TA 2 1 1; leaf names only the next-hop domain',
            listeners: [{ address: addr(14), chain: [leaf, ca] }],
            records: {
                [UNSIGNED]: ['nhu MX 10 mx.nhu.s.test.'],
                [SIGNED]: [`mx.nhu A ${addr(14)}`, `_25._tcp.mx.nhu TLSA ${tlsa(ca, 2, 1, 1)}`],
            },
            postfix: { args: ['-v'] }, // -v: Postfix logs its DNS lookups
            // what Postfix 3.7 does: level "halfdane" still checks the next-hop name and calls the session
            // "Trusted" (not "Verified"); the plugin defers here (C16: the next hop is a reference identifier
            // only under a secure MX RRset), which is where it is stricter than Postfix
            expect: { outcome: 'delivered', listener: addr(14), tls: 'Trusted', sni: 'mx.nhu.s.test' },
            note: 'Postfix accepts the next-hop name under an insecure MX (Trusted); the plugin defers (C16)',
        }
    },
    (k) => {
        const key = k.ee()
        return {
            id: 's05',
            domain: 'v4.s.test',
            title: 'no AAAA, NSEC at the MX host tampered (AAAA → SERVFAIL), A and TLSA secure; inet_protocols=ipv4',
            listeners: [{ address: addr(15), chain: [key] }],
            records: { [SIGNED]: ['v4 MX 10 mx.v4', `mx.v4 A ${addr(15)}`, `_25._tcp.mx.v4 TLSA ${tlsa(key, 3, 1, 1)}`] },
            tamper: { [SIGNED]: [{ owner: 'mx.v4', type: 'NSEC', rdata: 'zz.mx.v4.s.test. A MX RRSIG NSEC' }] },
            probes: [
                ['mx.v4.s.test', 'AAAA'],
                ['mx.v4.s.test', 'A'],
                ['_25._tcp.mx.v4.s.test', 'TLSA'],
            ],
            expect: { outcome: 'delivered', listener: addr(15), tls: 'Verified', sni: 'mx.v4.s.test' },
        }
    },
    (k) => {
        const root = k.ca('Depth Test Root CA')
        const inter = k.ca('Depth Test Intermediate CA', root)
        const leaf = k.leaf(inter, ['mx.depth210.s.test'])
        return {
            id: 's06',
            domain: 'depth210.s.test',
            title: 'DANE-TA 2 1 0 = full SPKI of a root that is not presented; listener sends leaf + intermediate',
            listeners: [{ address: addr(16), chain: [leaf, inter] }],
            records: {
                [SIGNED]: ['depth210 MX 10 mx.depth210', `mx.depth210 A ${addr(16)}`, `_25._tcp.mx.depth210 TLSA 2 1 0 ${spkiHex(root)}`],
            },
            finger: true,
            expect: { outcome: 'delivered', listener: addr(16), tls: 'Verified', sni: 'mx.depth210.s.test' },
        }
    },
    (k) => {
        const key = shared(k)
        return {
            id: 's07',
            domain: 'dname.s.test',
            title: '_tcp.<MX host> is a DNAME to _tcp.shared.s.test., where TLSA 3 1 1 is',
            listeners: [{ address: addr(17), chain: [key] }],
            records: {
                [SIGNED]: [
                    'dname MX 10 mx.dname',
                    `mx.dname A ${addr(17)}`,
                    '_tcp.mx.dname DNAME _tcp.shared.s.test.',
                    `_25._tcp.shared TLSA ${tlsa(key, 3, 1, 1)}`,
                ],
            },
            probes: [['_25._tcp.mx.dname.s.test', 'TLSA']],
            expect: { outcome: 'delivered', listener: addr(17), tls: 'Verified', sni: 'mx.dname.s.test' },
        }
    },
    (k) => {
        const key = shared(k)
        return {
            id: 's08',
            domain: 'tlsacname.s.test',
            title: 'the TLSA name is a CNAME to _25._tcp.shared.s.test. (same RRset as s07)',
            listeners: [{ address: addr(18), chain: [key] }],
            records: {
                [SIGNED]: [
                    'tlsacname MX 10 mx.tlsacname',
                    `mx.tlsacname A ${addr(18)}`,
                    '_25._tcp.mx.tlsacname CNAME _25._tcp.shared.s.test.',
                    `_25._tcp.shared TLSA ${tlsa(key, 3, 1, 1)}`,
                ],
            },
            expect: { outcome: 'delivered', listener: addr(18), tls: 'Verified', sni: 'mx.tlsacname.s.test' },
        }
    },
    (k) => {
        const key = k.ee()
        return {
            id: 's09',
            domain: 'wild.s.test',
            title: 'TLSA from a wildcard: *._tcp.mx.wild.s.test TLSA 3 1 1',
            listeners: [{ address: addr(19), chain: [key] }],
            records: { [SIGNED]: ['wild MX 10 mx.wild', `mx.wild A ${addr(19)}`, `*._tcp.mx.wild TLSA ${tlsa(key, 3, 1, 1)}`] },
            probes: [['_25._tcp.mx.wild.s.test', 'TLSA']],
            expect: { outcome: 'delivered', listener: addr(19), tls: 'Verified', sni: 'mx.wild.s.test' },
        }
    },
    (k) => {
        const key = k.ee()
        const rrs = Array.from({ length: 39 }, () => randomTlsa())
        rrs.splice(23, 0, tlsa(key, 3, 1, 1))
        return {
            id: 's10',
            domain: 'big.s.test',
            title: `TLSA RRset of ${rrs.length} records (reply > 1232 bytes: TC over UDP), one matches`,
            listeners: [{ address: addr(20), chain: [key] }],
            records: { [SIGNED]: ['big MX 10 mx.big', `mx.big A ${addr(20)}`, ...rrs.map((r) => `_25._tcp.mx.big TLSA ${r}`)] },
            probes: [['_25._tcp.mx.big.s.test', 'TLSA']],
            expect: { outcome: 'delivered', listener: addr(20), tls: 'Verified', sni: 'mx.big.s.test' },
        }
    },
    (k) => {
        const key = k.ee()
        const other = k.ee('other.invalid')
        return {
            id: 's11',
            domain: 'tlsainsecure.s.test',
            title: 'TLSA name is a (secure) CNAME to a TLSA RRset in the unsigned zone, which does not match',
            listeners: [{ address: addr(21), chain: [key] }],
            records: {
                [SIGNED]: ['tlsainsecure MX 10 mx.tlsainsecure', `mx.tlsainsecure A ${addr(21)}`, '_25._tcp.mx.tlsainsecure CNAME _25._tcp.x.u.test.'],
                [UNSIGNED]: [`_25._tcp.x TLSA ${tlsa(other, 3, 1, 1)}`],
            },
            probes: [['_25._tcp.mx.tlsainsecure.s.test', 'TLSA']],
            postfix: { args: ['-v'] }, // -v: Postfix logs its DNS lookups
            expect: { outcome: 'delivered', listener: addr(21), tls: 'Untrusted' },
            note: 'insecure TLSA → opportunistic TLS',
        }
    },
    (k) => {
        const key = k.ee()
        const other = k.ee('other.invalid')
        return {
            id: 's12',
            domain: 'chain.s.test',
            title: 'MX host mx.chain CNAME a.chain (secure); TLSA at a.chain matches, TLSA at mx.chain does not',
            listeners: [{ address: addr(22), chain: [key] }],
            records: {
                [SIGNED]: [
                    'chain MX 10 mx.chain',
                    'mx.chain CNAME a.chain',
                    `a.chain A ${addr(22)}`,
                    `_25._tcp.a.chain TLSA ${tlsa(key, 3, 1, 1)}`,
                    `_25._tcp.mx.chain TLSA ${tlsa(other, 3, 1, 1)}`,
                ],
            },
            postfix: { args: ['-v'] }, // -v: Postfix logs its DNS lookups
            expect: { outcome: 'delivered', listener: addr(22), tls: 'Verified', sni: 'a.chain.s.test' },
            note: 'TLSA at the CNAME-expanded name wins',
        }
    },
    // ---- variant of s04 ----------------------------------------------------------
    (k) => {
        const ca = k.ca('NHX Test CA')
        const leaf = k.leaf(ca, ['unrelated.example'])
        return {
            id: 's04b',
            domain: 'nhx.u.test',
            title: 's04 (insecure MX RRset, DANE-TA 2 1 1) but the leaf names neither the MX host nor the next-hop domain',
            listeners: [{ address: addr(34), chain: [leaf, ca] }],
            records: {
                [UNSIGNED]: ['nhx MX 10 mx.nhx.s.test.'],
                [SIGNED]: [`mx.nhx A ${addr(34)}`, `_25._tcp.mx.nhx TLSA ${tlsa(ca, 2, 1, 1)}`],
            },
            expect: { outcome: 'deferred' },
            note: 'does the insecure-MX ("half-dane") level still enforce the name check?',
        }
    },
    // ---- variants of s05 -------------------------------------------------------
    (k) => {
        const key = k.ee()
        return {
            id: 's05b',
            domain: 'v4all.s.test',
            title: 's05 (NSEC tampered, AAAA → SERVFAIL) with inet_protocols=all, so Postfix does ask for AAAA',
            listeners: [{ address: addr(31), chain: [key] }],
            records: { [SIGNED]: ['v4all MX 10 mx.v4all', `mx.v4all A ${addr(31)}`, `_25._tcp.mx.v4all TLSA ${tlsa(key, 3, 1, 1)}`] },
            tamper: { [SIGNED]: [{ owner: 'mx.v4all', type: 'NSEC', rdata: 'zz.mx.v4all.s.test. A MX RRSIG NSEC' }] },
            postfix: { overrides: { inet_protocols: 'all' }, args: ['-v'] }, // -v: Postfix logs its DNS lookups
            probes: [
                ['mx.v4all.s.test', 'AAAA'],
                ['mx.v4all.s.test', 'A'],
            ],
            expect: { outcome: 'delivered', listener: addr(31), tls: 'Verified', sni: 'mx.v4all.s.test' },
        }
    },
    (k) => {
        const key = k.ee()
        return {
            id: 's05c',
            domain: 'v4aaaa.s.test',
            title: 'an existing AAAA RRset tampered (bogus → SERVFAIL), A and TLSA secure; inet_protocols=ipv4',
            listeners: [{ address: addr(32), chain: [key] }],
            records: {
                [SIGNED]: ['v4aaaa MX 10 mx.v4aaaa', `mx.v4aaaa A ${addr(32)}`, 'mx.v4aaaa AAAA fd00:5::1', `_25._tcp.mx.v4aaaa TLSA ${tlsa(key, 3, 1, 1)}`],
            },
            tamper: { [SIGNED]: [{ owner: 'mx.v4aaaa', type: 'AAAA', rdata: 'fd00:5::2' }] },
            probes: [
                ['mx.v4aaaa.s.test', 'AAAA'],
                ['mx.v4aaaa.s.test', 'A'],
            ],
            expect: { outcome: 'delivered', listener: addr(32), tls: 'Verified', sni: 'mx.v4aaaa.s.test' },
        }
    },
    (k) => {
        const key = k.ee()
        return {
            id: 's05d',
            domain: 'v4aaaaall.s.test',
            title: 's05c (AAAA RRset tampered → SERVFAIL) with inet_protocols=all',
            listeners: [{ address: addr(33), chain: [key] }],
            records: {
                [SIGNED]: [
                    'v4aaaaall MX 10 mx.v4aaaaall',
                    `mx.v4aaaaall A ${addr(33)}`,
                    'mx.v4aaaaall AAAA fd00:5::1',
                    `_25._tcp.mx.v4aaaaall TLSA ${tlsa(key, 3, 1, 1)}`,
                ],
            },
            tamper: { [SIGNED]: [{ owner: 'mx.v4aaaaall', type: 'AAAA', rdata: 'fd00:5::2' }] },
            postfix: { overrides: { inet_protocols: 'all' }, args: ['-v'] }, // -v: Postfix logs its DNS lookups
            probes: [['mx.v4aaaaall.s.test', 'AAAA']],
            expect: { outcome: 'delivered', listener: addr(33), tls: 'Verified', sni: 'mx.v4aaaaall.s.test' },
        }
    },
    // ---- DANE-TA path validation (C15), as in ../e2e/openssl-dane.test.ts --------------
    // MX 10 presents a chain that matches its DANE-TA record but fails RFC 5280 path
    // validation from the anchor; MX 20 is an honest DANE-EE host, so a client that
    // refuses the first delivers to the second within the same attempt.
    (k) => {
        const root = k.ca('PathLen Test Root CA', undefined, REAL_CA)
        const inter = k.ca('PathLen Test Intermediate CA', root, { ...REAL_CA, pathLen: 0 })
        const subca = k.ca('PathLen Test Sub CA', inter, REAL_CA)
        const leaf = k.leaf(subca, ['mx1.pathlen.s.test'], 'mx1.pathlen.s.test', { keyIds: true })
        return taThenEe(k, {
            id: 's13',
            label: 'pathlen',
            addrs: [addr(35), addr(36)],
            title: 'C15 case 2: MX 10 DANE-TA 2 0 1 of the root; intermediate pathLen 0 with a sub-CA below it; MX 20 honest DANE-EE',
            chain: [leaf, subca, inter, root],
            record: tlsa(root, 2, 0, 1),
        })
    },
    (k) => {
        const root = k.ca('NC Test Root CA', undefined, REAL_CA)
        const inter = k.ca('NC Test Intermediate CA', root, { ...REAL_CA, nameConstraints: { permitted: [{ dns: '.good.test' }] } })
        const leaf = k.leaf(inter, ['mx1.nc.s.test'], 'mx1.nc.s.test', { keyIds: true })
        return taThenEe(k, {
            id: 's14',
            label: 'nc',
            addrs: [addr(37), addr(38)],
            title: 'C15 case 4: MX 10 DANE-TA 2 0 1 of the root; intermediate permits .good.test only, leaf is mx1.nc.s.test; MX 20 honest DANE-EE',
            chain: [leaf, inter, root],
            record: tlsa(root, 2, 0, 1),
        })
    },
    (k) => {
        const root = k.ca('EKU Test Root CA', undefined, REAL_CA)
        const inter = k.ca('EKU Test Intermediate CA', root, REAL_CA)
        const leaf = k.leaf(inter, ['mx1.eku.s.test'], 'mx1.eku.s.test', { keyIds: true, extKeyUsage: ['clientAuth'] })
        return taThenEe(k, {
            id: 's15',
            label: 'eku',
            addrs: [addr(39), addr(40)],
            title: 'C15 case 8: MX 10 DANE-TA 2 1 1 of the intermediate; leaf extKeyUsage clientAuth only; MX 20 honest DANE-EE',
            chain: [leaf, inter],
            record: tlsa(inter, 2, 1, 1),
        })
    },
    (k) => {
        const root = k.ca('Crit Test Root CA', undefined, REAL_CA)
        const inter = k.ca('Crit Test Intermediate CA', root, REAL_CA)
        const leaf = k.leaf(inter, ['mx1.crit.s.test'], 'mx1.crit.s.test', {
            keyIds: true,
            extraExtensions: [{ oid: '1.2.3.4', critical: true, value: Buffer.from([0x05, 0x00]) }],
        })
        return taThenEe(k, {
            id: 's16',
            label: 'crit',
            addrs: [addr(41), addr(42)],
            title: 'C15 case 12: MX 10 DANE-TA 2 1 1 of the intermediate; leaf has an unknown critical extension; MX 20 honest DANE-EE',
            chain: [leaf, inter],
            record: tlsa(inter, 2, 1, 1),
        })
    },
    (k) => {
        const root = k.ca('Decoy Test Root CA', undefined, REAL_CA)
        const inter = k.ca('Decoy Test Intermediate CA', root, REAL_CA)
        const decoy = k.ca('Decoy Test Intermediate CA', root, REAL_CA) // same subject, other key and SKI
        const leaf = k.leaf(inter, ['mx1.decoy.s.test'], 'mx1.decoy.s.test', { keyIds: true })
        return taThenEe(k, {
            id: 's17',
            label: 'decoy',
            addrs: [addr(43), addr(44)],
            title: 'C15 case 19: MX 10 DANE-TA 2 0 1 of the root; a same-named decoy intermediate (other key, own SKI) before the real one, leaf with AKI; MX 20 DANE-EE',
            chain: [leaf, decoy, inter, root],
            record: tlsa(root, 2, 0, 1),
            // AKI/SKI rule the decoy out: the first MX is good
            expect: { outcome: 'delivered', listener: addr(43), tls: 'Verified', sni: 'mx1.decoy.s.test' },
        })
    },
]

/**
 * `<label>.s.test` with MX 10 mx1.<label> (addrs[0], presenting `chain`, TLSA `record`) and
 * MX 20 mx2.<label> (addrs[1], a self-signed key pinned by 3 1 1). Default expectation:
 * the first MX is refused ("Server certificate not verified"), the message is delivered to
 * the second, verified, in the same attempt (compare.ts reports the attempt's last TLS session).
 */
function taThenEe(
    k: CertKit,
    o: { id: string; label: string; addrs: [string, string]; title: string; chain: TestCert[]; record: string; expect?: Expectation },
): PostfixScenario {
    const ee = k.ee(`mx2.${o.label}.s.test`)
    const l = o.label
    return {
        id: o.id,
        domain: `${l}.s.test`,
        title: o.title,
        listeners: [
            { address: o.addrs[0], chain: o.chain },
            { address: o.addrs[1], chain: [ee] },
        ],
        records: {
            [SIGNED]: [
                `${l} MX 10 mx1.${l}`,
                `${l} MX 20 mx2.${l}`,
                `mx1.${l} A ${o.addrs[0]}`,
                `mx2.${l} A ${o.addrs[1]}`,
                `_25._tcp.mx1.${l} TLSA ${o.record}`,
                `_25._tcp.mx2.${l} TLSA ${tlsa(ee, 3, 1, 1)}`,
            ],
        },
        expect: o.expect ?? { outcome: 'delivered', listener: o.addrs[1], tls: 'Verified', sni: `mx2.${l}.s.test` },
        note: o.expect ? undefined : 'MX 10 refused ("Untrusted", "Server certificate not verified"), delivered to MX 20 ("Verified")',
    }
}

// s07 and s08 share one TLSA RRset (_25._tcp.shared.s.test), so one key for both
const sharedKeys = new WeakMap<CertKit, TestCert>()
function shared(k: CertKit): TestCert {
    let c = sharedKeys.get(k)
    if (!c) {
        c = k.ee('shared.invalid')
        sharedKeys.set(k, c)
    }
    return c
}

/** Build every scenario (one certificate kit for the whole run). */
export function buildScenarios(only?: string[]): PostfixScenario[] {
    const kit = new CertKit()
    const all = scenarioTable.map((make) => make(kit))
    const ids = new Set<string>()
    for (const s of all) {
        if (!/^[a-z0-9]+$/.test(s.id) || ids.has(s.id)) throw new Error(`bad or duplicate scenario id ${s.id}`)
        ids.add(s.id)
    }
    return only && only.length ? all.filter((s) => only.includes(s.id)) : all
}

/** The zones for a set of scenarios: the two base zones with every scenario's records merged in, plus extra zones. */
export function zonesFor(scenarios: PostfixScenario[]): ZoneSpec[] {
    const zones = new Map<string, ZoneSpec>([
        [SIGNED, { name: SIGNED, signing: 'signed', records: [], tamper: [] }],
        [UNSIGNED, { name: UNSIGNED, signing: 'unsigned', records: [] }],
    ])
    const seen = new Set<string>()
    for (const s of scenarios) {
        for (const z of s.zones ?? []) {
            if (zones.has(z.name)) throw new Error(`zone ${z.name} defined twice`)
            zones.set(z.name, z)
        }
        for (const [name, rrs] of Object.entries(s.records)) {
            const z = zones.get(name)
            if (!z) throw new Error(`${s.id}: no zone ${name}`)
            // identical lines from two scenarios (a shared RRset) are published once
            for (const rr of rrs) {
                const key = `${name} ${rr}`
                if (!seen.has(key)) z.records.push(rr)
                seen.add(key)
            }
        }
        for (const [name, t] of Object.entries(s.tamper ?? {})) {
            const z = zones.get(name)
            if (!z) throw new Error(`${s.id}: no zone ${name} to tamper`)
            z.tamper = [...(z.tamper ?? []), ...t]
        }
    }
    return [...zones.values()]
}
