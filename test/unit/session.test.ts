// Issue 10: the session guard (lib/session.ts) walked state by state with every class of input,
// no sockets: its transition table is the specification of C9, C20, C24, C26, C27.
import assert from 'node:assert/strict'
import {
    SessionGuard,
    parseReplyLine,
    ReplyAssembler,
    offersStartTls,
    requirementOf,
    type Requirement,
    type SessionInput,
    type SessionState,
    type Verdict,
} from '../../lib/session'

const WHO = 'mx.example [192.0.2.1]'
const EHLO_REPLY = ['250-mx.example\r\n', '250-STARTTLS\r\n', '250 8BITMIME\r\n']

/** what a peer sends as one chunk: the guard sees the chunk first, then Haraka's line reader's lines */
function receive(g: SessionGuard, text: string): Verdict[] {
    const out = [g.feed({ kind: 'chunk', text })]
    if (out[0].action !== 'allow') return out
    for (const line of text.match(/[^\n]*\n/g) ?? []) out.push(g.feed({ kind: 'line', text: line }))
    return out
}

/** a guard brought to `state` by the inputs a normal session would give it */
function at(state: SessionState, requirement: Requirement = 'authenticated'): SessionGuard {
    const g = new SessionGuard(requirement, WHO)
    const steps: SessionInput[] = []
    const push = (...i: SessionInput[]) => steps.push(...i)
    if (state === 'greeting') return g
    push({ kind: 'chunk', text: '220 mx.example ESMTP\r\n' }, { kind: 'line', text: '220 mx.example ESMTP\r\n' }, { kind: 'write', text: 'EHLO me\r\n' })
    if (state !== 'ehlo') {
        const r = EHLO_REPLY.join('')
        push({ kind: 'chunk', text: r }, ...EHLO_REPLY.map((text) => ({ kind: 'line' as const, text })))
        if (state === 'session') push({ kind: 'write', text: 'MAIL FROM:<a@b>\r\n' })
        else if (state === 'quitting') push({ kind: 'write', text: 'QUIT\r\n' })
        else {
            push({ kind: 'write', text: 'STARTTLS\r\n' })
            if (state !== 'starttls-sent') {
                push({ kind: 'chunk', text: '220 go\r\n' }, { kind: 'line', text: '220 go\r\n' })
                if (state === 'verified') push({ kind: 'handshake', ok: true })
                if (state === 'failed') push({ kind: 'chunk', text: 'x' })
            }
        }
    }
    steps.forEach((s, i) => {
        const v = g.feed(s)
        // the last step of 'failed' is the one that fails
        if (state !== 'failed' || i < steps.length - 1) assert.notEqual(v.action, 'fail', `setting up ${state}: ${JSON.stringify(s)} → ${JSON.stringify(v)}`)
    })
    if (state !== 'failed') assert.equal(g.state, state)
    return g
}

function failed(v: Verdict, reason?: RegExp, resultType?: string): void {
    assert.equal(v.action, 'fail', JSON.stringify(v))
    if (v.action !== 'fail') return
    if (reason) assert.match(v.reason, reason)
    assert.equal(v.resultType, resultType)
}

describe('session guard: the one SMTP reply parser (RFC 5321 4.2)', () => {
    it('C27: reply lines: final, continuation, bare code; anything else is no reply', () => {
        assert.deepEqual(parseReplyLine('250 ok\r\n'), { code: 250, last: true, text: 'ok', bare: false })
        assert.deepEqual(parseReplyLine('250-mx.example\r\n'), { code: 250, last: false, text: 'mx.example', bare: false })
        assert.deepEqual(parseReplyLine('220\r\n'), { code: 220, last: true, text: '', bare: true })
        assert.deepEqual(parseReplyLine('250 \r\n'), { code: 250, last: true, text: '', bare: false })
        for (const bad of ['2501 x\r\n', '25 ok\r\n', '650 ok\r\n', '260 ok\r\n', '250x\r\n', 'hello\r\n', '\r\n', '250 a\rb\r\n', ' 250 ok\r\n']) {
            assert.equal(parseReplyLine(bad), null, bad)
        }
    })

    it('C27: multi-line replies assemble by code; a code that changes mid-reply is an error', () => {
        const a = new ReplyAssembler()
        assert.equal(a.push('250-a\r\n'), null)
        assert.ok(a.open)
        assert.deepEqual(a.push('250 b\r\n'), { code: 250, lines: ['a', 'b'] })
        assert.ok(!a.open)
        assert.equal(a.push('250-a\r\n'), null)
        assert.ok(a.push('251 b\r\n') instanceof Error)
        assert.ok(new ReplyAssembler().push('nonsense\r\n') instanceof Error)
    })

    it('C9: STARTTLS is offered only by a line that is exactly the keyword, as Haraka reads it', () => {
        assert.ok(offersStartTls('STARTTLS'))
        assert.ok(offersStartTls('starttls'))
        assert.ok(!offersStartTls('STARTTLS '))
        assert.ok(!offersStartTls('X-STARTTLS'))
    })

    it('C9: host modes map onto requirements', () => {
        assert.equal(requirementOf('dane'), 'authenticated')
        assert.equal(requirementOf('encrypt'), 'encrypted')
        assert.equal(requirementOf('opportunistic'), 'opportunistic')
        assert.equal(requirementOf('plaintext'), 'plaintext')
    })
})

describe('session guard: the transition table', () => {
    describe('greeting', () => {
        it('C27: a 220 greeting is taken; EHLO moves to ehlo', () => {
            const g = at('greeting')
            assert.deepEqual(
                receive(g, '220-mx\r\n220 ESMTP\r\n').map((v) => v.action),
                ['allow', 'allow', 'allow'],
            )
            assert.equal(g.feed({ kind: 'write', text: 'EHLO me\r\n' }).action, 'allow')
            assert.equal(g.state, 'ehlo')
        })
        it('C27: a bare, malformed, 3xx, 4xx or 5xx greeting on a mandatory-TLS host fails the attempt', () => {
            failed(receive(at('greeting'), '220\r\n')[1], /answered the connection with a bare reply code "220" before TLS/)
            failed(receive(at('greeting'), 'hello there\r\n')[1], /not an SMTP reply line/)
            failed(receive(at('greeting'), '354 hello\r\n')[1], /answered the connection with "354 hello" before TLS/)
            failed(receive(at('greeting'), '421 busy\r\n')[1], /answered the connection with "421 busy" before TLS/)
            failed(receive(at('greeting', 'encrypted'), '554 no\r\n')[1], /554/)
        })
        it('C27: a reply that never ends (more than 100 lines, or 64 KB without a line end) fails before it exhausts memory', () => {
            const g = at('greeting', 'opportunistic')
            const v = receive(g, '220-x\r\n'.repeat(101))
            failed(v[v.length - 1], /reply longer than 100 lines/)
            failed(
                at('greeting').feed({ kind: 'chunk', text: 'x'.repeat(70 * 1024) }),
                /more than 65536 characters without ending a line waiting for the greeting/,
            )
        })
        it('C27: without mandatory TLS a bare code reaches Haraka as "220 " (Haraka would bounce on "220"); 4xx/5xx are Haraka\'s', () => {
            assert.deepEqual(receive(at('greeting', 'opportunistic'), '220\r\n')[1], { action: 'allow', line: '220 \r\n' })
            assert.equal(receive(at('greeting', 'opportunistic'), '421 busy\r\n')[1].action, 'allow')
            failed(receive(at('greeting', 'opportunistic'), 'hello\r\n')[1], /not an SMTP reply line/)
        })
        it('C20: a MAIL command before TLS on a mandatory host fails; the timeout and close are named by state', () => {
            failed(at('greeting').feed({ kind: 'write', text: 'MAIL FROM:<a@b>\r\n' }), /did not offer STARTTLS; DANE requires TLS/, 'starttls-not-supported')
            failed(at('greeting').feed({ kind: 'timeout' }), /timed out waiting for the greeting/)
            failed(at('greeting').feed({ kind: 'close' }), /closed the connection waiting for the greeting/)
            failed(at('greeting').feed({ kind: 'error', message: 'ECONNRESET' }), /failed waiting for the greeting: ECONNRESET/)
        })
    })

    describe('ehlo', () => {
        it('C9: the EHLO reply tells whether STARTTLS is offered; STARTTLS moves to starttls-sent', () => {
            const g = at('ehlo')
            receive(g, EHLO_REPLY.join(''))
            assert.ok(g.startTlsOffered)
            assert.equal(g.feed({ kind: 'write', text: 'STARTTLS\r\n' }).action, 'allow')
            assert.equal(g.state, 'starttls-sent')
        })
        it('C27: a bare final EHLO line, a code change mid-reply, a 3xx or 5xx EHLO: fail on a mandatory host', () => {
            failed(receive(at('ehlo'), '250-mx\r\n250-STARTTLS\r\n250\r\n')[3], /answered EHLO with a bare reply code "250" before TLS/)
            failed(receive(at('ehlo'), '250-mx\r\n251 STARTTLS\r\n')[2], /reply code changed within a multi-line reply \(250 then 251\)/)
            failed(receive(at('ehlo'), '334 x\r\n')[1], /answered EHLO with "334 x"/)
            failed(receive(at('ehlo'), '502 no\r\n')[1], /answered EHLO with "502 no"/)
        })
        it('C21: an offer written with an enhanced status code ("250-2.0.0 STARTTLS") is an offer, as Haraka reads it, and is hidden under policy none', () => {
            const g = at('ehlo', 'plaintext')
            assert.deepEqual(receive(g, '250-2.0.0 STARTTLS\r\n')[1], { action: 'allow', line: '250-2.0.0 X-STARTTLS-NOT-USED\r\n' })
            assert.ok(g.startTlsOffered)
        })
        it('C9: no STARTTLS offered → the MAIL transaction never starts on a mandatory host', () => {
            const g = at('ehlo')
            receive(g, '250-mx\r\n250 8BITMIME\r\n')
            failed(g.feed({ kind: 'write', text: 'MAIL FROM:<a@b>\r\n' }), /did not offer STARTTLS; DANE requires TLS/, 'starttls-not-supported')
            const e = at('ehlo', 'encrypted')
            receive(e, '250 mx\r\n')
            failed(e.feed({ kind: 'write', text: 'MAIL FROM:<a@b>\r\n' }), /policy requires TLS/, 'starttls-not-supported')
        })
        it('C20: STARTTLS offered but Haraka goes on without it → fail (dane-required), never plaintext', () => {
            const g = at('ehlo')
            receive(g, EHLO_REPLY.join(''))
            failed(g.feed({ kind: 'write', text: 'MAIL FROM:<a@b>\r\n' }), /Haraka chose not to use the offered STARTTLS/, 'dane-required')
        })
        it('C21: policy none hides the offer from Haraka; an opportunistic host without STARTTLS goes on in session', () => {
            const none = at('ehlo', 'plaintext')
            assert.deepEqual(receive(none, '250-STARTTLS\r\n')[1], { action: 'allow', line: '250-X-STARTTLS-NOT-USED\r\n' })
            const opp = at('ehlo', 'opportunistic')
            receive(opp, '250 mx\r\n')
            assert.equal(opp.feed({ kind: 'write', text: 'MAIL FROM:<a@b>\r\n' }).action, 'allow')
            assert.equal(opp.state, 'session')
        })
        it('C24: a timeout waiting for the EHLO reply is named by state', () => {
            failed(at('ehlo').feed({ kind: 'timeout' }), /timed out waiting for the EHLO reply/)
        })
    })

    describe('starttls-sent', () => {
        it('C26: a 220 reply with nothing after it moves to handshaking', () => {
            const g = at('starttls-sent')
            assert.deepEqual(
                receive(g, '220 go\r\n').map((v) => v.action),
                ['allow', 'allow'],
            )
            assert.equal(g.state, 'handshaking')
        })
        it('C26: a whole line after the STARTTLS reply in the same chunk fails before Haraka reads the reply', () => {
            const v = receive(at('starttls-sent'), '220 go\r\n250 injected\r\n')
            failed(v[1], /sent 14 more character\(s\) after its STARTTLS reply, before the TLS handshake \(response injection\)/, 'validation-failure')
        })
        it('C26: a fragment without CRLF after the STARTTLS reply fails too', () => {
            failed(receive(at('starttls-sent'), '220 go\r\n250 ')[1], /sent 4 more character\(s\)/, 'validation-failure')
        })
        it('C26: the same on an opportunistic host (the reply stream may be out of step)', () => {
            failed(receive(at('starttls-sent', 'opportunistic'), '220 go\r\n2')[1], /sent 1 more character\(s\)/, 'validation-failure')
        })
        it('C26: a multi-line STARTTLS reply is judged at its final line', () => {
            const g = at('starttls-sent')
            assert.deepEqual(
                receive(g, '220-go\r\n220 ahead\r\n').map((v) => v.action),
                ['allow', 'allow', 'allow'],
            )
            assert.equal(g.state, 'handshaking')
        })
        it('C27: a 3xx answer to STARTTLS fails (Haraka would defer the whole message on it)', () => {
            failed(receive(at('starttls-sent'), '334 VXNlcm5hbWU6\r\n')[1], /answered STARTTLS with "334 VXNlcm5hbWU6"/, 'starttls-not-supported')
        })
        it('C27: a bare 220, a 454 or a 5xx STARTTLS reply fails with starttls-not-supported', () => {
            failed(receive(at('starttls-sent'), '220\r\n')[1], /answered STARTTLS with a bare reply code "220"/, 'starttls-not-supported')
            failed(receive(at('starttls-sent'), '454 4.7.0 not now\r\n')[1], /answered STARTTLS with "454 4.7.0 not now"/, 'starttls-not-supported')
            failed(receive(at('starttls-sent', 'encrypted'), 'garbage\r\n')[1], /not an SMTP reply line/, 'starttls-not-supported')
        })
        it('C24: a timeout waiting for the STARTTLS reply is a TLS negotiation failure', () => {
            failed(at('starttls-sent').feed({ kind: 'timeout' }), /timed out waiting for the STARTTLS reply/, 'validation-failure')
        })
    })

    describe('handshaking', () => {
        it('C26: any chunk or line before the handshake ends fails the attempt', () => {
            failed(at('handshaking').feed({ kind: 'chunk', text: '250 late\r\n' }), /plaintext data after its STARTTLS reply/, 'validation-failure')
            failed(at('handshaking').feed({ kind: 'line', text: '250 late\r\n' }), /plaintext data after its STARTTLS reply/, 'validation-failure')
        })
        it('C20: nothing is written during the handshake', () => {
            failed(at('handshaking').feed({ kind: 'write', text: 'MAIL FROM:<a@b>\r\n' }), /during the TLS handshake/, 'validation-failure')
        })
        it('C9: a handshake accepted by the policy moves to verified; one refused fails with its reason', () => {
            const g = at('handshaking')
            assert.equal(g.feed({ kind: 'handshake', ok: true }).action, 'allow')
            assert.equal(g.state, 'verified')
            failed(
                at('handshaking').feed({ kind: 'handshake', ok: false, reason: 'DANE verification failed: no-match', resultType: 'validation-failure' }),
                /no-match/,
                'validation-failure',
            )
        })
        it('C24: a timeout, an error or a close during the handshake is a validation failure named by state', () => {
            failed(at('handshaking').feed({ kind: 'timeout' }), /timed out during the TLS handshake/, 'validation-failure')
            failed(
                at('handshaking').feed({ kind: 'error', message: 'wrong version number' }),
                /TLS handshake with .* failed: wrong version number/,
                'validation-failure',
            )
            failed(at('handshaking').feed({ kind: 'close' }), /closed the connection during the TLS handshake/, 'validation-failure')
        })
        it("C10: on an opportunistic host a handshake error stays Haraka's own (it marks the host, retries)", () => {
            assert.equal(at('handshaking', 'opportunistic').feed({ kind: 'error', message: 'bad' }).action, 'allow')
        })
    })

    describe('verified', () => {
        it('C9: after TLS every command and the message body pass; replies are only checked for form', () => {
            const g = at('verified')
            for (const text of ['EHLO me\r\n', 'MAIL FROM:<a@b>\r\n', 'RCPT TO:<c@d>\r\n', 'DATA\r\n', 'a body line\r\n.\r\n'])
                assert.equal(g.feed({ kind: 'write', text }).action, 'allow')
            assert.equal(receive(g, '550 no such user\r\n')[1].action, 'allow')
            assert.deepEqual(receive(g, '250\r\n')[1], { action: 'allow', line: '250 \r\n' })
            failed(receive(g, 'garbage\r\n')[1], /not an SMTP reply after TLS was up/)
        })
        it('C24: after TLS, lines Haraka reads as replies pass as they are ("250 queued" CR CR LF, a code change, 260): failing them after the message went would send a second copy', () => {
            const g = at('verified')
            for (const line of ['250 queued\r\r\n', '250-ok\r\n', '251 queued\r\n', '260 ok\r\n', '250 2.0.0 ok\r\n'])
                assert.deepEqual(receive(g, line)[1], { action: 'allow' }, line)
            failed(receive(g, '25O typo\r\n')[1], /not an SMTP reply after TLS was up/)
            const long = at('verified')
            const v = receive(long, '250-x\r\n'.repeat(100))
            failed(v[v.length - 1], /reply longer than 100 lines after TLS was up/)
        })
        it('C24: a close after TLS, before QUIT, is reported; after QUIT it is the ordinary end', () => {
            failed(at('verified').feed({ kind: 'close' }), /closed the connection after TLS was up/)
            const g = at('verified')
            g.feed({ kind: 'write', text: 'QUIT\r\n' })
            assert.equal(g.state, 'quitting')
            assert.equal(g.feed({ kind: 'close' }).action, 'allow')
        })
        it('C26: a second TLS upgrade is refused', () => {
            failed(at('verified').feed({ kind: 'handshake', ok: true }), /TLS upgrade was requested after TLS was up/, 'validation-failure')
        })
    })

    describe('session (no TLS, where the policy allows it)', () => {
        it('C10: commands pass, replies pass, a timeout ends the attempt by state', () => {
            const g = at('session', 'opportunistic')
            assert.equal(g.feed({ kind: 'write', text: 'RCPT TO:<c@d>\r\n' }).action, 'allow')
            assert.equal(receive(g, '250 ok\r\n')[1].action, 'allow')
            failed(at('session', 'opportunistic').feed({ kind: 'timeout' }), /timed out in the session without TLS/)
            assert.equal(at('session', 'opportunistic').feed({ kind: 'close' }).action, 'allow')
        })
    })

    describe('quitting and failed', () => {
        it('C24: after QUIT, timeouts, errors, closes and late lines are the ordinary end', () => {
            const g = at('quitting', 'opportunistic')
            for (const i of [
                { kind: 'line', text: '221 bye\r\n' },
                { kind: 'timeout' },
                { kind: 'error', message: 'EPIPE' },
                { kind: 'close' },
            ] as SessionInput[]) {
                assert.equal(g.feed(i).action, 'allow', JSON.stringify(i))
            }
        })
        it('C20: once failed, nothing more is written or read, and the failure keeps the state it happened in', () => {
            const g = at('failed')
            assert.equal(g.state, 'failed')
            assert.equal(g.failure?.state, 'handshaking')
            assert.equal(g.feed({ kind: 'write', text: 'MAIL FROM:<a@b>\r\n' }).action, 'drop')
            assert.equal(g.feed({ kind: 'line', text: '250 ok\r\n' }).action, 'drop')
            assert.equal(g.feed({ kind: 'chunk', text: 'x' }).action, 'drop')
            assert.equal(g.feed({ kind: 'close' }).action, 'allow')
        })
    })
})
