// The Redis connections the plugin opens (the TLS report store, the kept MTA-STS policies), made and closed one
// way: node-redis as Haraka's own Redis plugins use it, its offline queue off (it has no bound), reconnecting by
// itself, never holding a Haraka that is shutting down, and never ending Haraka with an 'error' event (C29).
import { createClient } from 'redis'

function clientFor(url: string) {
    return createClient({
        url,
        disableOfflineQueue: true,
        socket: { connectTimeout: 5000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 5000) },
    })
}

export type RedisClient = ReturnType<typeof clientFor>

/** A connection under way to `url`; its errors go to `onError`. Throws when node-redis refuses the URL (lib/config.ts redisUrlProblem checks it first). */
export function openRedis(url: string, onError: (e: Error) => void): RedisClient {
    const client = clientFor(url)
    // without a listener an 'error' event would end Haraka (C29); the client reconnects by itself
    client.on('error', onError)
    client.connect().catch(onError)
    // the connection alone does not keep a Haraka that is shutting down alive
    client.unref()
    return client
}

/** Close a connection, at once when it will not close cleanly. */
export async function closeRedis(client: RedisClient): Promise<void> {
    try {
        await client.close()
    } catch {
        client.destroy()
    }
}

/** A Redis URL as it may be shown: without its password. */
export function redactedUrl(url: string): string {
    try {
        const u = new URL(url)
        if (u.password) u.password = '***'
        return u.toString()
    } catch {
        return '(not a URL)'
    }
}

/** Where a store keeps its data ([tlsrpt] or [mtasts] store=file|redis): the same identity after a reload keeps the open store. */
export function storeIdentity(s: { store: 'file' | 'redis'; redisUrl: string; redisPrefix: string }, dir: string): string {
    return s.store === 'redis' ? `redis ${s.redisUrl} ${s.redisPrefix}` : `file ${dir}`
}
