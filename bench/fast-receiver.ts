// A receiving MTA for the delivery benchmark, in a process of its own so that its CPU is not the
// sender's and can be read: greets at once (smtp-server waits ~100 ms before its greeting, which caps
// any sender at connections ÷ 0.1 s), offers STARTTLS, reads a message and answers as little as it
// can. It listens on each address given; it writes what it received to stdout when it gets SIGUSR2:
// one line "COUNT <messages> <cpu µs>" (its own user+system CPU since it started).
//
//   node dist/bench/fast-receiver.js <cert.pem> <key.pem> <address> [<address> ...]
import fs from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'

const [certFile, keyFile, ...addresses] = process.argv.slice(2)
const context = tls.createSecureContext({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) })
let messages = 0

function session(sock: net.Socket): void {
    sock.on('error', () => undefined)
    let secure: tls.TLSSocket | undefined
    let buf = ''
    let inData = false
    const out = (s: string): void => {
        ;(secure ?? sock).write(s)
    }
    const onData = (d: Buffer): void => {
        buf += d.toString('latin1')
        for (;;) {
            if (inData) {
                const end = buf.indexOf('\r\n.\r\n')
                if (end < 0) {
                    if (buf.length > 8) buf = buf.slice(-8)
                    return
                }
                buf = buf.slice(end + 5)
                inData = false
                messages++
                out('250 2.0.0 ok\r\n')
                continue
            }
            const i = buf.indexOf('\r\n')
            if (i < 0) return
            const cmd = buf.slice(0, 4).toUpperCase()
            buf = buf.slice(i + 2)
            if (cmd === 'EHLO') out(secure ? '250-fast\r\n250 8BITMIME\r\n' : '250-fast\r\n250 STARTTLS\r\n')
            else if (cmd === 'STAR') {
                sock.removeListener('data', onData)
                sock.write('220 go\r\n')
                secure = new tls.TLSSocket(sock, { isServer: true, secureContext: context })
                secure.on('error', () => undefined)
                secure.on('data', onData)
            } else if (cmd === 'DATA') {
                inData = true
                out('354 go\r\n')
            } else if (cmd === 'QUIT') {
                out('221 bye\r\n')
                ;(secure ?? sock).end()
            } else out('250 ok\r\n')
        }
    }
    sock.on('data', onData)
    sock.write('220 fast ESMTP\r\n')
}

for (const address of addresses) net.createServer(session).listen(25, address)
process.on('SIGUSR2', () => {
    const u = process.cpuUsage()
    process.stdout.write(`COUNT ${messages} ${u.user + u.system}\n`)
})
process.stdout.write('READY\n')
