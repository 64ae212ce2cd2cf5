// A DNS forwarder between the plugin and the world's unbound, for fault injection: it passes
// queries on (UDP and TCP), holds every answer back for `delayMs` ("slow", past the plugin's
// timeout), or drops them ("down"). Loopback only.
import dgram from 'node:dgram'
import net from 'node:net'

export type ProxyMode = 'pass' | 'slow' | 'down'

export class DnsProxy {
    mode: ProxyMode = 'pass'
    delayMs = 3000
    private udp?: dgram.Socket
    private tcp?: net.Server
    private readonly open = new Set<{ close: () => void }>()

    constructor(
        readonly address: string,
        readonly port: number,
        private readonly upstream: { address: string; port: number },
    ) {}

    async start(): Promise<void> {
        const udp = dgram.createSocket('udp4')
        udp.on('message', (msg, rinfo) => this.forwardUdp(msg, rinfo))
        udp.on('error', () => undefined)
        await new Promise<void>((resolve, reject) => {
            udp.once('error', reject)
            udp.bind(this.port, this.address, () => resolve())
        })
        this.udp = udp
        this.tcp = net.createServer((client) => this.forwardTcp(client))
        await new Promise<void>((resolve, reject) => {
            this.tcp!.once('error', reject)
            this.tcp!.listen(this.port, this.address, () => resolve())
        })
    }

    private later(fn: () => void): void {
        if (this.mode === 'down') return
        if (this.mode === 'pass') return fn()
        const t = setTimeout(fn, this.delayMs)
        const handle = { close: () => clearTimeout(t) }
        this.open.add(handle)
        setTimeout(() => this.open.delete(handle), this.delayMs + 10)
    }

    private forwardUdp(msg: Buffer, rinfo: dgram.RemoteInfo): void {
        const up = dgram.createSocket('udp4')
        const handle = { close: () => up.close() }
        this.open.add(handle)
        const done = (): void => {
            this.open.delete(handle)
            try {
                up.close()
            } catch {
                /* closed */
            }
        }
        up.on('error', done)
        up.on('message', (reply) => {
            done()
            this.later(() => this.udp?.send(reply, rinfo.port, rinfo.address))
        })
        setTimeout(done, 10000)
        up.send(msg, this.upstream.port, this.upstream.address)
    }

    private forwardTcp(client: net.Socket): void {
        const up = net.connect(this.upstream.port, this.upstream.address)
        const handle = { close: () => (client.destroy(), up.destroy()) }
        this.open.add(handle)
        const end = (): void => {
            this.open.delete(handle)
            client.destroy()
            up.destroy()
        }
        client.on('error', end)
        up.on('error', end)
        client.on('close', end)
        client.on('data', (d) => up.write(d))
        up.on('data', (d) => this.later(() => client.writable && client.write(d)))
        up.on('end', () => this.later(() => client.end()))
    }

    async stop(): Promise<void> {
        for (const h of [...this.open]) h.close()
        this.open.clear()
        await new Promise<void>((resolve) => (this.udp ? this.udp.close(() => resolve()) : resolve()))
        await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()))
        this.udp = undefined
        this.tcp = undefined
    }
}
