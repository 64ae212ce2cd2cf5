// The TLS report store [tlsrpt] asks for: the journal under Haraka's directory, or Redis.
import type { TlsrptSettings } from '../config'
import { FileStore } from './journal'
import { RedisStore, redactedUrl } from './redis-store'
import type { TlsrptStore } from './store'

/** What identifies a store: the same identity after a configuration reload keeps the open one. */
export function storeIdentity(t: TlsrptSettings, dir: string): string {
    return t.store === 'redis' ? `redis ${t.redisUrl} ${t.redisPrefix}` : `file ${dir}`
}

/** The store for the operator's eyes: the directory, or the Redis URL without its password. */
export function describeStore(t: TlsrptSettings, dir: string): string {
    return t.store === 'redis' ? `Redis ${redactedUrl(t.redisUrl)} (prefix ${t.redisPrefix})` : dir
}

/** `dir`: settings.directory resolved against Haraka's directory. */
export function openStore(t: TlsrptSettings, dir: string, onFault: (message: string) => void): TlsrptStore {
    return t.store === 'redis' ? new RedisStore({ url: t.redisUrl, prefix: t.redisPrefix }, onFault) : new FileStore(dir, onFault)
}
