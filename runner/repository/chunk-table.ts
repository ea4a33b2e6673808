// A manifest's chunk list, packed: ids and SHA-256s as 32 raw bytes each in
// one buffer, sizes and offsets in typed arrays, each pack's name once. About
// 100 bytes a chunk where a parsed ChunkRef object with its three hex strings
// takes over 300; a 4 GiB dump has ~60,000 chunks, and a restore holds the
// list for its whole run. Entries come back as ChunkRef objects one at a time.
import type { ChunkRef } from "../../workers/shared/format.ts";

/** What readers of a chunk list need: a ChunkRef[] or a ChunkTable. */
export interface ChunkList extends Iterable<ChunkRef> {
  readonly length: number;
  at(index: number): ChunkRef | undefined;
}

const HASH = 32;

export class ChunkTable implements ChunkList {
  length = 0;
  private hashes: Buffer; // id, then stored_sha256, per chunk
  private numbers: Float64Array; // plain_size, offset, stored_size per chunk
  private packOf: Uint32Array;
  private readonly packs: string[] = [];
  private readonly packIndex = new Map<string, number>();

  constructor(capacity = 1024) {
    this.hashes = Buffer.alloc(capacity * 2 * HASH);
    this.numbers = new Float64Array(capacity * 3);
    this.packOf = new Uint32Array(capacity);
  }

  static from(refs: Iterable<ChunkRef>): ChunkTable {
    const table = new ChunkTable();
    for (const r of refs) table.push(r);
    return table;
  }

  /** Appends a validated ChunkRef (hex fields of 64 characters). */
  push(ref: ChunkRef): void {
    if (this.length === this.packOf.length) this.grow();
    const i = this.length++;
    this.hashes.write(ref.id, i * 2 * HASH, HASH, "hex");
    this.hashes.write(ref.stored_sha256, (i * 2 + 1) * HASH, HASH, "hex");
    this.numbers.set([ref.plain_size, ref.offset, ref.stored_size], i * 3);
    let pack = this.packIndex.get(ref.pack);
    if (pack === undefined) {
      pack = this.packs.push(ref.pack) - 1;
      this.packIndex.set(ref.pack, pack);
    }
    this.packOf[i] = pack;
  }

  at(index: number): ChunkRef | undefined {
    const i = index < 0 ? index + this.length : index;
    if (!Number.isInteger(i) || i < 0 || i >= this.length) return undefined;
    return {
      id: this.hashes.toString("hex", i * 2 * HASH, (i * 2 + 1) * HASH),
      plain_size: this.numbers[i * 3]!,
      pack: this.packs[this.packOf[i]!]!,
      offset: this.numbers[i * 3 + 1]!,
      stored_size: this.numbers[i * 3 + 2]!,
      stored_sha256: this.hashes.toString("hex", (i * 2 + 1) * HASH, (i * 2 + 2) * HASH),
    };
  }

  *[Symbol.iterator](): Iterator<ChunkRef> {
    for (let i = 0; i < this.length; i++) yield this.at(i)!;
  }

  private grow(): void {
    const capacity = this.packOf.length * 2;
    const hashes = Buffer.alloc(capacity * 2 * HASH);
    this.hashes.copy(hashes);
    this.hashes = hashes;
    const numbers = new Float64Array(capacity * 3);
    numbers.set(this.numbers);
    this.numbers = numbers;
    const packOf = new Uint32Array(capacity);
    packOf.set(this.packOf);
    this.packOf = packOf;
  }
}
