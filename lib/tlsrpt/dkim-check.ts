// RFC 8460 5.3: report mail is to be DKIM-signed, and a receiver may discard unsigned reports. The plugin
// does not sign: Haraka's DKIM plugin signs what `outbound.send_email` queues (its pre_send_trans_email
// hook), as it signs relayed mail. Whether it will sign the report mail is read here from the same
// configuration it reads, so that the operator is told at start-up, not by missing reports. Pure: what
// the configuration holds is given.

export interface DkimSetup {
    /** Haraka's config/plugins list */
    plugins: string[]
    /** dkim.ini [sign] */
    sign: { enabled: boolean; domain?: string; selector?: string }
    /** whether config/dkim.private.key holds a key (the plugin's default key) */
    defaultKey: boolean
    /** whether config/dkim/<domain>/ holds both `private` and `selector` */
    keyDir: (domain: string) => boolean
}

/** Why report mail from `from` would go out unsigned, or undefined when Haraka's DKIM plugin will sign it. */
export function unsignedReason(from: string, d: DkimSetup): string | undefined {
    if (!d.plugins.some((p) => p === 'dkim' || p === 'haraka-plugin-dkim')) return "Haraka's DKIM plugin (dkim) is not in config/plugins"
    if (!d.sign.enabled) return 'dkim.ini [sign] enabled is not true'
    const domain = from.slice(from.lastIndexOf('@') + 1).toLowerCase()
    // as the DKIM plugin looks: config/dkim/<domain>, then each parent down to two labels, then its default key
    const labels = domain.split('.')
    for (let i = 0; i <= labels.length - 2; i++) if (d.keyDir(labels.slice(i).join('.'))) return undefined
    if (d.sign.domain && d.sign.selector && d.defaultKey) return undefined
    return `no DKIM key for ${domain} (config/dkim/${domain}/private and selector) and no default key (dkim.ini [sign] domain, selector and config/dkim.private.key)`
}
