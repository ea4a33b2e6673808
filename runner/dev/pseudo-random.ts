// Deterministic bytes for tests and benchmarks: the same seed gives the same
// bytes (so equal content is equal on purpose), different seeds differ, and
// nothing compresses or deduplicates by accident. Plain TypeScript: used in
// Node and inside workerd.
export function pseudoRandom(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
