// Issue 5: the plugin finds Haraka's own internals (not a second copy) and
// refuses to start, with a clear message, when they are not what it expects.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import constants from 'haraka-constants'
import { loadHarakaInternals, installGlue, proveInternals, configSource, deliveredFacts, type HarakaInternals } from '../../lib/haraka-adapter'
import { dane_prove_internals } from '../../index'

const harakaDir = path.dirname(require.resolve('Haraka/package.json'))
// eslint-disable-next-line @typescript-eslint/no-require-imports -- Haraka's own modules by path, as Haraka's haraka_require loads them
const harakaRequire = (name: string): unknown => require(path.join(harakaDir, name))

describe('Haraka internals (lib/haraka-adapter)', () => {
    it("C9: finds HMailItem, the client pool, the TLS NO-GO list and Haraka's own HarakaMx class", () => {
        const h = loadHarakaInternals(harakaRequire)
        assert.match(h.version, /^3\.3\./)
        assert.equal(typeof h.HMailItem.prototype.try_deliver_host_on_socket, 'function')
        assert.equal(typeof h.outboundTls.check_tls_nogo, 'function')
        // the very class hmail.js uses for `instanceof` (a second copy would lose the plugin's marks)
        const theirs = createRequire(path.join(harakaDir, 'outbound', 'hmail.js'))('haraka-net-utils').HarakaMx
        assert.equal(h.HarakaMx, theirs)
        const mx = new h.HarakaMx({ exchange: '192.0.2.1', from_dns: 'mx.example' })
        ;(mx as unknown as Record<string, unknown>).dane = { mode: 'dane' }
        assert.equal(new theirs(mx), mx, 'Haraka keeps the object, and so the DANE context on it')
    })

    it('C9: refuses to start, naming what is missing, when an internal it wraps is gone', () => {
        const broken = (name: string): unknown => (name === 'outbound/client_pool' ? {} : harakaRequire(name))
        assert.throws(() => loadHarakaInternals(broken), /Haraka internals it relies on are missing or changed: outbound\/client_pool\.get_client/)
    })

    it("C9: refuses to start when Haraka's outbound module cannot be found at all", () => {
        assert.throws(() => loadHarakaInternals(() => ({ prototype: {} })), /cannot locate Haraka outbound\/hmail\.js/)
    })
})

describe("C28: fail closed when Haraka stops passing the plugin's objects through", () => {
    const real = () => loadHarakaInternals(harakaRequire)

    it('C28: the real Haraka passes the proof by behaviour (HarakaMx keeps the object, resolve_mx_hosts passes it through)', async () => {
        const h = real()
        installGlue(h, {
            onAttemptFailed: () => undefined,
            onConnectFailed: () => undefined,
            onTlsEstablished: () => undefined,
            wantsLocalAddress: () => true,
            onContextLost: () => undefined,
        })
        assert.equal(await proveInternals(h), null)
    })

    it('C28: a HarakaMx that copies its argument, or a resolve_mx_hosts that copies the MX, fails the proof with the reason', async () => {
        const h = real()
        class Copying {
            [k: string]: unknown
            constructor(o: Record<string, unknown>) {
                Object.assign(this, o, { dane: undefined })
            }
        }
        assert.match(
            (await proveInternals({ ...h, HarakaMx: Copying as unknown as HarakaInternals['HarakaMx'] })) ?? '',
            /new HarakaMx\(mx\) no longer returns the same object/,
        )
        const copyingResolve: HarakaInternals['resolveMxHosts'] = async (mxs) => mxs.map((m) => ({ ...m, dane: undefined }))
        assert.match((await proveInternals({ ...h, resolveMxHosts: copyingResolve })) ?? '', /resolve_mx_hosts no longer passes an MX .* through unchanged/)
    })

    it('C28: Haraka does not start when the proof fails: the init hooks answer DENY with the reason', async () => {
        const h = real()
        const broken = { ...h, resolveMxHosts: (async () => []) as HarakaInternals['resolveMxHosts'] }
        const errors: string[] = []
        const answer = await new Promise<{ code?: number; msg?: unknown }>((resolve) =>
            (dane_prove_internals as unknown as (this: unknown, next: (code?: number, msg?: unknown) => void) => void).call(
                { dane: { internals: broken }, logerror: (m: string) => errors.push(m) },
                (code, msg) => resolve({ code, msg }),
            ),
        )
        assert.equal(answer.code, constants.deny)
        assert.match(String(answer.msg), /haraka-plugin-dane: resolve_mx_hosts/)
        assert.match(errors[0], /cannot run on this Haraka/)
    })

    it('C28: a connection for a message the plugin routed, whose MX lost its DANE context, is ended, never delivered', () => {
        const calls: string[] = []
        const proto = {
            try_deliver_host_on_socket(this: unknown) {
                calls.push('haraka')
            },
        }
        const fake = { ...real(), HMailItem: { prototype: proto } } as unknown as HarakaInternals
        const lost: string[] = []
        installGlue(fake, {
            onAttemptFailed: () => undefined,
            onConnectFailed: () => undefined,
            onTlsEstablished: () => undefined,
            wantsLocalAddress: () => true,
            onContextLost: (_h, address) => lost.push(address),
        })
        const events: string[] = []
        const socket = {
            write: () => true,
            emit: (event: string, ...args: unknown[]) => {
                events.push(`${event}: ${(args[0] as Error)?.message}`)
                return true
            },
            upgrade: () => undefined,
            destroy: () => events.push('destroy'),
        }
        const routed = { todo: { uuid: 'Q', domain: 'example.com' }, dane_decision: {} }
        fake.HMailItem.prototype.try_deliver_host_on_socket.call(routed, { exchange: '192.0.2.1' }, '192.0.2.1', 25, socket)
        assert.deepEqual(calls, ['haraka'], "Haraka's own handlers are attached first, so its error path tries the next MX")
        assert.deepEqual(lost, ['192.0.2.1'])
        assert.deepEqual(events, ['error: DANE: the MX for this message lost its DANE context; connection ended', 'destroy'])
        // a message the plugin did not route (another get_mx plugin answered) is left alone
        events.length = 0
        fake.HMailItem.prototype.try_deliver_host_on_socket.call(
            { todo: { uuid: 'R', domain: 'example.org' } },
            { exchange: '192.0.2.2' },
            '192.0.2.2',
            25,
            socket,
        )
        assert.deepEqual(events, [])
    })
})

describe('C23: configuration files as haraka-config resolves them', () => {
    it('C23: an empty override leaves the shipped default in force, and errors name the default; a non-empty one names the override', () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dane-cfg-'))
        const shipped = path.join(dir, 'plugin', 'config')
        const haraka = path.join(dir, 'haraka', 'config')
        fs.mkdirSync(shipped, { recursive: true })
        fs.mkdirSync(haraka, { recursive: true })
        fs.writeFileSync(path.join(shipped, 'dane.ini'), '[main]\npolicy=dane\n')
        fs.writeFileSync(path.join(haraka, 'dane.ini'), '')
        const config = { root_path: shipped, overrides_path: haraka, get: () => ['[main]', 'policy=dane'] }
        assert.equal(configSource(config, 'dane.ini', () => undefined).file, path.join(shipped, 'dane.ini'))
        fs.writeFileSync(path.join(haraka, 'dane.ini'), '[main]\npolicy=may\n')
        assert.equal(configSource(config, 'dane.ini', () => undefined).file, path.join(haraka, 'dane.ini'))
        fs.rmSync(dir, { recursive: true, force: true })
    })

    it("C24: the delivered hook's positional parameters are read by name (response, secured)", () => {
        assert.deepEqual(deliveredFacts(['mx', '192.0.2.1', '250 ok', 1, 25, 'SMTP', [], true, false]), { response: '250 ok', secured: true })
        assert.deepEqual(deliveredFacts([]), { response: '', secured: false })
    })
})
