// Issue 5: the get_mx hook's translation of a Decision into Haraka's terms,
// with a scripted resolver (no network): OK with validated addresses carrying
// the DANE context, DENYSOFT for defer, DENY for bounce, and A-labels for IDNs.
import assert from 'node:assert/strict'
import constants from 'haraka-constants'
import * as plugin from '../../index'
import { buildConfig } from '../../lib/config'
import { createLogger } from '../../lib/log'
import type { Answer, RRType } from '../../lib/resolver'

class FakeMx {
    [k: string]: unknown
    constructor(o: Record<string, unknown>) {
        Object.assign(this, o)
    }
}

function fakePlugin(table: Record<string, Partial<Answer>>, asked: string[]) {
    const { config } = buildConfig({ file: 'dane.ini', lines: [] }, { file: 'dane.exceptions', lines: [] })
    const resolver = {
        lookup: async (name: string, type: RRType): Promise<Answer> => {
            asked.push(`${name} ${type}`)
            const a = table[`${name} ${type}`]
            if (a && a.status === 'failed' && a.reason === 'throw') throw new Error('boom')
            return { name, type, status: 'nxdomain', secure: true, canonicalName: name, cnames: [], ttl: 60, rcode: 3, ...a }
        },
        close() {},
        // the host decisions the hook keeps (lib/policy HostMemo): a map without expiry, enough for one test
        kept: new Map<string, unknown>(),
        remember(key: string, value: unknown) {
            this.kept.set(key, value)
        },
        recall(key: string) {
            return this.kept.get(key)
        },
    }
    const noop = () => undefined
    return {
        dane: { config: config!, resolver, logger: createLogger({ destination: 'stderr', level: 'silent' }), internals: { HarakaMx: FakeMx } },
        logerror: noop,
        lognotice: noop,
        loginfo: noop,
    }
}

function callHook(p: ReturnType<typeof fakePlugin>, domain: string): Promise<{ code?: number; msg: unknown }> {
    return new Promise((resolve) => {
        const hmail = { todo: { uuid: 'Q1.1', domain } }
        ;(plugin.dane_get_mx as unknown as (this: unknown, next: (c?: number, m?: unknown) => void, h: unknown, d: string) => void).call(
            p,
            (code, msg) => resolve({ code, msg }),
            hmail,
            domain,
        )
    })
}

const ok = (a: Partial<Answer>) => ({ status: 'ok' as const, secure: true, rcode: 0, ...a })

describe('get_mx hook (index.ts)', () => {
    it("C7, C9: OK with one HarakaMx per validated address, each carrying the host's DANE context", async () => {
        const asked: string[] = []
        const p = fakePlugin(
            {
                'x.example MX': ok({ mx: [{ preference: 10, exchange: 'mx.x.example' }] }),
                'mx.x.example A': ok({ addresses: ['192.0.2.1'] }),
                'mx.x.example AAAA': ok({ addresses: ['2001:db8::1'] }),
                '_25._tcp.mx.x.example TLSA': ok({ tlsa: [Buffer.concat([Buffer.from([3, 1, 1]), Buffer.alloc(32, 7)])] }),
            },
            asked,
        )
        const r = await callHook(p, 'x.example')
        assert.equal(r.code, constants.ok)
        const mxs = r.msg as FakeMx[]
        assert.deepEqual(
            mxs.map((m) => [m.exchange, m.priority, m.from_dns]),
            [
                ['192.0.2.1', 10, 'mx.x.example'],
                ['2001:db8::1', 10, 'mx.x.example'],
            ],
        )
        const ctx = mxs[0].dane as { mode: string; tlsaBase: string; queueId: string; records: unknown[] }
        assert.equal(ctx.mode, 'dane')
        assert.equal(ctx.tlsaBase, 'mx.x.example')
        assert.equal(ctx.queueId, 'Q1.1')
        assert.equal(ctx.records.length, 1)
    })

    it('C11: defer → DENYSOFT (the message stays queued)', async () => {
        const p = fakePlugin({ 'x.example MX': { status: 'failed', secure: false, reason: 'servfail' } }, [])
        const r = await callHook(p, 'x.example')
        assert.equal(r.code, constants.denysoft)
        assert.match(String(r.msg), /servfail/)
    })

    it('C5: bounce → DENY', async () => {
        const r = await callHook(fakePlugin({}, []), 'nowhere.example')
        assert.equal(r.code, constants.deny)
    })

    it('C4: a resolver that throws → DENYSOFT, never a delivery', async () => {
        const p = fakePlugin({ 'x.example MX': { status: 'failed', reason: 'throw' } }, [])
        const r = await callHook(p, 'x.example')
        assert.equal(r.code, constants.denysoft)
    })

    it("C4, C11: DNS slower than the plugin timeout → DENYSOFT just before Haraka's own timeout, with the reason", async () => {
        const p = fakePlugin({}, []) as ReturnType<typeof fakePlugin> & { timeout: number }
        p.dane.resolver.lookup = () => new Promise<Answer>(() => undefined) // never answers
        p.timeout = 1.5
        // the resolver never answers: only the plugin's own deadline can produce this reply
        const r = await callHook(p, 'x.example')
        assert.equal(r.code, constants.denysoft)
        assert.match(String(r.msg), /longer than the plugin timeout \(1\.5 s\)/)
    })

    it('C4: an internationalised domain is looked up in its A-label form', async () => {
        const asked: string[] = []
        await callHook(fakePlugin({}, asked), 'bücher.example')
        assert.equal(asked[0], 'xn--bcher-kva.example MX')
    })

    it('C37, C38: MTA-STS for a host without DANE: enforce turns it into an sts MX with its policy; an MTA-STS internal error defers, never a delivery without it', async () => {
        const table = {
            'y.example MX': ok({
                mx: [
                    { preference: 10, exchange: 'mx.y.example' },
                    { preference: 20, exchange: 'other.example' },
                ],
            }),
            'mx.y.example A': ok({ addresses: ['192.0.2.7'] }),
            'mx.y.example AAAA': ok({ status: 'nodata' }),
            '_25._tcp.mx.y.example TLSA': { status: 'nxdomain' as const, secure: true },
            'other.example A': ok({ addresses: ['192.0.2.8'] }),
            'other.example AAAA': ok({ status: 'nodata' }),
            '_25._tcp.other.example TLSA': { status: 'nxdomain' as const, secure: true },
        }
        const p = fakePlugin(table, []) as ReturnType<typeof fakePlugin> & { dane: { sts?: unknown } }
        const policy = { mode: 'enforce' as const, mx: ['mx.y.example'], maxAge: 86400 }
        p.dane.sts = {
            policies: { policyFor: async (d: string) => ({ domain: d, id: 'p1', plan: { fetch: false, why: '' }, inForce: policy, reason: 'kept' }) },
            ca: 'CA',
        }
        const r = await callHook(p, 'y.example')
        assert.equal(r.code, constants.ok)
        const mxs = r.msg as FakeMx[]
        assert.deepEqual(
            mxs.map((m) => [
                m.exchange,
                (m.dane as { mode: string }).mode,
                (m.dane as { sts: { mode: string; ca: string } }).sts.mode,
                (m.dane as { sts: { ca: string } }).sts.ca,
            ]),
            [['192.0.2.7', 'sts', 'enforce', 'CA']],
        )
        p.dane.sts = { policies: { policyFor: async () => Promise.reject(new Error('MTA-STS for y.example: internal error: boom')) } }
        const failed = await callHook(p, 'y.example')
        assert.equal(failed.code, constants.denysoft)
    })
})
