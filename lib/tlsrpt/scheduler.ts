// When a Haraka process sends TLS reports: a timer that, for the last days the journal holds, sends
// the reports that are due (lib/tlsrpt/send), mail through Haraka's own outbound (with a note that
// makes the plugin deliver it despite TLS failures and keep no result of it, RFC 8460 5.3) and HTTPS
// POSTs. Never throws; every outcome is told to the caller's log.
import fs from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import type { Answer } from '../dns/answer'
import type { TlsrptSettings } from '../config'
import { postReport } from './https'
import { utcDay } from './report'
import { reportDueAt, sendDueReports, type DomainOutcome } from './send'
import type { TlsrptStore } from './store'

/** The transaction note that marks a report message (set in-process only: no SMTP client can set it). */
export const REPORT_NOTE = 'dane_tlsrpt_report'

/** The request `haraka-dane tlsrpt send` leaves for the sender: send a day's reports now (one domain's, or all). */
export function sendNowFile(dir: string, day: string): string {
    return path.join(dir, `send-now-${day}`)
}

/** Calendar days back the sender looks at: a report is due at most 48 h after its day ends, then retried for 24 h. */
const DAYS_BACK = 4

/** The longest a transport may take before its attempt counts as failed (a hook that never answers, a trickling server). */
export const TRANSPORT_DEADLINE_MS = 120_000

function withDeadline(p: Promise<{ ok: boolean; detail: string }>, ms: number): Promise<{ ok: boolean; detail: string }> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<{ ok: boolean; detail: string }>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, detail: `no answer within ${ms / 1000} s` }), ms)
        timer.unref()
    })
    return Promise.race([p, late]).finally(() => clearTimeout(timer))
}

export interface SchedulerDeps {
    settings(): TlsrptSettings | undefined
    /** where results and sent state are kept (the journal, or Redis) */
    store(): TlsrptStore | undefined
    /** where `haraka-dane tlsrpt send` leaves its requests: this machine's directory (settings.directory, resolved) */
    requestDir(): string | undefined
    lookupTxt(name: string): Promise<Answer>
    /** queue one message in Haraka's outbound (outbound.send_email with the report note) */
    queueMail(from: string, to: string, message: string): Promise<{ ok: boolean; detail: string }>
    log(outcome: DomainOutcome, day: string): void
    fault(message: string): void
    now?: () => number
}

export class TlsrptScheduler {
    private timer: NodeJS.Timeout | undefined
    private running = false

    constructor(private readonly deps: SchedulerDeps) {}

    /** The first round a few seconds after start-up (once Haraka has loaded its queue), then one a minute. */
    start(intervalMs = (this.deps.settings()?.checkSeconds ?? 60) * 1000, firstMs = Math.min(5_000, intervalMs)): void {
        if (this.timer) return
        this.timer = setTimeout(() => {
            void this.tick()
            this.timer = setInterval(() => void this.tick(), intervalMs)
            this.timer.unref()
        }, firstMs)
        this.timer.unref()
    }

    stop(): void {
        if (this.timer) {
            clearTimeout(this.timer)
            clearInterval(this.timer)
        }
        this.timer = undefined
    }

    private readonly afterRoundDo: (() => void)[] = []

    /** Run `f` once no round is running (now, or when the current one ends): closing a store it may be using. */
    afterRound(f: () => void): void {
        if (this.running) this.afterRoundDo.push(f)
        else f()
    }

    /** Past days whose every report was sent, given up or had no destination: not looked at again by this process. */
    private readonly finished = new Set<string>()
    private rounds = 0

    /** One round: every due report of the last days. Resolves when done; never rejects. */
    async tick(): Promise<void> {
        if (this.running) return
        this.running = true
        try {
            const settings = this.deps.settings()
            const store = this.deps.store()
            const requestDir = this.deps.requestDir()
            if (!settings?.enabled || !store || !requestDir) return
            const now = this.deps.now ?? Date.now
            const today = utcDay(now())
            const oldest = utcDay(now() - DAYS_BACK * 86400_000)
            const from = settings.from || settings.contactInfo
            const deps = {
                reporter: { organizationName: settings.organizationName, contactInfo: settings.contactInfo },
                from,
                lookupTxt: (name: string) => this.deps.lookupTxt(name),
                sendMail: (to: string, message: string) => withDeadline(this.deps.queueMail(from, to, message), TRANSPORT_DEADLINE_MS),
                postHttps: async (url: string, gz: Buffer) => {
                    // an unreadable CA file fails the https destinations only
                    const ca = settings.httpsCaFile ? fs.readFileSync(settings.httpsCaFile) : undefined
                    return withDeadline(
                        postReport(url, gz, { ca }).then((p) => ({ ok: p.ok, detail: p.ok ? `HTTP ${p.status}` : (p.error ?? 'failed') })),
                        TRANSPORT_DEADLINE_MS,
                    )
                },
                now,
                unique: () => randomBytes(6).toString('hex'),
            }
            const past = (await store.days()).filter((d) => d < today)
            // asked for by `haraka-dane tlsrpt send`: due now, whatever the hour (days before today only). The
            // request is taken by renaming it (one process takes it), and answered with a .done file
            for (const day of past) {
                const request = sendNowFile(requestDir, day)
                const taken = `${request}.${process.pid}`
                try {
                    fs.renameSync(request, taken)
                } catch {
                    continue
                }
                // a request taken is always answered, also when the store cannot be read now
                let outcomes: DomainOutcome[]
                try {
                    const only = fs.readFileSync(taken, 'utf8').trim() || undefined
                    outcomes = await sendDueReports(day, await store.day(day), deps, store.sent, only)
                    for (const o of outcomes) if (o.sent.length || o.skipped) this.deps.log(o, day)
                } catch (e) {
                    outcomes = [{ domain: '*', sent: [], skipped: `not sent: ${(e as Error)?.message ?? e}`, pending: true }]
                }
                try {
                    fs.writeFileSync(`${request}.done`, JSON.stringify(outcomes))
                } finally {
                    fs.rmSync(taken, { force: true })
                }
            }
            for (const day of past.filter((d) => d >= oldest && !this.finished.has(d))) {
                const due = (domain: string) => reportDueAt(day, domain, settings.sendAfterMinutes, settings.spreadMinutes)
                const outcomes = await sendDueReports(day, await store.day(day), deps, store.sent, undefined, due)
                for (const o of outcomes) if (o.sent.length || (o.skipped && o.pending)) this.deps.log(o, day)
                // every domain due and nothing left to try: this day is done for this process
                if (outcomes.every((o) => !o.pending)) this.finished.add(day)
            }
            if (this.rounds++ === 0) this.deps.log({ domain: '*', sent: [], skipped: `first round done: ${past.length} past day(s) kept` }, today)
        } catch (e) {
            this.deps.fault(`haraka-plugin-dane: TLS reports not sent this round: ${(e as Error)?.message ?? e}`)
        } finally {
            this.running = false
            for (const f of this.afterRoundDo.splice(0)) {
                try {
                    f()
                } catch {
                    /* closing an old store: nothing to do about it */
                }
            }
        }
    }
}
