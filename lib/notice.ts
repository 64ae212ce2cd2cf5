// Telling the operator about a fault of the plugin's own I/O (C29): through Haraka's log, at once and
// then at most once every NOTICE_EVERY_MS while it lasts, and never by throwing, whatever the operator's
// log does. One mechanism for the delivery log, the TLS report journal and the Redis store.

/** How often, at most, one fault is told again while it lasts. */
export const NOTICE_EVERY_MS = 60_000

export class OperatorNotice {
    private last = -Infinity

    constructor(
        private readonly onFault: (message: string) => void,
        private readonly clock: () => number = Date.now,
    ) {}

    /** Tell `message` unless this notice was told less than NOTICE_EVERY_MS ago. */
    throttled(message: string): void {
        const now = this.clock()
        if (now - this.last < NOTICE_EVERY_MS) return
        this.last = now
        this.now(message)
    }

    /** Tell `message` now, whatever was told before (a recovery, a last word); the next throttled one goes at once. */
    now(message: string): void {
        try {
            this.onFault(message)
        } catch {
            /* the operator's own log failing too is beyond telling */
        }
    }

    /** The fault is over: the next throttled message goes at once. */
    reset(): void {
        this.last = -Infinity
    }
}
