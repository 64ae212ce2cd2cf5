// Issue 6: configuration parsing and per-domain policy (C1, C21–C23), pure.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {
    buildConfig,
    policyFor,
    formatErrors,
    isLoopback,
    DaneConfig,
    DEFAULTS,
    resolverSettings,
    resolverSettingsOrThrow,
    ResolverInput,
} from '../../lib/config'
import { ResolverConfigError } from '../../lib/resolver'

const ini = (text: string) => ({ file: '/etc/haraka/config/dane.ini', lines: text.split('\n') })
const exc = (text: string) => ({ file: '/etc/haraka/config/dane.exceptions', lines: text.split('\n') })

function ok(iniText: string, excText = ''): DaneConfig {
    const r = buildConfig(ini(iniText), exc(excText))
    assert.deepEqual(r.errors, [])
    assert.ok(r.config)
    return r.config
}

describe('config (C1, C21–C23)', () => {
    it('C23: the shipped config files parse without error and give the documented defaults', () => {
        const root = path.resolve(__dirname, '..', '..', '..', 'config')
        const r = buildConfig(
            { file: 'dane.ini', lines: fs.readFileSync(path.join(root, 'dane.ini'), 'utf8').split('\n') },
            { file: 'dane.exceptions', lines: fs.readFileSync(path.join(root, 'dane.exceptions'), 'utf8').split('\n') },
        )
        assert.deepEqual(r.errors, [])
        assert.equal(r.config!.policy, 'dane')
        assert.deepEqual(r.config!.resolver, {
            address: '127.0.0.1',
            port: 53,
            timeoutMs: 2000,
            retries: 2,
            cacheSize: 10000,
            cacheMaxBytes: 33554432,
            trustNonLoopback: false,
        })
        assert.deepEqual(r.config!.limits, { mxHosts: 10, addresses: 20 })
        assert.equal(r.config!.exceptions.size, 0)
        // TLS reports off, and the documented send times (README: [tlsrpt])
        assert.deepEqual(r.config!.tlsrpt, DEFAULTS.tlsrpt)
        assert.deepEqual(
            [DEFAULTS.tlsrpt.enabled, DEFAULTS.tlsrpt.directory, DEFAULTS.tlsrpt.sendAfterMinutes, DEFAULTS.tlsrpt.spreadMinutes],
            [false, 'dane-tlsrpt', 60, 180],
        )
        // MTA-STS on, node's CA store, policies kept in files under Haraka's directory (README: [mtasts])
        assert.deepEqual(r.config!.mtasts, DEFAULTS.mtasts)
        assert.deepEqual(
            [DEFAULTS.mtasts.enabled, DEFAULTS.mtasts.caFile, DEFAULTS.mtasts.directory, DEFAULTS.mtasts.timeoutSeconds, DEFAULTS.mtasts.store],
            [true, '', 'dane-mta-sts', 10, 'file'],
        )
    })

    it('C23: [mtasts] (RFC 8461): its settings read, and bad ones are errors on their lines (a Redis URL never echoed)', () => {
        assert.deepEqual(
            ok(
                '[mtasts]\nenabled=false\nca_file=/etc/ssl/private-ca.pem\ndirectory=/var/lib/sts\ntimeout_seconds=5\nstore=redis\nredis_url=redis://:pw@10.0.0.5:6380/2\nredis_prefix=sts1',
            ).mtasts,
            {
                enabled: false,
                caFile: '/etc/ssl/private-ca.pem',
                directory: '/var/lib/sts',
                timeoutSeconds: 5,
                store: 'redis',
                redisUrl: 'redis://:pw@10.0.0.5:6380/2',
                redisPrefix: 'sts1',
            },
        )
        const r = buildConfig(ini('[mtasts]\nenabled=maybe\ntimeout_seconds=0\nstore=memory\nredis_url=http://:secret@host/\ndirectory='), exc(''))
        assert.deepEqual(
            r.errors.map((e) => [e.line, e.message]),
            [
                [2, 'mtasts.enabled: not true or false, got "maybe"'],
                [3, 'mtasts.timeout_seconds: not a whole number of seconds from 1 to 60, got "0"'],
                [4, 'mtasts.store: not file or redis, got "memory"'],
                [5, 'mtasts.redis_url: not a redis:// or rediss:// URL (redis[s]://[[user]:password@]host[:port][/db])'],
                [6, 'mtasts.directory: empty, got ""'],
            ],
        )
        assert.equal(r.config, undefined)
    })

    it('C23: [tlsrpt] (RFC 8460): on with who reports; on without them, or with a bad address, is an error on its line', () => {
        assert.deepEqual(ok('[tlsrpt]\nenabled=true\norganization_name=Example Ops\ncontact_info=tls@example.net\ndirectory=/var/lib/dane').tlsrpt, {
            enabled: true,
            organizationName: 'Example Ops',
            contactInfo: 'tls@example.net',
            directory: '/var/lib/dane',
            sendAfterMinutes: 60,
            spreadMinutes: 180,
            httpsCaFile: '',
            from: '',
            checkSeconds: 60,
            store: 'file',
            redisUrl: 'redis://127.0.0.1:6379',
            redisPrefix: 'dane-tlsrpt',
        })
        // several nodes: one Redis; a URL with a password is not echoed in the error
        assert.deepEqual(
            ok('[tlsrpt]\nenabled=true\norganization_name=X\ncontact_info=t@example.net\nstore=redis\nredis_url=redis://:pw@10.0.0.5:6380/2\nredis_prefix=mta1')
                .tlsrpt,
            {
                ...DEFAULTS.tlsrpt,
                enabled: true,
                organizationName: 'X',
                contactInfo: 't@example.net',
                store: 'redis',
                redisUrl: 'redis://:pw@10.0.0.5:6380/2',
                redisPrefix: 'mta1',
            },
        )
        assert.deepEqual(
            buildConfig(ini('[tlsrpt]\nstore=sqlite\nredis_url=http://:secret@host/\nredis_prefix=a b'), exc('')).errors.map((e) => [e.line, e.message]),
            [
                [2, 'tlsrpt.store: not file or redis, got "sqlite"'],
                [3, 'tlsrpt.redis_url: not a redis:// or rediss:// URL (redis[s]://[[user]:password@]host[:port][/db])'],
                [4, 'tlsrpt.redis_prefix: not 1 to 64 letters, digits or _.:-, got "a b"'],
            ],
        )
        // what node-redis would refuse (createClient throws) is refused here, with its line
        for (const [url, why] of [
            ['redis://h/x', 'the path is not a database number'],
            ['redis://:p%zz@h', 'the user or password is not validly %-encoded'],
            ['redis:///2', 'no host'],
            ['not a url', 'not a URL'],
        ])
            assert.deepEqual(
                buildConfig(ini(`[tlsrpt]\nredis_url=${url}`), exc('')).errors.map((e) => [e.line, e.message]),
                [[2, `tlsrpt.redis_url: ${why} (redis[s]://[[user]:password@]host[:port][/db])`]],
            )
        const missing = buildConfig(ini('[tlsrpt]\n\nenabled=yes'), exc(''))
        assert.equal(missing.config, undefined)
        assert.deepEqual(
            missing.errors.map((e) => [e.line, e.message]),
            [
                [3, 'tlsrpt.enabled=true needs tlsrpt.organization_name'],
                [3, 'tlsrpt.enabled=true needs tlsrpt.contact_info (a mail address)'],
            ],
        )
        const bad = buildConfig(ini('[tlsrpt]\nenabled=true\norganization_name=X\ncontact_info=not an address\nenabled=maybe'), exc(''))
        assert.deepEqual(
            bad.errors.map((e) => [e.line, e.message]),
            [
                [4, 'tlsrpt.contact_info: not one mail address (local@domain), got "not an address"'],
                [5, 'tlsrpt.enabled: not true or false, got "maybe"'],
                [2, 'tlsrpt.enabled=true needs tlsrpt.contact_info (a mail address)'],
            ],
        )
    })

    it('C21: per-domain overrides: exact names and .parent entries, the most specific wins', () => {
        const cfg = ok('[domains]\nexample.com=dane-only\n.example.com=may\nsub.example.com=encrypt\n.org=none\n')
        assert.equal(policyFor(cfg, 'example.com').policy, 'dane-only')
        assert.equal(policyFor(cfg, 'a.example.com').policy, 'may')
        assert.equal(policyFor(cfg, 'b.a.example.com').policy, 'may')
        assert.equal(policyFor(cfg, 'sub.example.com').policy, 'encrypt')
        assert.equal(policyFor(cfg, 'x.sub.example.com').policy, 'may', '.example.com covers it; sub.example.com is exact only')
        assert.equal(policyFor(cfg, 'EXAMPLE.COM.').policy, 'dane-only', 'case and trailing dot ignored')
        assert.equal(policyFor(cfg, 'x.org').policy, 'none')
        assert.equal(policyFor(cfg, 'example.net').policy, 'dane', 'the default')
    })

    it('C21: the default policy word is configurable', () => {
        assert.equal(policyFor(ok('[main]\npolicy=dane-only\n'), 'x.test').policy, 'dane-only')
    })

    it('C22: the exception list turns DANE enforcement into opportunistic TLS and says so', () => {
        const cfg = ok(
            '[domains]\nstrict.example=dane-only\nenc.example=encrypt\n',
            '# broken TLSA, ticket 42\nbroken.example\n.hosted.example  # all of them\nstrict.example\nenc.example\n',
        )
        assert.deepEqual(policyFor(cfg, 'broken.example'), { policy: 'may', exception: true, matched: 'broken.example' })
        assert.equal(policyFor(cfg, 'a.hosted.example').exception, true)
        assert.equal(policyFor(cfg, 'hosted.example').exception, false, '.hosted.example covers subdomains only')
        assert.deepEqual(policyFor(cfg, 'strict.example'), { policy: 'may', exception: true, matched: 'strict.example' })
        assert.equal(policyFor(cfg, 'enc.example').policy, 'encrypt', 'the exception never weakens encrypt')
        assert.equal(policyFor(cfg, 'other.example').exception, false)
    })

    it('C21, C22: the most specific entry wins across the overrides and the exception list', () => {
        const cfg = ok('[domains]\nsub.example.com=dane-only\n.example.org=dane-only\n', '.example.com\nbroken.example.org\n')
        assert.deepEqual(policyFor(cfg, 'sub.example.com'), { policy: 'dane-only', exception: false, matched: 'sub.example.com' })
        assert.equal(policyFor(cfg, 'other.example.com').exception, true)
        assert.equal(policyFor(cfg, 'broken.example.org').exception, true, 'an exact exception beats a .parent override')
        assert.equal(policyFor(cfg, 'fine.example.org').policy, 'dane-only')
    })

    it('C23: an unknown policy word is reported with file and line', () => {
        const r = buildConfig(ini('[main]\npolicy=dane\n[domains]\nexample.com=dane-onyl\n'), exc(''))
        assert.equal(r.config, undefined)
        assert.equal(r.errors.length, 1)
        assert.equal(r.errors[0].line, 4)
        assert.match(formatErrors(r.errors), /^\/etc\/haraka\/config\/dane\.ini:4: domains\.example\.com: unknown policy word/)
    })

    it('C23: a bad resolver address, port, timeout, unknown key or section are each reported with their line', () => {
        const r = buildConfig(ini('[resolver]\naddress=localhost\nport=99999\ntimeout_ms=abc\ncolour=blue\n[extra]\n'), exc('good.example\nnot a domain\n'))
        assert.deepEqual(
            r.errors.map((e) => `${path.basename(e.file)}:${e.line}`),
            ['dane.ini:2', 'dane.ini:3', 'dane.ini:4', 'dane.ini:5', 'dane.ini:6', 'dane.exceptions:2'],
        )
        assert.match(r.errors[0].message, /not an IP address/)
    })

    it('C1: a non-loopback resolver is refused unless the operator says the path is trusted', () => {
        const r = buildConfig(ini('[resolver]\naddress=192.0.2.53\n'), exc(''))
        assert.equal(r.config, undefined)
        assert.equal(r.errors[0].line, 2)
        assert.match(r.errors[0].message, /not a loopback address/)
        const cfg = ok('[resolver]\naddress=192.0.2.53\ntrust_non_loopback=true\n')
        assert.equal(cfg.resolver.address, '192.0.2.53')
    })

    it('C1: the settings check refuses a non-loopback resolver, saying why, unless trustNonLoopback', () => {
        const input: ResolverInput = { address: '192.0.2.53', port: 53, timeoutMs: 2000, retries: 2, cacheSize: 100 }
        const refused = resolverSettings(input)
        assert.ok('errors' in refused)
        assert.equal(refused.errors.length, 1)
        assert.equal(refused.errors[0].field, 'address')
        assert.equal(refused.errors[0].kind, 'not-loopback')
        assert.equal(
            refused.errors[0].message,
            'resolver 192.0.2.53 is not loopback (127.0.0.0/8 or ::1); its AD bit cannot be trusted unless the path is secured and trustNonLoopback is set',
        )
        assert.throws(
            () => resolverSettingsOrThrow(input),
            (e: unknown) => e instanceof ResolverConfigError && /not loopback/.test(e.message),
        )
        for (const address of ['10.0.0.1', '2001:db8::53', '::', '128.0.0.1']) {
            const r = resolverSettings({ ...input, address })
            assert.ok('errors' in r && r.errors[0].kind === 'not-loopback', address)
        }
        const trusted = resolverSettings({ ...input, trustNonLoopback: true })
        assert.ok('settings' in trusted)
        assert.equal(trusted.settings.address, '192.0.2.53')
        assert.equal(trusted.settings.trustNonLoopback, true)
    })

    it('C23: the settings check reports every bad setting, and fills in the defaults of the optional ones', () => {
        const r = resolverSettings({ address: 'localhost', port: 0, timeoutMs: -1, retries: 1.5, cacheSize: -1, cacheMaxBytes: 100 })
        assert.ok('errors' in r)
        assert.deepEqual(
            r.errors.map((e) => e.field),
            ['address', 'port', 'timeoutMs', 'retries', 'cacheSize', 'cacheMaxBytes'],
        )
        assert.match(r.errors[0].message, /not an IP address/)
        const ok = resolverSettings({ address: '::1', port: 5353, timeoutMs: 100, retries: 0, cacheSize: 0 })
        assert.ok('settings' in ok)
        assert.deepEqual(ok.settings, {
            address: '::1',
            port: 5353,
            timeoutMs: 100,
            retries: 0,
            cacheSize: 0,
            cacheMaxBytes: 33554432,
            trustNonLoopback: false,
        })
        assert.ok(Object.isFrozen(ok.settings))
        assert.ok(Object.isFrozen(DEFAULTS.resolver), 'the defaults went through the check too')
    })

    it("C23: dane.ini's own ranges are narrower than the check's, and every bad line is reported, even one repeated later", () => {
        const r = buildConfig(ini('[resolver]\ntimeout_ms=10\ncache_size=0\ncache_max_bytes=1024\nretries=11\nport=99999\nport=53\n'), exc(''))
        assert.equal(r.config, undefined)
        assert.deepEqual(
            r.errors.map((e) => `${e.line}: ${e.message}`),
            [
                '2: resolver.timeout_ms: not a whole number of milliseconds from 50 to 60000, got "10"',
                '3: resolver.cache_size: not a whole number from 1 to 10000000, got "0"',
                '4: resolver.cache_max_bytes: not a whole number of bytes from 65536 to 4294967296, got "1024"',
                '5: resolver.retries: not a whole number from 0 to 10, got "11"',
                '6: resolver.port: not a port number, got "99999"',
            ],
        )
        const cfg = ok('[resolver]\naddress=::1\nport=5353\ntimeout_ms=50\nretries=0\ncache_size=1\ncache_max_bytes=65536\n')
        assert.deepEqual(cfg.resolver, { address: '::1', port: 5353, timeoutMs: 50, retries: 0, cacheSize: 1, cacheMaxBytes: 65536, trustNonLoopback: false })
    })

    it('C1: loopback means 127.0.0.0/8 and ::1', () => {
        assert.ok(isLoopback('127.0.0.1'))
        assert.ok(isLoopback('127.1.2.3'))
        assert.ok(isLoopback('::1'))
        assert.ok(!isLoopback('128.0.0.1'))
        assert.ok(!isLoopback('10.0.0.1'))
        assert.ok(!isLoopback('::2'))
    })

    it('C23: comments, blank lines, quotes and spacing are accepted', () => {
        const cfg = ok('; comment\n# another\n\n[log]\n  level = debug  \ndestination="/var/log/haraka/dane.jsonl"\n')
        assert.equal(cfg.log.level, 'debug')
        assert.equal(cfg.log.destination, '/var/log/haraka/dane.jsonl')
    })

    it('C23: a domain listed twice is an error, not a silent last-wins', () => {
        const r = buildConfig(ini('[domains]\nexample.com=may\nexample.com=dane-only\n'), exc(''))
        assert.equal(r.errors[0].line, 3)
    })
})
