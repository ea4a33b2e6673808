// Reading a segment's payload back as transactions: each block is found by
// its header line and its byte length (docs/format.md), so a value or a DDL
// statement that happens to contain a line like a header cannot split it.
import { AppError } from "../../workers/shared/errors.ts";
import { parseLsn } from "./pgoutput.ts";
export { isoMicros } from "../../workers/continuous/protocol.ts";

/** A transaction's block, or one part of a large transaction's (docs/format.md). */
export interface SegmentTransaction {
  lsn: bigint;
  lsnText: string;
  commitAt: string;
  /** "BEGIN;\n … COMMIT;\n"; a part has BEGIN only if it is the first, COMMIT only if it is the last. */
  block: string;
  part?: { index: number; last: boolean };
}

const HEADER = /^-- astrid:tx lsn=([0-9A-F]+\/[0-9A-F]+) commit=(\S+) xid=(\d+) bytes=(\d+)(?: part=(\d+) (more|last))?$/;

export async function* segmentTransactions(plaintext: AsyncIterable<Buffer>): AsyncGenerator<SegmentTransaction> {
  let buf: Buffer = Buffer.alloc(0);
  let need: { lsn: string; commitAt: string; bytes: number; part?: SegmentTransaction["part"] } | undefined;
  const take = function* (): Generator<SegmentTransaction> {
    for (;;) {
      if (!need) {
        const nl = buf.indexOf(0x0a);
        if (nl < 0) return;
        const line = buf.toString("utf8", 0, nl);
        const m = HEADER.exec(line);
        if (!m) throw new AppError("segment_invalid", `segment text: expected a transaction header, found ${JSON.stringify(line.slice(0, 80))}`);
        need = { lsn: m[1]!, commitAt: m[2]!, bytes: Number(m[4]), ...(m[5] ? { part: { index: Number(m[5]), last: m[6] === "last" } } : {}) };
        buf = buf.subarray(nl + 1);
      }
      if (buf.length < need.bytes) return;
      const block = buf.toString("utf8", 0, need.bytes);
      buf = buf.subarray(need.bytes);
      yield { lsn: parseLsn(need.lsn), lsnText: need.lsn, commitAt: need.commitAt, block, ...(need.part ? { part: need.part } : {}) };
      need = undefined;
    }
  };
  for await (const part of plaintext) {
    buf = buf.length ? Buffer.concat([buf, part]) : part;
    yield* take();
  }
  if (need || buf.length) throw new AppError("segment_invalid", "segment text ends inside a transaction");
}

