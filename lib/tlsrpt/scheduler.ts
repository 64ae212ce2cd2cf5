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
import { JournalStore } from './journal'
import { utcDay } from './report'
import { FileSentStore, reportDueAt, sendDueReports, type DomainOutcome } from './send'

/** The transaction note that marks a report message (set in-process only: no SMTP client can set it). */
export const REPORT_NOTE = 'dane_tlsrpt_report'

/** The request `haraka-dane tlsrpt send` leaves for the sender: send a day's reports now (one domain's, or all). */
export function sendNowFile(dir: string, day: string): string {
    return path.join(dir, `send-now-${day}`)
}

/** Days back the sender looks at: yesterday's reports, and the retries of the day before (RFC 8460 5.5: 24 h). */
const DAYS_BACK = 3

export interface SchedulerDeps {
    settings(): TlsrptSettings | undefined
    journal(): JournalStore | undefined
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

    /** One round: every due report of the last days. Resolves when done; never rejects. */
    async tick(): Promise<void> {
        if (this.running) return
        this.running = true
        try {
            const settings = this.deps.settings()
            const journal = this.deps.journal()
            if (!settings?.enabled || !journal) return
            const now = this.deps.now ?? Date.now
            const today = utcDay(now())
            const ca = settings.httpsCaFile ? fs.readFileSync(settings.httpsCaFile) : undefined
            const store = new FileSentStore(journal.dir)
            const reporter = { organizationName: settings.organizationName, contactInfo: settings.contactInfo }
            const deps = {
                reporter,
                from: settings.from || settings.contactInfo,
                lookupTxt: (name: string) => this.deps.lookupTxt(name),
                sendMail: (to: string, message: string) => this.deps.queueMail(settings.from || settings.contactInfo, to, message),
                postHttps: async (url: string, gz: Buffer) => {
                    const r = await postReport(url, gz, { ca })
                    return { ok: r.ok, detail: r.ok ? `HTTP ${r.status}` : (r.error ?? 'failed') }
                },
                now,
                unique: () => randomBytes(6).toString('hex'),
            }
            const past = journal.days().filter((d) => d < today)
            // asked for by `haraka-dane tlsrpt send`: due now, whatever the hour (days before today only)
            for (const day of past) {
                const file = sendNowFile(journal.dir, day)
                if (!fs.existsSync(file)) continue
                const only = fs.readFileSync(file, 'utf8').trim() || undefined
                for (const o of await sendDueReports(day, journal.results(day), deps, store, only)) this.deps.log(o, day)
                fs.rmSync(file, { force: true })
            }
            for (const day of past.slice(-DAYS_BACK)) {
                const due = (domain: string) => reportDueAt(day, domain, settings.sendAfterMinutes, settings.spreadMinutes)
                for (const o of await sendDueReports(day, journal.results(day), deps, store, undefined, due)) this.deps.log(o, day)
            }
        } catch (e) {
            this.deps.fault(`haraka-plugin-dane: TLS reports not sent this round: ${(e as Error)?.message ?? e}`)
        } finally {
            this.running = false
        }
    }
}
