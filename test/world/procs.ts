// Child processes of the test world: started in the foreground, tracked, and
// always stopped (also when mocha exits on an error), so that no nsd, unbound
// or Haraka is left behind.
import { spawn, spawnSync, ChildProcess, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'

const running = new Set<ChildProcess>()

process.on('exit', () => {
    for (const child of running) {
        try {
            child.kill('SIGKILL')
        } catch {
            /* already gone */
        }
    }
})

export interface Started {
    child: ChildProcess
    name: string
    logFile: string
}

export function startProcess(name: string, cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): Started {
    const out = fs.openSync(logFile, 'a')
    const child = spawn(cmd, args, { stdio: ['ignore', out, out], env: env ?? process.env })
    fs.closeSync(out)
    running.add(child)
    child.once('exit', () => running.delete(child))
    return { child, name, logFile }
}

export function isRunning(child: ChildProcess): boolean {
    return child.exitCode === null && child.signalCode === null
}

/** Pids of every process whose command line mentions `marker` (a world's own directory). */
export function pidsMentioning(marker: string): number[] {
    const r = spawnSync('pgrep', ['-f', marker], { encoding: 'utf8' })
    return r.stdout
        .split('\n')
        .map((s) => parseInt(s, 10))
        .filter((n) => Number.isInteger(n) && n !== process.pid)
}

export async function sleep(ms: number): Promise<void> {
    await new Promise((r) => setTimeout(r, ms))
}

/** SIGTERM, then wait until the process and every process naming `marker` is gone; SIGKILL after `graceMs`. */
export async function stopProcess(p: Started, marker: string, graceMs = 5000): Promise<void> {
    if (isRunning(p.child)) p.child.kill('SIGTERM')
    const deadline = Date.now() + graceMs
    while (Date.now() < deadline) {
        if (!isRunning(p.child) && pidsMentioning(marker).length === 0) return
        await sleep(25)
    }
    for (const pid of pidsMentioning(marker)) {
        try {
            process.kill(pid, 'SIGKILL')
        } catch {
            /* gone */
        }
    }
    if (isRunning(p.child)) p.child.kill('SIGKILL')
    while (isRunning(p.child)) await sleep(10)
}

/** Wait until something accepts TCP connections on host:port, or throw with the log's tail. */
export async function waitForTcp(host: string, port: number, p: Started, timeoutMs = 15000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
        if (!isRunning(p.child)) break
        const ok = await new Promise<boolean>((resolve) => {
            const s = net.connect({ host, port })
            s.once('connect', () => {
                s.destroy()
                resolve(true)
            })
            s.once('error', () => resolve(false))
        })
        if (ok) return
        await sleep(50)
    }
    throw new Error(`${p.name} did not come up on ${host}:${port}:\n${tail(p.logFile)}`)
}

export function tail(file: string, lines = 30): string {
    try {
        return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n')
    } catch {
        return '(no log)'
    }
}

export function run(cmd: string, args: string[], cwd?: string): string {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}
