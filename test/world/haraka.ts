// A real Haraka process for the test world, started from a throw-away config
// directory. It accepts mail on a loopback port from loopback clients (the
// real haraka-plugin-relay ACL), relays it outbound, and a small test-only
// plugin records what outbound finally did with each message (delivered,
// deferred, bounced) in events.jsonl, so tests wait on facts, not on sleeps.
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { LOG_FLUSH_MS } from '../../lib/log'
import { startProcess, stopProcess, waitForTcp, Started, sleep, tail, isRunning, pidsMentioning } from './procs'

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..')

export interface HarakaOptions {
    address?: string
    port?: number
    /** Load haraka-plugin-dane (from this repository, as a user would install it). */
    withDane?: boolean
    /** withDane: the checkout (built) the plugin is loaded from, instead of this repository (bench A/B of two versions) */
    pluginRoot?: string
    /** Files written into config/, e.g. { 'dane.ini': '...' }. */
    config?: Record<string, string>
    /** When Haraka itself (not the plugin) does MX lookups, point them at this resolver. */
    systemResolver?: string
    /** Arguments for node before Haraka's own (e.g. --cpu-prof). */
    nodeArgs?: string[]
}

export interface OutboundEvent {
    event: 'delivered' | 'deferred' | 'bounce'
    /** ms since the epoch, on delivered events: when it was delivered, and when its delivery began (get_mx) */
    t?: number
    started?: number
    queue_id: string
    domain: string
    rcpt: string[]
    host?: string
    ip?: string
    secured?: boolean
    response?: string
    err?: string
}

// The test-only plugin, written into the config directory as plain Haraka plugin code.
const EVENTS_PLUGIN = `
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const file = path.join(process.env.HARAKA, 'events.jsonl')
// one descriptor for the life of the process: the delivery benchmark runs this plugin in both Harakas, and
// opening the file for every line would weigh on both
let fd
function writeNow(ev) { fd ??= fs.openSync(file, 'a'); fs.writeSync(fd, JSON.stringify(ev) + '\\n') }
// An outcome is written only after every other plugin's hook for it has run (priority 100: last) and after
// the lines those hooks logged are written: the delivery log writes its lines at most LOG_FLUSH_MS after
// they were logged (a timer started with the first of them), and a timer started now for longer fires after
// that one. A test that sees "delivered" here can then read the plugin's final line for it.
function write(ev) { setTimeout(() => writeNow(ev), ${LOG_FLUSH_MS + 10}) }
exports.register = function () {
    if (process.env.WORLD_SYSTEM_RESOLVER) {
        // Haraka's own MX lookups (used only when haraka-plugin-dane is not loaded)
        // the haraka-net-utils that Haraka's own outbound code loads
        const harakaRequire = require('node:module').createRequire(process.env.WORLD_HARAKA_HMAIL)
        const main = harakaRequire.resolve('haraka-net-utils')
        const dnsConfig = harakaRequire(path.join(path.dirname(main), 'lib', 'dns_config.js'))
        dnsConfig.getDnsResolver().setServers([process.env.WORLD_SYSTEM_RESOLVER])
    }
    // runs before any other get_mx hook (this plugin is listed first): when the delivery of a message began
    this.register_hook('get_mx', 'on_get_mx')
    this.register_hook('delivered', 'on_delivered', 100)
    this.register_hook('deferred', 'on_deferred', 100)
    this.register_hook('bounce', 'on_bounce', 100)
}
function base(hmail) {
    return { queue_id: hmail.todo.uuid, domain: hmail.todo.domain, rcpt: hmail.todo.rcpt_to.map((r) => (typeof r.address === 'function' ? r.address() : String(r.address))) }
}
exports.on_get_mx = function (next, hmail) {
    hmail.world_started = Date.now()
    next()
}
exports.on_delivered = function (next, hmail, params) {
    const [host, ip, response, delay, port, mode, ok_recips, secured] = params
    write({ event: 'delivered', ...base(hmail), host, ip, response, secured, t: Date.now(), started: hmail.world_started })
    next()
}
exports.on_deferred = function (next, hmail, params) {
    write({ event: 'deferred', ...base(hmail), err: String(params && params.err) })
    next()
}
exports.on_bounce = function (next, hmail, err) {
    write({ event: 'bounce', ...base(hmail), err: String(err && err.message || err) })
    next()
}
`

export class Haraka {
    readonly dir: string
    readonly address: string
    readonly port: number
    private proc?: Started

    constructor(readonly opts: HarakaOptions = {}) {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-world-haraka-'))
        this.address = opts.address ?? '127.0.0.25'
        this.port = opts.port ?? 2525
        this.writeConfig()
    }

    /** the pids of Haraka's processes (the master and, in cluster mode, its workers) */
    pids(): number[] {
        return pidsMentioning(this.dir)
    }

    /** the Haraka process is alive */
    get running(): boolean {
        return this.proc !== undefined && isRunning(this.proc.child)
    }

    get logFile(): string {
        return path.join(this.dir, 'haraka.log')
    }

    get queueDir(): string {
        return path.join(this.dir, 'queue')
    }

    private writeConfig(): void {
        const cfg = path.join(this.dir, 'config')
        // what `haraka -i` does: start from Haraka's shipped configuration, then override
        fs.cpSync(path.join(path.dirname(require.resolve('Haraka/package.json')), 'config'), cfg, { recursive: true })
        fs.mkdirSync(path.join(this.dir, 'plugins'))
        fs.mkdirSync(path.join(this.dir, 'node_modules'))
        fs.writeFileSync(path.join(this.dir, 'plugins', 'world_events.js'), EVENTS_PLUGIN)
        if (this.opts.withDane) {
            // installed exactly as a user installs it: node_modules/haraka-plugin-dane
            fs.symlinkSync(this.opts.pluginRoot ?? REPO_ROOT, path.join(this.dir, 'node_modules', 'haraka-plugin-dane'))
        }
        const files: Record<string, string> = {
            'smtp.ini': `listen=${this.address}:${this.port}\nnodes=0\n`,
            me: 'haraka.world.test\n',
            plugins: ['relay', 'world_events', ...(this.opts.withDane ? ['dane'] : [])].join('\n') + '\n',
            'relay.ini': '[relay]\nacl=true\nforce_routing=false\nall=false\ndest_domains=false\n',
            relay_acl_allow: '127.0.0.0/8\n',
            'outbound.ini': 'local_mx_ok=true\nenable_tls=true\ntemp_fail_intervals=10m*5\nconnect_timeout=5\n',
            'log.ini': '[main]\nlevel=info\ntimestamps=true\n',
            host_list: 'haraka.world.test\n',
            ...this.opts.config,
        }
        for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(cfg, name), content)
    }

    /** Write or replace one config file (Haraka and the plugin watch their files). */
    writeConfigFile(name: string, content: string): void {
        fs.writeFileSync(path.join(this.dir, 'config', name), content)
    }

    async start(): Promise<void> {
        const bin = require.resolve('Haraka/bin/haraka')
        const env: NodeJS.ProcessEnv = {
            ...process.env,
            WORLD_HARAKA_HMAIL: require.resolve('Haraka/outbound/hmail.js'),
            WORLD_SYSTEM_RESOLVER: this.opts.systemResolver ?? '',
        }
        this.proc = startProcess('haraka', process.execPath, [...(this.opts.nodeArgs ?? []), bin, '-c', this.dir], this.logFile, env)
        await waitForTcp(this.address, this.port, this.proc, 30000)
    }

    async stop(): Promise<void> {
        if (this.proc) await stopProcess(this.proc, this.dir)
        this.proc = undefined
    }

    /** Remove the directory (after stop). */
    cleanup(): void {
        fs.rmSync(this.dir, { recursive: true, force: true })
    }

    /** Ask Haraka to retry its temporarily failed messages now (Haraka's SIGHUP). */
    flushQueue(): void {
        this.proc?.child.kill('SIGHUP')
    }

    events(): OutboundEvent[] {
        const f = path.join(this.dir, 'events.jsonl')
        if (!fs.existsSync(f)) return []
        // complete lines only: Haraka may be appending one right now
        const text = fs.readFileSync(f, 'utf8')
        return text
            .slice(0, text.lastIndexOf('\n') + 1)
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as OutboundEvent)
    }

    /** Files in Haraka's outbound queue (messages still queued). */
    queued(): string[] {
        if (!fs.existsSync(this.queueDir)) return []
        return fs.readdirSync(this.queueDir).filter((f) => !f.startsWith('.') && f !== 'error')
    }

    /** Queue ids (todo.uuid) of the messages still queued: each queue file starts with a 4-byte length and its todo JSON. */
    queuedIds(): string[] {
        return this.queued().flatMap((f) => {
            try {
                const buf = fs.readFileSync(path.join(this.queueDir, f))
                const len = buf.readUInt32BE(0)
                return [(JSON.parse(buf.subarray(4, 4 + len).toString('utf8')) as { uuid: string }).uuid]
            } catch {
                return [] // being written or removed right now
            }
        })
    }

    log(): string {
        return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : ''
    }

    logTail(lines = 60): string {
        return tail(this.logFile, lines)
    }

    /** Send one message over SMTP to Haraka; resolves with Haraka's queue id (from its 250 reply). */
    async send(to: string, opts: { from?: string; subject?: string; body?: string } = {}): Promise<string> {
        const from = opts.from ?? 'sender@haraka.world.test'
        const subject = opts.subject ?? `to ${to}`
        // the body as it is sent: CRLF lines, dot-stuffed
        const body = (opts.body ?? 'Hello from the DANE test world.\r\n').replace(/^\./gm, '..')
        const lines = [
            `HELO client.world.test`,
            `MAIL FROM:<${from}>`,
            `RCPT TO:<${to}>`,
            'DATA',
            `From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <${Date.now()}.${Math.random()}@world.test>\r\n\r\n${body}.`,
            'QUIT',
        ]
        return await new Promise<string>((resolve, reject) => {
            const sock = net.connect({ host: this.address, port: this.port })
            let buf = ''
            let step = 0
            let queueId = ''
            sock.setTimeout(20000, () => {
                sock.destroy()
                reject(new Error(`SMTP to Haraka timed out at step ${step}: ${buf}`))
            })
            sock.on('data', (d) => {
                buf += d.toString('utf8')
                // wait for complete final reply lines ("NNN text\r\n")
                while (true) {
                    const m = /^(\d{3}) (.*)\r\n/m.exec(buf)
                    if (!m) return
                    buf = buf.slice(m.index + m[0].length)
                    const code = parseInt(m[1], 10)
                    if (code >= 400) {
                        sock.destroy()
                        return reject(new Error(`Haraka refused at step ${step}: ${m[0]}`))
                    }
                    if (step === 5) {
                        const q = /queued as ([A-F0-9-.]+)/i.exec(m[2]) ?? /\(([A-F0-9-.]+)\)/i.exec(m[2])
                        queueId = q ? q[1] : m[2]
                    }
                    if (step >= lines.length) {
                        sock.end()
                        return resolve(queueId)
                    }
                    sock.write(`${lines[step]}\r\n`)
                    step++
                }
            })
            sock.on('error', reject)
        })
    }

    /** Wait until outbound reports an event for the message with this queue id (prefix match). */
    async waitFor(queueId: string, events: OutboundEvent['event'][], timeoutMs = 30000, after = 0): Promise<OutboundEvent> {
        const deadline = Date.now() + timeoutMs
        while (Date.now() < deadline) {
            const found = this.events()
                .slice(after)
                .find((e) => e.queue_id.startsWith(queueId) && events.includes(e.event))
            if (found) return found
            await sleep(50)
        }
        throw new Error(`no ${events.join('/')} for ${queueId} within ${timeoutMs} ms\n${this.logTail()}`)
    }
}
