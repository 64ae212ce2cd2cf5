// RFC 8460 5.3: a report as a mail message. Pure: the caller gives the gzip bytes, the time and the
// unique parts (Message-ID, boundary), so that the same inputs give the same bytes.
import { gzipSync } from 'node:zlib'
import type { TlsrptReport } from './report'

export interface ReportMail {
    from: string
    to: string
    /** the domain the report is about (TLS-Report-Domain) */
    domain: string
    /** the contact-info domain (TLS-Report-Submitter: RFC 8460 5.3 says they must match) */
    submitter: string
    reportId: string
    filename: string
    gz: Buffer
    date: Date
    messageId: string
    boundary: string
}

/** RFC 8460 5.2: the report's JSON, gzip-compressed. */
export function gzipReport(report: TlsrptReport): Buffer {
    return gzipSync(Buffer.from(JSON.stringify(report)))
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** RFC 5322 3.3 date-time, in UTC. */
export function rfc5322Date(d: Date): string {
    const two = (n: number) => String(n).padStart(2, '0')
    return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`
}

/**
 * The message of RFC 8460 5.3: multipart/report with report-type "tlsrpt", a short text part and the
 * report as application/tlsrpt+gzip with the 5.1 file name; the TLS-Report-Domain and
 * TLS-Report-Submitter headers; the Subject in the form of 5.3 with the Report-ID as a msg-id; and
 * TLS-Required: No (RFC 8689), so that a TLS failure towards the domain cannot hold up the report about
 * it (RFC 8460 5.3: reports are delivered despite TLS failures). Lines end in CRLF.
 */
export function reportMessage(m: ReportMail): string {
    for (const [what, v] of Object.entries({ from: m.from, to: m.to, domain: m.domain, submitter: m.submitter, reportId: m.reportId, filename: m.filename }))
        if (/[\r\n"]/.test(v)) throw new Error(`report mail: ${what} contains a line break or quote`)
    const body64 = m.gz.toString('base64').replace(/.{1,76}/g, (l) => `${l}\r\n`)
    const lines = [
        `From: ${m.from}`,
        `To: ${m.to}`,
        `Date: ${rfc5322Date(m.date)}`,
        `Subject: Report Domain: ${m.domain} Submitter: ${m.submitter} Report-ID: <${m.reportId}>`,
        `Message-ID: <${m.messageId}>`,
        `TLS-Report-Domain: ${m.domain}`,
        `TLS-Report-Submitter: ${m.submitter}`,
        'TLS-Required: No',
        'Auto-Submitted: auto-generated',
        'MIME-Version: 1.0',
        `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${m.boundary}"`,
        '',
        'This is a multipart message in MIME format.',
        '',
        `--${m.boundary}`,
        'Content-Type: text/plain; charset=us-ascii',
        'Content-Transfer-Encoding: 7bit',
        '',
        `This is an aggregate TLS report (RFC 8460) from ${m.submitter} about mail to ${m.domain}.`,
        `Report-ID: <${m.reportId}>`,
        '',
        `--${m.boundary}`,
        'Content-Type: application/tlsrpt+gzip',
        'Content-Transfer-Encoding: base64',
        `Content-Disposition: attachment; filename="${m.filename}"`,
        '',
    ]
    return `${lines.join('\r\n')}\r\n${body64}--${m.boundary}--\r\n`
}
