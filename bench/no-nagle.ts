// Preloaded (node -r) into both Harakas of the delivery benchmark, stock and plugin alike.
//
// Haraka 3.3's outbound never calls setNoDelay: Nagle's algorithm holds the final ".\r\n" of DATA
// (a small write behind the body) until the receiver acknowledges the body, and a receiver that has
// nothing to say yet delays that acknowledgement (40 ms on Linux). Every message then waits ~44 ms
// for its "250", on loopback, whoever sends it; with 20 connections that timer, not the MTA, bounds
// the benchmark (about 350 messages a second for stock Haraka and the plugin alike). This turns
// Nagle off on Haraka's outbound sockets, the same way for both, so that the MTA's CPU is what is
// measured. BENCH_NAGLE=1 leaves Haraka as shipped.
import Module from 'node:module'

type Loader = (request: string, parent: unknown, isMain: boolean) => unknown
const mod = Module as unknown as { _load: Loader }
const load = mod._load
let done = false
mod._load = function (this: unknown, request: string, parent: unknown, isMain: boolean) {
    const exported = load.call(this, request, parent, isMain) as { get_client?: unknown; name?: string }
    if (!done && exported && exported.name === 'outbound' && typeof exported.get_client === 'function') {
        done = true
        type GetClient = (mx: unknown, cb: (err: unknown, socket: unknown) => void) => unknown
        const get = exported.get_client as GetClient
        const patched: GetClient = (mx, cb) =>
            get(mx, (err, socket) => {
                ;(socket as { targetsocket?: { setNoDelay?: (on: boolean) => void } } | null)?.targetsocket?.setNoDelay?.(true)
                cb(err, socket)
            })
        exported.get_client = patched
    }
    return exported
}
