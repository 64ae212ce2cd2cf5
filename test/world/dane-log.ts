// Reading the plugin's delivery log (pino JSON lines) in tests and the demo.
import fs from 'node:fs'

/** One line of the delivery log, with the fields the tests look at (README "Reading the delivery logs"). */
export interface DaneLogLine {
    event: string
    pid?: number
    queue_id?: string
    domain: string
    outcome?: string
    action?: string
    policy?: string
    exception?: boolean
    mx_host?: string
    address?: string
    tlsa_base?: string
    matched?: string
    depth?: number
    matched_name?: string
    result_type?: string
    /** attempt lines: the host's mode, its MTA-STS mode and PKIX check; decision lines: the MTA-STS policy applied */
    mode?: string
    pkix?: string
    sts?: string | { id?: string; mode?: string; mx?: string[]; max_age?: number; result_type?: string; reason: string }
    hosts?: {
        mx_host: string
        addresses: string[]
        address_secure: boolean
        failed_families?: string[]
        cname?: string
        tlsa_base?: string
        reference_names?: string[]
        mode: string
        reason: string
    }[]
    reason?: string
    tls?: string
    errors?: { file: string; line: number; message: string }[]
}

export function readDaneLog(file: string): DaneLogLine[] {
    if (!fs.existsSync(file)) return []
    return fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as DaneLogLine)
}
