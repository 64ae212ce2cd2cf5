/**
 * A pure function's answer remembered by key in a Map of at most `max` entries (C30): past the bound the map
 * starts again, the answers being cheap to find and remembering them only saving that. Shared by the places
 * that remember per domain (lib/config policyFor, lib/policy asciiDomain).
 */
export function remembered<K, V>(map: Map<K, V>, key: K, max: number, compute: () => V): V {
    let v = map.get(key)
    if (v === undefined) {
        v = compute()
        if (map.size >= max) map.clear()
        map.set(key, v)
    }
    return v
}
