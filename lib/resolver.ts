/**
 * Stub resolver for DANE (RFC 7672 §2.1): asks one local validating resolver
 * (unbound) and trusts nothing but its AD bit.
 *
 * Modelled on Postfix's dns_lookup.c, which names outcomes over a transport it
 * does not own. This module is the lookup: normalise the name, ask the cache,
 * else UDP, TC → TCP, bounded retries on timeout, → Answer. The parts:
 *   - ./dns/wire.ts: the codec (dns2, strict RR framing, RFC 2181 §8 TTLs, reply matching);
 *   - ./dns/transport.ts: one exchange over UDP or TCP (fresh socket and random ID per attempt);
 *   - ./dns/answer.ts: what a reply means (RCODEs, CNAME chains, negative TTLs), pure;
 *   - ./dns/cache.ts: the bounded TTL cache and the sharing of identical lookups in flight.
 * Its settings are checked once, by resolverSettings() in ./config.ts.
 *
 * Conformance items: C1 (transport, EDNS0/DO, AD, loopback only),
 * C2 (TC → TCP, reply matching, bounded retries), C3 (bounded TTL cache,
 * failures never cached, in-flight sharing).
 */
import * as net from 'node:net'
import type { ResolverSettings } from './config'
import { failedAnswer, interpret, type Answer, type RRType } from './dns/answer'
import { AnswerCache } from './dns/cache'
import { Transport } from './dns/transport'
import { MalformedReply, TYPE_CODE, normalizeName } from './dns/wire'

export { answerBytes, type Answer, type MxRecord, type RRType } from './dns/answer'
export { normalizeName } from './dns/wire'
/** ResolverOptions: the settings as stated, before resolverSettings() checked them (lib/config.ts). */
export type { ResolverInput as ResolverOptions, ResolverSettings } from './config'

export interface ResolverStats {
    /** lookup() calls */
    queries: number
    /** UDP queries sent on the wire */
    udp: number
    /** TCP queries sent on the wire */
    tcp: number
    /** attempts (UDP or TCP) that ended in a timeout */
    timeouts: number
    /** lookups answered from the cache */
    cacheHits: number
    /** values derived from answers (host decisions) recalled from the cache */
    derivedHits: number
    /** lookups that joined an identical request already in flight */
    inflightShared: number
    /** datagrams/messages discarded because ID, question, class or sender did not match, or were undecodable */
    discarded: number
}

export class ResolverConfigError extends Error {
    constructor(message: string) {
        super(message)
        this.name = 'ResolverConfigError'
    }
}

// C1: "loopback" is 127.0.0.0/8 or ::1 (IPv4-mapped 127/8 also stays on the host).
const LOOPBACK = new net.BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

/** C1: the one loopback test, used by the settings check (lib/config.ts). */
export function isLoopbackAddress(address: string): boolean {
    const family = net.isIP(address)
    if (family === 0) return false
    return LOOPBACK.check(address, family === 6 ? 'ipv6' : 'ipv4')
}

export class Resolver {
    private readonly retries: number
    private readonly transport: Transport
    private readonly cache: AnswerCache
    private closed = false
    private readonly counters: ResolverStats = {
        queries: 0,
        udp: 0,
        tcp: 0,
        timeouts: 0,
        cacheHits: 0,
        derivedHits: 0,
        inflightShared: 0,
        discarded: 0,
    }

    /**
     * `settings` come from resolverSettings() (lib/config.ts), which checked them, the C1 loopback
     * rule included; they are taken as they are.
     */
    constructor(settings: ResolverSettings) {
        this.retries = settings.retries
        this.transport = new Transport({ address: settings.address, port: settings.port, timeoutMs: settings.timeoutMs }, this.counters)
        this.cache = new AnswerCache(settings.cacheSize, settings.cacheMaxBytes, this.counters)
    }

    /**
     * Resolves name/type. Never rejects: every error is status 'failed'.
     * ttl: min TTL of the RRs used (CNAME chain + answer RRset); for NODATA and
     * NXDOMAIN min(SOA TTL, SOA MINIMUM) (and the chain's TTLs); 0 for failures.
     * A cached answer reports the seconds it has left.
     */
    lookup(name: string, type: RRType): Promise<Answer> {
        this.counters.queries++
        const qname = normalizeName(name)
        const shownName = typeof name === 'string' ? name.toLowerCase().replace(/\.$/, '') : String(name)
        if (!(type in TYPE_CODE)) return Promise.resolve(failedAnswer(shownName, type, `unsupported type ${type}`))
        if (qname === null) return Promise.resolve(failedAnswer(shownName, type, 'invalid name'))
        if (this.closed) return Promise.resolve(failedAnswer(qname, type, 'resolver closed'))
        // C3: cache key is the lower-case name plus the type.
        return this.cache.answer(`${qname}/${type}`, () =>
            this.resolveOnWire(qname, type).catch((e: unknown) => failedAnswer(qname, type, `internal error: ${(e as Error)?.message ?? e}`)),
        )
    }

    /**
     * C3, C30: keep a value derived from this resolver's answers (lib/policy's host decisions) in
     * its cache, for `ttlS` seconds (the least TTL left of the answers it came from), counted in
     * the cache's bounds. `key` must hold a space (no answer's key does).
     */
    remember(key: string, value: unknown, ttlS: number, bytes: number): void {
        this.cache.remember(key, value, ttlS, bytes)
    }

    /** A value kept by `remember`, while it lasts. */
    recall(key: string): unknown {
        return this.cache.recall(key)
    }

    stats(): ResolverStats {
        return { ...this.counters }
    }

    /** C30: what the cache holds now: entries and their estimated bytes. */
    cacheUsage(): { entries: number; bytes: number } {
        return this.cache.usage()
    }

    /** Closes every socket in use; pending lookups resolve as failed 'resolver closed'. */
    close(): void {
        this.closed = true
        this.transport.close()
        this.cache.close()
    }

    // C2: UDP first; TC → same question over TCP; timeouts retried `retries` times.
    private async resolveOnWire(qname: string, type: RRType): Promise<Answer> {
        const qtype = TYPE_CODE[type]
        let sawMalformed = false
        for (let attempt = 0; attempt <= this.retries; attempt++) {
            if (this.closed) return failedAnswer(qname, type, 'resolver closed')
            let result = await this.transport.udp(qname, qtype)
            // C2 / RFC 7766 §5: a truncated UDP reply is retried over TCP.
            if (result.kind === 'truncated') result = await this.transport.tcp(qname, qtype)
            switch (result.kind) {
                case 'reply':
                    try {
                        return interpret(qname, type, result.reply, result.buf)
                    } catch (e) {
                        if (e instanceof MalformedReply) return failedAnswer(qname, type, 'malformed reply', result.reply.rcode)
                        throw e
                    }
                case 'timeout':
                    this.counters.timeouts++
                    sawMalformed ||= result.sawMalformed
                    continue
                case 'truncated':
                    // RFC 7766 §8: TC has no meaning over TCP; a truncated TCP reply is unusable.
                    return failedAnswer(qname, type, 'truncated reply over tcp')
                case 'failed':
                    return failedAnswer(qname, type, result.reason)
            }
        }
        // C2: timeouts count as indeterminate after bounded retries. When only
        // undecodable datagrams arrived, say so rather than 'timeout'.
        return failedAnswer(qname, type, sawMalformed ? 'malformed reply' : 'timeout')
    }
}
