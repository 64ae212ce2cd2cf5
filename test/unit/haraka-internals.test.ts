// Issue 5: the plugin finds Haraka's own internals (not a second copy) and
// refuses to start, with a clear message, when they are not what it expects.
import assert from 'node:assert/strict'
import path from 'node:path'
import { createRequire } from 'node:module'
import { loadHarakaInternals } from '../../lib/haraka-tls'

const harakaDir = path.dirname(require.resolve('Haraka/package.json'))
const harakaRequire = (name: string): unknown => require(path.join(harakaDir, name))

describe('Haraka internals (lib/haraka-tls)', () => {
    it('C9: finds HMailItem, the client pool, the TLS NO-GO list and Haraka\'s own HarakaMx class', () => {
        const h = loadHarakaInternals(harakaRequire)
        assert.match(h.version, /^3\.3\./)
        assert.equal(typeof h.HMailItem.prototype.try_deliver_host_on_socket, 'function')
        assert.equal(typeof h.outboundTls.check_tls_nogo, 'function')
        // the very class hmail.js uses for `instanceof` (a second copy would lose the plugin's marks)
        const theirs = createRequire(path.join(harakaDir, 'outbound', 'hmail.js'))('haraka-net-utils').HarakaMx
        assert.equal(h.HarakaMx, theirs)
        const mx = new h.HarakaMx({ exchange: '192.0.2.1', from_dns: 'mx.example' })
        ;(mx as Record<string, unknown>).dane = { mode: 'dane' }
        assert.equal(new theirs(mx), mx, 'Haraka keeps the object, and so the DANE context on it')
    })

    it('C9: refuses to start, naming what is missing, when an internal it wraps is gone', () => {
        const broken = (name: string): unknown => (name === 'outbound/client_pool' ? {} : harakaRequire(name))
        assert.throws(() => loadHarakaInternals(broken), /Haraka internals it relies on are missing or changed: outbound\/client_pool\.get_client/)
    })

    it('C9: refuses to start when Haraka\'s outbound module cannot be found at all', () => {
        assert.throws(() => loadHarakaInternals(() => ({ prototype: {} })), /cannot locate Haraka outbound\/hmail\.js/)
    })
})
