/**
 * The answer cache (C3, C30): lru-cache bounded in entries and in bytes, each entry kept for its
 * TTL (at most an hour), failures and TTL-0 answers never kept, and identical lookups in flight
 * at the same time coalesced into one. Every caller gets a copy of its own.
 *
 * It also keeps values derived from its answers (lib/policy's host decisions), in the same bounds:
 * each for no longer than the answers it came from would stay, so that a derived value is never
 * staler than a fresh derivation from the cache would be. Their keys hold a space, which no
 * answer's key (a DNS name, then "/TYPE") can.
 */
import { LRUCache } from 'lru-cache'
import { answerBytes, cloneAnswer, type Answer } from './answer'

// C30: the answer cache's default bound in bytes.
export const DEFAULT_CACHE_MAX_BYTES = 32 * 1024 * 1024
// C3: never keep an entry longer than this, even if its TTL is larger (unbound
// itself caps at one day; we refetch from the local resolver more often).
/** The longest anything is kept, answers and what is derived from them, whatever the TTL. */
export const MAX_CACHE_TTL_S = 3600

/** The counters the cache keeps (they are the resolver's stats). */
export interface CacheCounters {
    /** lookups answered from the cache */
    cacheHits: number
    /** derived values recalled from the cache */
    derivedHits: number
    /** lookups that joined an identical request already in flight */
    inflightShared: number
}

/** A value derived from cached answers, and what it is estimated to cost in memory. */
interface Derived {
    readonly derived: unknown
    readonly bytes: number
}
type Entry = Answer | Derived

function isAnswer(e: Entry | undefined): e is Answer {
    return e !== undefined && !('derived' in e)
}

export class AnswerCache {
    /** undefined when the cache is off (0 entries); lookups are still coalesced */
    private readonly lru: LRUCache<string, Entry> | undefined
    /**
     * C3: the lookups in flight, by key. Not lru-cache's fetch(): it keeps an in-flight fetch as an
     * entry of the cache itself, which changes what is cached and what is shared:
     *   - the in-flight entry takes one of the `max` slots (and a byte of maxSize), so lookups in
     *     flight evict cached answers; with more distinct lookups in flight than `max`, an in-flight
     *     entry is itself evicted (its fetch aborted): an identical lookup after that goes to the wire
     *     again (not counted in inflightShared) and the answer is not cached. (lru-cache 11.5: max 2,
     *     a, b, c in flight, then a again → 4 queries where this map sends 3 and shares 1.)
     *   - with the cache off (cacheSize 0) there is no LRUCache at all (lru-cache needs max, maxSize
     *     or ttl), yet identical lookups are still coalesced.
     *   - a failure or a TTL-0 answer must reach the callers waiting but never be stored; fetch()
     *     stores whatever its fetchMethod returns (ttl 0 meaning "no TTL"), so they would have to
     *     travel as rejections.
     */
    private readonly inflight = new Map<string, Promise<Answer>>()
    private closed = false

    constructor(
        entries: number,
        maxBytes: number,
        private readonly counters: CacheCounters,
    ) {
        // C3, C30: bounded in entries and in bytes; an answer over 1/16 of the bytes is not cached at all.
        // Per-entry TTLs are given at set().
        this.lru =
            entries > 0
                ? new LRUCache<string, Entry>({
                      max: entries,
                      maxSize: maxBytes,
                      maxEntrySize: Math.floor(maxBytes / 16),
                      sizeCalculation: (e) => (isAnswer(e) ? answerBytes(e) : e.bytes),
                  })
                : undefined
    }

    /**
     * The answer for `key`: from the cache (with the seconds it has left), from the identical lookup
     * in flight, or from `load`, which must not reject. Each caller gets its own copy.
     */
    answer(key: string, load: () => Promise<Answer>): Promise<Answer> {
        const cached = this.lru?.get(key)
        if (isAnswer(cached)) {
            this.counters.cacheHits++
            const left = Math.max(0, Math.ceil((this.lru?.getRemainingTTL(key) ?? 0) / 1000))
            return Promise.resolve(cloneAnswer(cached, true, Math.min(cached.ttl, left)))
        }
        // C3: concurrent identical lookups share one request in flight.
        const pending = this.inflight.get(key)
        if (pending) {
            this.counters.inflightShared++
            return pending.then((a) => cloneAnswer(a, false, a.ttl))
        }
        const request = load().then((answer) => {
            this.inflight.delete(key)
            // C3: failures are never cached; ttl 0 is not cached; entries live at most their TTL.
            if (this.lru && !this.closed && answer.status !== 'failed' && answer.ttl > 0) {
                this.lru.set(key, answer, { ttl: Math.min(answer.ttl, MAX_CACHE_TTL_S) * 1000 })
            }
            return answer
        })
        this.inflight.set(key, request)
        return request.then((a) => cloneAnswer(a, false, a.ttl))
    }

    /**
     * Keep a value derived from answers of this cache for `ttlS` seconds (at most as long as an
     * answer is ever kept), counted in the same bounds; `key` must hold a space. Nothing is kept
     * when the cache is off or closed, or for a TTL under one second.
     */
    remember(key: string, value: unknown, ttlS: number, bytes: number): void {
        if (!key.includes(' ')) throw new RangeError(`a derived value's key must hold a space: ${key}`)
        if (!this.lru || this.closed || !(ttlS >= 1)) return
        this.lru.set(key, { derived: value, bytes: Math.max(1, Math.ceil(bytes)) }, { ttl: Math.min(ttlS, MAX_CACHE_TTL_S) * 1000 })
    }

    /** A derived value kept by `remember`, while it lasts. */
    recall(key: string): unknown {
        const e = this.lru?.get(key)
        if (e === undefined || isAnswer(e)) return undefined
        this.counters.derivedHits++
        return e.derived
    }

    /** C30: what the cache holds now: entries and their estimated bytes. */
    usage(): { entries: number; bytes: number } {
        return { entries: this.lru?.size ?? 0, bytes: this.lru?.calculatedSize ?? 0 }
    }

    /** Empties the cache for good: answers still in flight reach their callers but are not kept. */
    close(): void {
        this.closed = true
        this.lru?.clear()
    }
}
