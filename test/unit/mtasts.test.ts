// Issue 15 (MTA-STS, RFC 8461): the record, the policy file and the mx patterns, as the RFC reads.
import assert from 'node:assert/strict'
import { allowedBy, MAX_AGE_S, mxMatches, parseStsPolicy, parseStsRecords } from '../../lib/mtasts/policy'

describe('MTA-STS record and policy (RFC 8461 3, 4.1)', () => {
    it('C31: exactly one "v=STSv1;" record with an id of 1-32 letters and digits; anything else is no policy', () => {
        assert.deepEqual(parseStsRecords(['v=STSv1; id=20261124T1;']), { kind: 'record', record: { id: '20261124T1', record: 'v=STSv1; id=20261124T1;' } })
        assert.deepEqual(parseStsRecords(['v=spf1 -all', 'v=STSv1;id=abc']), { kind: 'record', record: { id: 'abc', record: 'v=STSv1;id=abc' } })
        // unknown fields are ignored
        assert.equal(parseStsRecords(['v=STSv1; id=1; ext=value']).kind, 'record')
        for (const [txts, why] of [
            [[], /no TXT record/],
            [['v=spf1 -all'], /no record begins/],
            [['v=STSv1; id=1', 'v=STSv1; id=2'], /2 records .* exactly one/],
            [['v=STSv1;'], /no id/],
            [['v=STSv1; id=has-dash'], /not 1 to 32 letters and digits/],
            [[`v=STSv1; id=${'a'.repeat(33)}`], /not 1 to 32/],
            [['v=STSv1; id=1; id=2'], /id given twice/],
            [['v=STSv1; id=1; junk'], /not name=value/],
            [['V=STSv1; id=1'], /no record begins/],
        ] as [string[], RegExp][]) {
            const r = parseStsRecords(txts)
            assert.equal(r.kind, 'none', JSON.stringify(txts))
            assert.match((r as { reason: string }).reason, why)
        }
    })

    it('C32: a policy has version STSv1, a mode, max_age (held to a year) and, unless mode none, mx patterns; an invalid one is no policy', () => {
        const p = parseStsPolicy('version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Backup.Example.COM.\r\nmax_age: 604800\r\n')
        assert.deepEqual(p, { kind: 'policy', policy: { mode: 'enforce', mx: ['mail.example.com', '*.backup.example.com'], maxAge: 604800 } })
        // LF line ends, unknown keys, a max_age over a year
        assert.deepEqual(parseStsPolicy('version: STSv1\nmode: testing\nmx: mx.example.net\nmax_age: 9999999999\nextension: x\n'), {
            kind: 'policy',
            policy: { mode: 'testing', mx: ['mx.example.net'], maxAge: MAX_AGE_S },
        })
        assert.deepEqual(parseStsPolicy('version: STSv1\nmode: none\nmax_age: 86400\n'), { kind: 'policy', policy: { mode: 'none', mx: [], maxAge: 86400 } })
        for (const [text, why] of [
            ['mode: enforce\nmx: a.example\nmax_age: 1\n', /no version/],
            ['version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n', /not STSv1/],
            ['version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n', /not enforce, testing or none/],
            ['version: STSv1\nmode: enforce\nmax_age: 1\n', /without any mx/],
            ['version: STSv1\nmode: enforce\nmx: a.example\n', /no max_age/],
            ['version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n', /not a number/],
            ['version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n', /not a number/],
            ['version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n', /not a host name/],
            ['version: STSv1\nmode: enforce\nmx: mail.*.example\nmax_age: 1\n', /not a host name/],
            ['version: STSv1\nmode: enforce\nmx: example\nmax_age: 1\n', /not a host name/],
            ['version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n', /mode given twice/],
            ['<html>not a policy</html>\n', /not "key: value"/],
        ] as [string, RegExp][]) {
            const r = parseStsPolicy(text)
            assert.equal(r.kind, 'invalid', text)
            assert.match((r as { reason: string }).reason, why)
        }
    })

    it('C33: a wildcard covers exactly one left-most label; names compare without case or a trailing dot', () => {
        assert.ok(mxMatches('mail.example.com', 'mail.example.com'))
        assert.ok(mxMatches('MAIL.Example.com.', 'mail.example.com'))
        assert.ok(mxMatches('a.example.com', '*.example.com'))
        assert.ok(!mxMatches('example.com', '*.example.com'), 'the wildcard is a whole label: not the domain itself')
        assert.ok(!mxMatches('a.b.example.com', '*.example.com'), 'one label only (mailauth matches this; the RFC does not)')
        assert.ok(!mxMatches('aexample.com', '*.example.com'))
        assert.ok(!mxMatches('mail.example.com.evil.test', 'mail.example.com'))
        const policy = { mode: 'enforce' as const, mx: ['mx1.example.com', '*.backup.example.com'], maxAge: 86400 }
        assert.equal(allowedBy('x.backup.example.com', policy), '*.backup.example.com')
        assert.equal(allowedBy('mx2.example.com', policy), undefined)
    })
})
