/**
 * Test certificate factory. Builds X.509 v3 certificates directly in DER and
 * signs them with node's crypto: synchronous, no temp files, no openssl CLI,
 * and any notBefore/notAfter (expired and not-yet-valid certificates included).
 *
 * Extensions: basicConstraints (critical; cA when `ca`), subjectAltName with
 * dNSName entries when `sans` is non-empty. No key identifiers, so the only
 * issuer link checked by OpenSSL is the issuer/subject name.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';

export interface TestCert {
    der: Buffer;
    pem: string;
    keyPem: string;
    x509: X509Certificate;
}

export interface CertificateOptions {
    cn: string;
    /** DNS names; omit or [] for no subjectAltName extension */
    sans?: string[];
    /** DER of GeneralNames to put in subjectAltName as they are (odd encodings for tests); replaces `sans` */
    sanGeneralNamesDer?: Buffer[];
    /** omitted = self-signed */
    issuer?: TestCert;
    ca?: boolean;
    notBefore?: Date;
    notAfter?: Date;
    keyType?: 'ec' | 'rsa';
    /** reuse this private key (PEM) instead of generating one; keyType is then ignored */
    keyPem?: string;
}

// ---- DER encoding (X.690) ---------------------------------------------------

function tlv(tag: number, content: Buffer): Buffer {
    const n = content.length;
    let len: Buffer;
    if (n < 0x80) len = Buffer.from([n]);
    else {
        const bytes: number[] = [];
        for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
        len = Buffer.from([0x80 | bytes.length, ...bytes]);
    }
    return Buffer.concat([Buffer.from([tag]), len, content]);
}

const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]): Buffer => tlv(0x31, Buffer.concat(parts));
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bitString = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
const NULL = Buffer.from([0x05, 0x00]);

function oid(dotted: string): Buffer {
    const arcs = dotted.split('.').map(Number);
    const out: number[] = [arcs[0] * 40 + arcs[1]];
    for (const arc of arcs.slice(2)) {
        const bytes = [arc & 0x7f];
        for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift(0x80 | (v & 0x7f));
        out.push(...bytes);
    }
    return tlv(0x06, Buffer.from(out));
}

function positiveInteger(b: Buffer): Buffer {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = b.subarray(i);
    return tlv(0x02, v[0] & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

// RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050
function time(d: Date): Buffer {
    const p = (n: number, w = 2): string => String(n).padStart(w, '0');
    const y = d.getUTCFullYear();
    const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
    if (y >= 1950 && y < 2050) return tlv(0x17, Buffer.from(`${p(y % 100)}${rest}`, 'latin1'));
    return tlv(0x18, Buffer.from(`${p(y, 4)}${rest}`, 'latin1'));
}

function name(cn: string): Buffer {
    return seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))));
}

// ---- keys and signatures ------------------------------------------------------

function signatureAlgorithm(key: KeyObject): Buffer {
    if (key.asymmetricKeyType === 'ec') return seq(oid('1.2.840.10045.4.3.2')); // ecdsa-with-SHA256
    if (key.asymmetricKeyType === 'rsa') return seq(oid('1.2.840.113549.1.1.11'), NULL); // sha256WithRSAEncryption
    throw new Error(`unsupported test key type ${key.asymmetricKeyType}`);
}

function newKey(keyType: 'ec' | 'rsa'): KeyObject {
    if (keyType === 'rsa') return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}

/** the subject name each factory certificate was made with, for its children's issuer field */
const subjectNames = new WeakMap<TestCert, Buffer>();

const DAY = 86_400_000;

export function makeCertificate(opts: CertificateOptions): TestCert {
    const key = opts.keyPem ? createPrivateKey(opts.keyPem) : newKey(opts.keyType ?? 'ec');
    const keyPem = opts.keyPem ?? (key.export({ type: 'pkcs8', format: 'pem' }) as string);
    const spki = createPublicKey(key).export({ type: 'spki', format: 'der' }) as Buffer;

    const subject = name(opts.cn);
    let issuerName = subject;
    let signingKey = key;
    if (opts.issuer) {
        const n = subjectNames.get(opts.issuer);
        if (!n) throw new Error('issuer was not made by makeCertificate');
        issuerName = n;
        signingKey = createPrivateKey(opts.issuer.keyPem);
    }
    const now = Date.now();
    const notBefore = opts.notBefore ?? new Date(now - DAY);
    const notAfter = opts.notAfter ?? new Date(now + 365 * DAY);

    const exts: Buffer[] = [
        // basicConstraints, critical
        seq(oid('2.5.29.19'), tlv(0x01, Buffer.from([0xff])), octets(opts.ca ? seq(tlv(0x01, Buffer.from([0xff]))) : seq())),
    ];
    if (opts.sanGeneralNamesDer) {
        exts.push(seq(oid('2.5.29.17'), octets(seq(...opts.sanGeneralNamesDer))));
    } else if (opts.sans && opts.sans.length > 0) {
        exts.push(seq(oid('2.5.29.17'), octets(seq(...opts.sans.map((s) => tlv(0x82, Buffer.from(s, 'latin1')))))));
    }
    const serial = randomBytes(16);
    serial[0] = (serial[0] & 0x7f) | 0x01;
    const sigAlg = signatureAlgorithm(signingKey);
    const tbs = seq(
        explicit(0, tlv(0x02, Buffer.from([2]))), // v3
        positiveInteger(serial),
        sigAlg,
        issuerName,
        seq(time(notBefore), time(notAfter)),
        subject,
        spki,
        explicit(3, seq(...exts)),
    );
    const signature = sign('sha256', tbs, signingKey);
    const der = seq(tbs, sigAlg, bitString(signature));
    const cert = toTestCert(der, keyPem);
    subjectNames.set(cert, subject);
    return cert;
}

function toTestCert(der: Buffer, keyPem: string): TestCert {
    const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
    return { der, pem: `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`, keyPem, x509: new X509Certificate(der) };
}

/**
 * The same certificate with one bit of its signature flipped: still well-formed DER,
 * but its signature no longer verifies. Keeps the issuer link, for bad-signature tests.
 */
export function withBadSignature(cert: TestCert): TestCert {
    const der = Buffer.from(cert.der);
    der[der.length - 1] ^= 0x01;
    const bad = toTestCert(der, cert.keyPem);
    const n = subjectNames.get(cert);
    if (n) subjectNames.set(bad, n);
    return bad;
}

/** "u s m hex": the TLSA record for this certificate, computed independently of lib/ */
export function tlsaText(cert: TestCert, usage: number, selector: number, mtype: number): string {
    const content = selector === 0 ? cert.der : (cert.x509.publicKey.export({ type: 'spki', format: 'der' }) as Buffer);
    const data = mtype === 0 ? content : mtype === 1 ? createHash('sha256').update(content).digest() : createHash('sha512').update(content).digest();
    return `${usage} ${selector} ${mtype} ${data.toString('hex')}`;
}
