// MTA-STS as [mtasts] asks for it: the store of kept policies (files under Haraka's directory, or Redis),
// the CAs trusted for policy hosts and MX hosts, and the per-domain service that uses the plugin's resolver.
import fs from 'node:fs'
import type { MtaStsSettings } from '../config'
import type { Answer } from '../dns/answer'
import type { RRType } from '../resolver'
import { FileStsStore, StsPolicies, type StsStore } from './service'
import { RedisStsStore } from './redis-store'
import { storeIdentity } from '../redis'

export interface StsService {
    policies: StsPolicies
    store: StsStore
    /** what identifies the store: the same after a reload keeps it open */
    storeIdentity: string
    /** CA certificates (PEM) from ca_file; undefined: node's own store */
    ca?: string
    /** close the store now (Haraka's shutdown) */
    close(): void
    /** close the store once the asks that may be using it are over (a reload that replaced it): a fetch's deadline, and more */
    retire(): void
}

export interface StsServiceOptions {
    /** [mtasts] directory, resolved against Haraka's directory */
    dir: string
    /** [mtasts] ca_file, resolved ('' for node's store) */
    caFile: string
    /** the plugin's resolver (asked at each use: a reload may replace it) */
    resolver: () => { lookup(name: string, type: RRType): Promise<Answer> }
    fault: (message: string) => void
    /** the service in use before a reload: its memory is kept, and its store when it is the same */
    previous?: StsService
}

/** The policy host's addresses, both families, through the plugin's resolver; PKIX, not DNSSEC, authenticates it (RFC 8461 3.3). */
export async function policyHostAddresses(resolver: { lookup(name: string, type: RRType): Promise<Answer> }, host: string): Promise<string[]> {
    const answers = await Promise.all([resolver.lookup(host, 'A'), resolver.lookup(host, 'AAAA')])
    return answers.flatMap((a) => (a.status === 'ok' ? (a.addresses ?? []) : []))
}

/** Throws when the CA file cannot be read or holds no certificate, or the store cannot be opened (a directory it cannot use). */
export function openStsService(s: MtaStsSettings, o: StsServiceOptions): StsService {
    let ca: string | undefined
    if (o.caFile) {
        ca = fs.readFileSync(o.caFile, 'utf8')
        if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`mtasts.ca_file ${o.caFile} holds no PEM certificate`)
    }
    if (s.store === 'file') {
        // a directory that cannot be read would make every domain's kept policy unknown (its mail deferred): said now
        try {
            fs.mkdirSync(o.dir, { recursive: true })
            fs.accessSync(o.dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK)
        } catch (e) {
            throw new Error(`mtasts.directory ${o.dir} cannot be used: ${(e as Error)?.message ?? e}`)
        }
    }
    const identity = storeIdentity(s, o.dir)
    const same = o.previous?.storeIdentity === identity ? o.previous : undefined
    const store: StsStore = same
        ? same.store
        : s.store === 'redis'
          ? new RedisStsStore({ url: s.redisUrl, prefix: s.redisPrefix }, o.fault)
          : new FileStsStore(o.dir)
    const policies = new StsPolicies({
        lookupTxt: (name) => o.resolver().lookup(name, 'TXT'),
        addresses: (host) => policyHostAddresses(o.resolver(), host),
        store,
        ca,
        timeoutMs: s.timeoutSeconds * 1000,
        fault: o.fault,
        // a reload keeps what the process held (a policy its store could not take included), whatever the store
        memory: o.previous?.policies.memory,
    })
    const close = (): void => void store.close?.()
    return { policies, store, storeIdentity: identity, ca, close, retire: () => setTimeout(close, policies.timeoutMs + 5000).unref() }
}
