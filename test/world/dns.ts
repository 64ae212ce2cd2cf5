// The DNS half of the test world: a real nsd serving signed, unsigned and
// deliberately bogus zones under the reserved `.test` TLD, and a real unbound
// validating them from a trust anchor for `test.` that this module writes.
// Everything listens on 127.0.0.0/8 only.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promises as dnsp } from 'node:dns'
import { run, startProcess, stopProcess, waitForTcp, Started, sleep } from './procs'

/** How a child zone of `test.` is published. */
export type Signing =
    | 'signed' // signed, DS in test. → secure
    | 'unsigned' // no DNSSEC, no DS → insecure
    | 'bogus-ds' // signed, but the DS in test. names another key → every answer bogus (SERVFAIL)

export interface ZoneSpec {
    name: string // e.g. 'signed.test'
    signing: Signing
    /** Records in zone-file syntax, relative names allowed (origin is the zone). */
    records: string[]
    /** After signing, replace the rdata of these RRsets (RRSIGs kept) so that they, and only they, are bogus. */
    tamper?: { owner: string; type: string; rdata: string }[]
    ttl?: number
}

export interface DnsWorldOptions {
    nsdAddress?: string
    resolverAddress?: string
    port?: number
}

const ALG = 'ECDSAP256SHA256'

interface Keys {
    ksk: string // base name (without .key/.private) of the key-signing key
    zsk: string
}

export class DnsWorld {
    readonly dir: string
    readonly nsdAddress: string
    readonly resolverAddress: string
    readonly port: number
    private zones = new Map<string, ZoneSpec>()
    private keys = new Map<string, Keys>()
    private serial = Math.floor(Date.now() / 1000)
    private nsd?: Started
    private unbound?: Started
    private plainResolver?: Started

    constructor(opts: DnsWorldOptions = {}) {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-world-dns-'))
        this.nsdAddress = opts.nsdAddress ?? '127.0.0.52'
        this.resolverAddress = opts.resolverAddress ?? '127.0.0.53'
        this.port = opts.port ?? 53
    }

    /** Write, sign and serve the zones, then start unbound validating them. */
    async start(zones: ZoneSpec[]): Promise<void> {
        for (const z of zones) this.zones.set(z.name, z)
        this.writeAllZones()
        this.writeNsdConf()
        this.writeUnboundConf()
        this.nsd = startProcess('nsd', 'nsd', ['-d', '-c', path.join(this.dir, 'nsd.conf')], path.join(this.dir, 'nsd.log'))
        await waitForTcp(this.nsdAddress, this.port, this.nsd)
        this.unbound = startProcess('unbound', 'unbound', ['-d', '-c', path.join(this.dir, 'unbound.conf')], path.join(this.dir, 'unbound.log'))
        await waitForTcp(this.resolverAddress, this.port, this.unbound)
    }

    /** Replace one zone's content, re-sign, make nsd reload it and unbound forget what it cached. */
    async updateZone(spec: ZoneSpec): Promise<void> {
        this.zones.set(spec.name, spec)
        this.serial++
        const parentChanged = this.writeAllZones()
        if (!this.nsd) throw new Error('world not started')
        this.nsd.child.kill('SIGHUP')
        await this.waitForSerial(spec.name, this.serial)
        if (parentChanged) await this.waitForSerial('test', this.serial)
        this.unboundControl(['flush_zone', 'test'])
        this.unboundControl(['flush_bogus'])
        this.unboundControl(['flush_negative'])
        this.unboundControl(['flush_infra', 'all'])
    }

    /** Stop the validating resolver only (fault injection); startResolver() brings it back with its configuration. */
    async stopResolver(): Promise<void> {
        if (this.unbound) await stopProcess(this.unbound, path.join(this.dir, 'unbound.conf'))
        this.unbound = undefined
    }

    async startResolver(): Promise<void> {
        if (this.unbound) return
        this.unbound = startProcess('unbound', 'unbound', ['-d', '-c', path.join(this.dir, 'unbound.conf')], path.join(this.dir, 'unbound.log'))
        await waitForTcp(this.resolverAddress, this.port, this.unbound)
    }

    /** Forget everything unbound cached (answers, negative answers, bogus marks). */
    flushResolver(): void {
        this.unboundControl(['flush_zone', 'test'])
        this.unboundControl(['flush_bogus'])
        this.unboundControl(['flush_negative'])
    }

    /**
     * A second resolver on `address` (port 53) that does not validate (the iterator alone, no trust anchor): it
     * answers as a validating one would, but never sets AD. For the check's resolver self-test.
     */
    async startNonValidatingResolver(address: string): Promise<void> {
        const conf = path.join(this.dir, 'unbound-plain.conf')
        fs.writeFileSync(conf, this.unboundConf(address, 'unbound-plain', false))
        this.plainResolver = startProcess('unbound', 'unbound', ['-d', '-c', conf], path.join(this.dir, 'unbound-plain.log'))
        await waitForTcp(address, this.port, this.plainResolver)
    }

    async stop(): Promise<void> {
        if (this.plainResolver) await stopProcess(this.plainResolver, path.join(this.dir, 'unbound-plain.conf'))
        this.plainResolver = undefined
        if (this.unbound) await stopProcess(this.unbound, path.join(this.dir, 'unbound.conf'))
        if (this.nsd) await stopProcess(this.nsd, path.join(this.dir, 'nsd.conf'))
        this.unbound = this.nsd = undefined
        fs.rmSync(this.dir, { recursive: true, force: true })
    }

    /** The trust anchor unbound uses, as a DS record line. */
    trustAnchor(): string {
        return fs.readFileSync(path.join(this.dir, `${this.keys.get('test')!.ksk}.ds`), 'utf8').trim()
    }

    private unboundControl(args: string[]): string {
        return run('unbound-control', ['-c', path.join(this.dir, 'unbound.conf'), ...args])
    }

    private async waitForSerial(zone: string, serial: number, timeoutMs = 10000): Promise<void> {
        const r = new dnsp.Resolver({ timeout: 500, tries: 1 })
        r.setServers([`${this.nsdAddress}:${this.port}`])
        const deadline = Date.now() + timeoutMs
        while (Date.now() < deadline) {
            try {
                const soa = await r.resolveSoa(zone)
                if (soa.serial >= serial) return
            } catch {
                /* reloading */
            }
            await sleep(25)
        }
        throw new Error(`nsd did not load serial ${serial} of ${zone}`)
    }

    private keysFor(zone: string): Keys {
        let k = this.keys.get(zone)
        if (!k) {
            const ksk = run('ldns-keygen', ['-a', ALG, '-k', zone], this.dir).trim()
            const zsk = run('ldns-keygen', ['-a', ALG, zone], this.dir).trim()
            k = { ksk, zsk }
            this.keys.set(zone, k)
        }
        return k
    }

    /** Writes every child zone and the parent `test.` zone; returns true when the parent's content changed. */
    private writeAllZones(): boolean {
        const delegation: string[] = []
        for (const z of this.zones.values()) {
            const label = z.name.replace(/\.test$/, '')
            delegation.push(`${label} NS ns.${label}`, `ns.${label} A ${this.nsdAddress}`)
            if (z.signing === 'signed') {
                delegation.push(this.dsOf(this.keysFor(z.name).ksk))
            } else if (z.signing === 'bogus-ds') {
                this.keysFor(z.name)
                // a DS for a key that never signs anything: the chain of trust breaks → bogus
                delegation.push(this.dsOf(this.keysFor(`decoy.${z.name}`).ksk).replace(/^\S+/, `${z.name}.`))
            }
            this.writeZone(z, [`ns A ${this.nsdAddress}`])
        }
        const parentFile = path.join(this.dir, 'test.zone.signed')
        const before = fs.existsSync(parentFile) ? this.stripVolatile(fs.readFileSync(parentFile, 'utf8')) : ''
        this.writeZone({ name: 'test', signing: 'signed', records: delegation }, [`ns A ${this.nsdAddress}`])
        const after = this.stripVolatile(fs.readFileSync(parentFile, 'utf8'))
        return before !== after
    }

    private stripVolatile(zone: string): string {
        return zone
            .split('\n')
            .filter((l) => !/\s(SOA|RRSIG|NSEC)\s/.test(l))
            .join('\n')
    }

    private dsOf(ksk: string): string {
        // ldns-keygen writes K<zone>.+alg+tag.ds beside the key; take the SHA-256 DS
        const ds = fs.readFileSync(path.join(this.dir, `${ksk}.ds`), 'utf8').trim()
        return ds
    }

    private writeZone(z: ZoneSpec, extra: string[]): void {
        const ttl = z.ttl ?? 60
        const lines = [
            `$ORIGIN ${z.name}.`,
            `$TTL ${ttl}`,
            `@ ${ttl} IN SOA ns.${z.name}. hostmaster.${z.name}. ${this.serial} 3600 600 86400 5`,
            `@ IN NS ns.${z.name}.`,
            ...extra,
            ...z.records,
            '',
        ]
        const file = path.join(this.dir, `${z.name}.zone`)
        fs.writeFileSync(file, lines.join('\n'))
        if (z.signing === 'unsigned') {
            fs.copyFileSync(file, `${file}.signed`)
            return
        }
        const k = this.keysFor(z.name)
        run('ldns-signzone', ['-o', z.name, file, k.zsk, k.ksk], this.dir)
        if (z.tamper?.length) this.tamper(`${file}.signed`, z)
    }

    private tamper(file: string, z: ZoneSpec): void {
        const fqdn = (n: string) => (n.endsWith('.') ? n : `${n}.${z.name}.`).toLowerCase()
        let text = fs.readFileSync(file, 'utf8').split('\n')
        for (const t of z.tamper ?? []) {
            const owner = fqdn(t.owner)
            let replaced = false
            text = text.flatMap((line) => {
                const f = line.split(/\s+/)
                if (f[0]?.toLowerCase() === owner && f[3] === t.type) {
                    if (replaced) return []
                    replaced = true
                    return [`${f[0]}\t${f[1]}\tIN\t${t.type}\t${t.rdata}`]
                }
                return [line]
            })
            if (!replaced) throw new Error(`tamper: no ${t.type} at ${owner}`)
        }
        fs.writeFileSync(file, text.join('\n'))
    }

    private writeNsdConf(): void {
        const zones = ['test', ...this.zones.keys()]
        const conf = [
            'server:',
            `  ip-address: ${this.nsdAddress}@${this.port}`,
            '  username: ""',
            '  chroot: ""',
            `  zonesdir: "${this.dir}"`,
            '  database: ""',
            `  pidfile: "${this.dir}/nsd.pid"`,
            `  xfrdfile: "${this.dir}/xfrd.state"`,
            `  xfrdir: "${this.dir}"`,
            `  zonelistfile: "${this.dir}/zone.list"`,
            `  logfile: "${this.dir}/nsd.log"`,
            '  server-count: 1',
            '  verbosity: 1',
            '  do-ip6: no',
            'remote-control:',
            '  control-enable: no',
            ...zones.flatMap((z) => ['zone:', `  name: "${z}"`, `  zonefile: "${z}.zone.signed"`]),
            '',
        ]
        fs.writeFileSync(path.join(this.dir, 'nsd.conf'), conf.join('\n'))
        fs.writeFileSync(path.join(this.dir, 'test.ta'), `${this.trustAnchor()}\n`)
    }

    private writeUnboundConf(): void {
        fs.writeFileSync(path.join(this.dir, 'unbound.conf'), this.unboundConf(this.resolverAddress, 'unbound', true))
    }

    /** An unbound for `test.` at nsd: validating from the world's trust anchor (with remote control), or the iterator alone. */
    private unboundConf(address: string, name: string, validating: boolean): string {
        return [
            'server:',
            `  interface: ${address}@${this.port}`,
            '  access-control: 127.0.0.0/8 allow',
            '  username: ""',
            '  chroot: ""',
            `  directory: "${this.dir}"`,
            `  pidfile: "${this.dir}/${name}.pid"`,
            '  use-syslog: no',
            '  logfile: ""',
            '  verbosity: 1',
            '  val-log-level: 2',
            '  do-ip6: no',
            '  do-not-query-localhost: no',
            '  local-zone: "test." nodefault',
            ...(validating ? [`  trust-anchor-file: "${this.dir}/test.ta"`, '  module-config: "validator iterator"'] : ['  module-config: "iterator"']),
            '  aggressive-nsec: no',
            '  qname-minimisation: no',
            '  num-threads: 1',
            '  so-reuseport: no',
            'stub-zone:',
            '  name: "test."',
            `  stub-addr: ${this.nsdAddress}@${this.port}`,
            'remote-control:',
            ...(validating ? ['  control-enable: yes', `  control-interface: "${this.dir}/${name}.ctl"`, '  control-use-cert: no'] : ['  control-enable: no']),
            '',
        ].join('\n')
    }
}
