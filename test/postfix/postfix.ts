// A private Postfix instance used as the reference DANE client (RFC 7672).
//
// It runs from its own config directory and queue directory under `base`
// (default /tmp/pfx-postfix), listens on nothing (no `smtp inet` service: mail
// is injected with `sendmail -C`, i.e. postdrop → pickup), and resolves through
// a private resolv.conf (`nameserver <resolver>`, `options trust-ad`) that is
// bind-mounted over /etc/resolv.conf in a mount namespace of its own
// (`unshare -m`): the machine's /etc/resolv.conf is never touched. Every
// delivery transport is a master.cf smtp service of its own with
// `-o syslog_name=postfix/<tag>`, so each log line says which scenario it is.
import fs from 'node:fs'
import path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import { sleep } from '../world/procs'

export interface PostfixTransport {
    /** master.cf service name, also the log tag (postfix/<name>/smtp[pid]) */
    name: string
    /** extra `-o name=value` for this transport (e.g. inet_protocols=all, smtp_tls_loglevel=3) */
    overrides?: Record<string, string>
    /** extra arguments to the smtp daemon (e.g. ['-v']) */
    args?: string[]
    /** recipient domains routed to this transport (MX lookup as usual: `name:` without a next hop) */
    domains: string[]
}

export interface PostfixOptions {
    base?: string
    resolver: string
    /** main.cf settings added to / replacing the defaults below */
    main?: Record<string, string>
    transports: PostfixTransport[]
}

export interface Outcome {
    queueId?: string
    status?: 'sent' | 'deferred' | 'bounced' | 'expired'
    relay?: string
    dsn?: string
    reason?: string
    statusLine?: string
}

const SENDER_DOMAIN = 'sender.invalid'

export class PostfixInstance {
    readonly base: string
    readonly etc: string
    readonly spool: string
    readonly maillog: string
    readonly resolvConf: string
    private started = false

    constructor(readonly opts: PostfixOptions) {
        this.base = opts.base ?? '/tmp/pfx-postfix'
        this.etc = path.join(this.base, 'etc')
        this.spool = path.join(this.base, 'spool')
        this.maillog = path.join(this.base, 'maillog')
        this.resolvConf = path.join(this.base, 'resolv.conf')
    }

    get env(): NodeJS.ProcessEnv {
        return { ...process.env, MAIL_CONFIG: this.etc }
    }

    /** Stop whatever a previous run of this base left, then write a fresh configuration. */
    async prepare(): Promise<void> {
        if (fs.existsSync(path.join(this.etc, 'main.cf'))) await this.stop()
        fs.rmSync(this.base, { recursive: true, force: true })
        for (const d of [this.base, this.etc, this.spool]) fs.mkdirSync(d, { recursive: true, mode: 0o755 })
        fs.chmodSync(this.base, 0o755)
        const data = path.join(this.base, 'data')
        fs.mkdirSync(data, { mode: 0o700 })
        spawnSync('chown', ['postfix:postfix', data])
        fs.writeFileSync(this.resolvConf, `nameserver ${this.opts.resolver}\noptions trust-ad edns0 attempts:1 timeout:2\n`)
        fs.writeFileSync(path.join(this.etc, 'main.cf'), this.mainCf())
        fs.writeFileSync(path.join(this.etc, 'master.cf'), this.masterCf())
        const transport = [`${SENDER_DOMAIN} discard:`, ...this.opts.transports.flatMap((t) => t.domains.map((d) => `${d} ${t.name}:`))]
        fs.writeFileSync(path.join(this.etc, 'transport'), transport.join('\n') + '\n')
        fs.writeFileSync(this.maillog, '')
    }

    private mainCf(): string {
        const m: Record<string, string> = {
            compatibility_level: '3.6',
            queue_directory: this.spool,
            data_directory: path.join(this.base, 'data'),
            mail_owner: 'postfix',
            setgid_group: 'postdrop',
            myhostname: 'pfx-client.invalid',
            mydomain: 'invalid',
            myorigin: '$myhostname',
            mydestination: '',
            relayhost: '',
            relay_domains: '',
            inet_interfaces: 'loopback-only',
            inet_protocols: 'ipv4',
            local_transport: 'error:local delivery is disabled',
            alias_maps: '',
            alias_database: '',
            local_recipient_maps: '',
            transport_maps: `texthash:${path.join(this.etc, 'transport')}`,
            biff: 'no',
            smtputf8_enable: 'no',
            maillog_file: this.maillog,
            maillog_file_prefixes: this.base,
            smtp_tls_security_level: 'dane',
            smtp_dns_support_level: 'dnssec',
            // the default probe (ns:.) fails in this world (no root zone): probe the trust anchor's zone instead
            dnssec_probe: 'ns:test', // no trailing dot: Postfix's valid_hostname() rejects "test."
            smtp_tls_loglevel: '2',
            smtp_tls_session_cache_database: '',
            queue_run_delay: '2s',
            minimal_backoff_time: '2s',
            maximal_backoff_time: '4s',
            smtp_connect_timeout: '5s',
            smtp_helo_timeout: '10s',
            smtp_starttls_timeout: '10s',
            delay_warning_time: '0',
            notify_classes: '',
            ...this.opts.main,
        }
        return (
            Object.entries(m)
                .map(([k, v]) => `${k} = ${v}`)
                .join('\n') + '\n'
        )
    }

    private masterCf(): string {
        // service type private unpriv chroot wakeup maxproc command; chroot is always n
        const rows = [
            'pickup    unix  n       -       n       60      1       pickup',
            'cleanup   unix  n       -       n       -       0       cleanup',
            'qmgr      unix  n       -       n       300     1       qmgr',
            'tlsmgr    unix  -       -       n       1000?   1       tlsmgr',
            'rewrite   unix  -       -       n       -       -       trivial-rewrite',
            'bounce    unix  -       -       n       -       0       bounce',
            'defer     unix  -       -       n       -       0       bounce',
            'trace     unix  -       -       n       -       0       bounce',
            'verify    unix  -       -       n       -       1       verify',
            'flush     unix  n       -       n       1000?   0       flush',
            'proxymap  unix  -       -       n       -       -       proxymap',
            'proxywrite unix -       -       n       -       1       proxymap',
            'smtp      unix  -       -       n       -       -       smtp',
            'relay     unix  -       -       n       -       -       smtp',
            'showq     unix  n       -       n       -       -       showq',
            'error     unix  -       -       n       -       -       error',
            'retry     unix  -       -       n       -       -       error',
            'discard   unix  -       -       n       -       -       discard',
            'anvil     unix  -       -       n       -       1       anvil',
            'scache    unix  -       -       n       -       1       scache',
            'postlog   unix-dgram n  -       n       -       1       postlogd',
        ]
        for (const t of this.opts.transports) {
            const o = { syslog_name: `postfix/${t.name}`, ...t.overrides }
            const args = [...(t.args ?? []), ...Object.entries(o).flatMap(([k, v]) => ['-o', `${k}=${v}`])]
            rows.push(`${t.name} unix  -       -       n       -       -       smtp ${args.join(' ')}`)
        }
        return rows.join('\n') + '\n'
    }

    /** Start master inside a private mount namespace whose /etc/resolv.conf is ours. */
    async start(): Promise<void> {
        const r = spawnSync(
            'unshare',
            [
                '-m',
                '--propagation',
                'private',
                '--',
                'sh',
                '-c',
                'mount --bind "$1" /etc/resolv.conf && exec postfix -c "$2" start',
                'sh',
                this.resolvConf,
                this.etc,
            ],
            { encoding: 'utf8', env: this.env, timeout: 60000 },
        )
        this.started = true
        if (r.status !== 0) throw new Error(`postfix start failed (${r.status}): ${r.stdout}${r.stderr}\n${this.logTail()}`)
        const deadline = Date.now() + 10000
        while (Date.now() < deadline && !this.masterPid()) await sleep(50)
        if (!this.masterPid()) throw new Error(`postfix master did not start:\n${this.logTail()}`)
    }

    masterPid(): number | undefined {
        try {
            const pid = parseInt(fs.readFileSync(path.join(this.spool, 'pid', 'master.pid'), 'utf8').trim(), 10)
            if (Number.isInteger(pid) && fs.existsSync(`/proc/${pid}`)) return pid
        } catch {
            /* not running */
        }
        return undefined
    }

    /** Run a command in master's mount namespace (so it sees our resolv.conf). */
    inNamespace(cmd: string, args: string[], timeoutMs = 60000): { status: number | null; out: string } {
        const pid = this.masterPid()
        if (!pid) throw new Error('postfix is not running')
        const r = spawnSync('nsenter', ['-t', String(pid), '-m', '--', cmd, ...args], { encoding: 'utf8', env: this.env, timeout: timeoutMs })
        return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` }
    }

    /**
     * The same, asynchronously: for clients that talk to the listeners of this
     * process (a spawnSync would block the event loop they run on).
     */
    async inNamespaceAsync(cmd: string, args: string[], timeoutMs = 60000): Promise<{ status: number | null; out: string }> {
        const pid = this.masterPid()
        if (!pid) throw new Error('postfix is not running')
        const child = spawn('nsenter', ['-t', String(pid), '-m', '--', cmd, ...args], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] })
        let out = ''
        child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')))
        child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')))
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
        const status = await new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
        clearTimeout(timer)
        return { status, out }
    }

    /** Inject one message with sendmail -C (postdrop → pickup). */
    send(recipient: string, messageId: string, subject: string): void {
        const msg = [
            `From: harness <pfx@${SENDER_DOMAIN}>`,
            `To: <${recipient}>`,
            `Subject: ${subject}`,
            `Message-ID: <${messageId}>`,
            `Date: ${new Date().toUTCString()}`,
            '',
            `Postfix DANE comparison: ${subject}`,
            '',
        ].join('\r\n')
        const r = spawnSync('sendmail', ['-C', this.etc, '-f', `pfx@${SENDER_DOMAIN}`, '-i', '--', recipient], {
            input: msg,
            encoding: 'utf8',
            env: this.env,
            timeout: 30000,
        })
        if (r.status !== 0) throw new Error(`sendmail failed for ${recipient}: ${r.stdout}${r.stderr}`)
    }

    log(): string[] {
        try {
            return fs.readFileSync(this.maillog, 'utf8').split('\n').filter(Boolean)
        } catch {
            return []
        }
    }

    logTail(n = 30): string {
        return this.log().slice(-n).join('\n')
    }

    /** The queue id cleanup gave the message with this Message-ID. */
    queueIdOf(messageId: string, lines = this.log()): string | undefined {
        for (const l of lines) {
            const m = /postfix\/cleanup\[\d+\]: ([0-9A-F]+): message-id=<([^>]*)>/.exec(l)
            if (m && m[2] === messageId) return m[1]
        }
        return undefined
    }

    /** The first delivery attempt's result (any program that logged status= for this queue id). */
    outcomeOf(queueId: string, lines = this.log()): Outcome {
        for (const l of lines) {
            if (!l.includes(`: ${queueId}: to=<`)) continue
            const st = /status=(\w+) \((.*)\)$/.exec(l)
            if (!st) continue
            return {
                queueId,
                relay: /relay=([^,]*)/.exec(l)?.[1],
                dsn: /dsn=([^,]*)/.exec(l)?.[1],
                status: st[1] as Outcome['status'],
                reason: st[2],
                statusLine: l,
            }
        }
        return { queueId }
    }

    /** Every process of this instance: those whose environment names our MAIL_CONFIG. */
    ownPids(): number[] {
        const marker = Buffer.from(`MAIL_CONFIG=${this.etc}\0`)
        const pids: number[] = []
        for (const e of fs.readdirSync('/proc')) {
            if (!/^\d+$/.test(e) || Number(e) === process.pid) continue
            try {
                if (fs.readFileSync(`/proc/${e}/environ`).includes(marker)) pids.push(Number(e))
            } catch {
                /* gone, or not ours to read */
            }
        }
        return pids
    }

    /** postfix stop, then wait for every process of ours to be gone (SIGKILL after 15 s). */
    async stop(): Promise<void> {
        if (this.masterPid()) spawnSync('postfix', ['-c', this.etc, 'stop'], { encoding: 'utf8', env: this.env, timeout: 30000 })
        const deadline = Date.now() + 15000
        while (Date.now() < deadline && this.ownPids().length > 0) await sleep(100)
        for (const pid of this.ownPids()) {
            try {
                process.kill(pid, 'SIGKILL')
            } catch {
                /* gone */
            }
        }
        const deadline2 = Date.now() + 5000
        while (Date.now() < deadline2 && this.ownPids().length > 0) await sleep(100)
        const left = this.ownPids()
        this.started = false
        if (left.length) throw new Error(`postfix processes still running: ${left.join(' ')}`)
    }

    get isStarted(): boolean {
        return this.started
    }
}
