// Every numbered behaviour of the conformance list (docs/conformance.md) is proved by at
// least one test whose title names it (`it('C12: …')`), so that `npm test` reads as a
// conformance report.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'

const ROOT = path.resolve(__dirname, '..', '..', '..')

function conformanceItems(): string[] {
    return [...fs.readFileSync(path.join(ROOT, 'docs', 'conformance.md'), 'utf8').matchAll(/^- (C\d+) /gm)].map((m) => m[1])
}

function testTitles(dir: string): string[] {
    const out: string[] = []
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, entry.name)
        if (entry.isDirectory()) out.push(...testTitles(p))
        else if (entry.name.endsWith('.test.ts') && entry.name !== 'conformance.test.ts')
            out.push(...[...fs.readFileSync(p, 'utf8').matchAll(/\bit\(\s*(['"`])(.*?)\1/g)].map((m) => m[2]))
    }
    return out
}

describe('conformance coverage', () => {
    it('every item of the conformance list is named by at least one test', () => {
        const items = conformanceItems()
        assert.ok(items.length >= 25, `read ${items.length} items`)
        const titles = testTitles(path.join(ROOT, 'test'))
        const missing = items.filter((c) => !titles.some((t) => new RegExp(`\\b${c}\\b`).test(t)))
        assert.deepEqual(missing, [])
    })
})
