// The TLS report store [tlsrpt] asks for: the journal under Haraka's directory, or Redis.
import type { TlsrptSettings } from '../config'
import { FileStore } from './journal'
import { RedisStore } from './redis-store'
import { redactedUrl } from '../redis'
import type { TlsrptStore } from './store'

/** The store for the operator's eyes: the directory, or the Redis URL without its password. */
export function describeStore(t: TlsrptSettings, dir: string): string {
    return t.store === 'redis' ? `Redis ${redactedUrl(t.redisUrl)} (prefix ${t.redisPrefix})` : dir
}

/** `dir`: settings.directory resolved against Haraka's directory. */
export function openStore(t: TlsrptSettings, dir: string, onFault: (message: string) => void): TlsrptStore {
    return t.store === 'redis' ? new RedisStore({ url: t.redisUrl, prefix: t.redisPrefix }, onFault) : new FileStore(dir, onFault)
}
