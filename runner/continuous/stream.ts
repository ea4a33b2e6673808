// continuous.stream: a database's change stream into the repository.
//
// A new stream creates its publication and a logical replication slot whose
// snapshot is exported in the same walsender command, and takes its base
// backup in that snapshot through the database backup pipeline (pg_dump
// --snapshot): base and stream meet exactly at the slot's consistent point.
// Then it streams pgoutput, turns each transaction into a SQL block
// (pgoutput.ts) and cuts segments every `segment_seconds` or at
// `segment_max_bytes`. A segment goes through the chunk store like a dump
// (zstd, age, packs): each transaction's SQL is chunked and sealed as it
// arrives, so the runner holds a segment's packs in flight, never the
// segment's text. At the cut its manifest is written, it is reported to the Worker, and only
// once the Worker has recorded it is its LSN confirmed to the server
// (flush_lsn): nothing the server may discard is only in the runner's memory.
//
// The job runs until told to stop: its heartbeat's answer asks it to yield
// (an exclusive job, garbage collection, waits), says another job now holds
// the stream, or says a newer stream of the database (a re-base) has taken
// over; it then cuts what it holds and ends. The Worker's cron resumes it,
// except after a re-base: then the stream ends and this job drops its slot.
import { createHash, type Hash } from "node:crypto";
import { CHUNKER, FORMAT_VERSION, SegmentManifest, segmentManifestKey } from "../../workers/shared/format.ts";
import type {
  BaseReport, ContinuousStreamDispatch, ContinuousStreamResult, HeartbeatAnswer, SegmentReport, SlotHealth, StreamEnd, TableShape,
} from "../../workers/continuous/protocol.ts";
import { AppError } from "../../workers/shared/errors.ts";
import { StreamSplitter } from "../repository/chunker.ts";
import { ChunkWriter } from "../repository/chunk-writer.ts";
import { sha256Hex, ZSTD_LEVEL } from "../repository/codec.ts";
import { backupDatabase } from "../database/backup.ts";
import { PgServerError, PgWire } from "../database/pg-wire.ts";
import type { JobContext } from "../job-context.ts";
import { DDL_MESSAGE_PREFIX, lsnText, parseLsn, PgOutputDecoder, pgTimeIso, pgTimeNow, schemaFingerprint, type Relation } from "./pgoutput.ts";
import { installDdlCapture, isSingleStatement, MAINTENANCE_SETTING, removeDdlCapture } from "./ddl.ts";
import { dropSlot, dropStreamObjects, ensurePublication, readSequences, shapeInSnapshot, slotHealth } from "./source.ts";

/** What a segment holds before it is cut: its SQL is already on its way into the chunk store. */
interface Pending {
  /** Opened by the segment's first transaction. */
  store?: { writer: ChunkWriter; splitter: StreamSplitter; hash: Hash };
  bytes: number;
  transactions: number;
  firstLsn?: bigint;
  lastLsn?: bigint;
  /** Confirmed to the server once this segment is recorded: the end of its last transaction. */
  confirmLsn?: bigint;
  firstCommitAt?: string;
  lastCommitAt?: string;
}

const empty = (): Pending => ({ bytes: 0, transactions: 0 });

export async function runStream(job: ContinuousStreamDispatch, ctx: JobContext): Promise<ContinuousStreamResult> {
  const repo = ctx.repository;
  const sql = await PgWire.connect(job.source_url);
  let repl: PgWire | undefined;
  try {
    let startLsn = "0/0";
    let schema: TableShape[] = job.schema ?? [];
    let ddl = job.capture_ddl;
    if (job.drop) {
      await dropStreamObjects(sql, job.slot_name, job.publication_name);
      await removeDdlCapture(sql);
      return { kind: "continuous.stream", stream_id: job.stream_id, ended: "dropped", detail: "continuous protection turned off", segments: 0 };
    }
    // This session's DDL (publication, capture) is upkeep, not the user's schema: the capture trigger skips it.
    await sql.query(`SET ${MAINTENANCE_SETTING} = 'on'`);
    if (job.new_stream) {
      for (const slot of job.retired_slots) await dropSlot(sql, slot);
      const published = await ensurePublication(sql, job.publication_name);
      if (ddl) ddl = await installDdlCapture(sql, job.publication_name).catch((e: Error) => {
        console.warn(`continuous ${job.database}: DDL capture not installed (${e.message}); a schema change will start a new base`);
        return false;
      });
      await dropSlot(sql, job.slot_name);
      repl = await PgWire.connect(job.source_url, { replication: true });
      // The slot and its exported snapshot in one walsender command: the base is dumped in exactly that snapshot.
      const [slot] = await repl.query(`CREATE_REPLICATION_SLOT ${job.slot_name} LOGICAL pgoutput (SNAPSHOT 'export')`);
      const consistentLsn = slot![1]!;
      const snapshot = slot![2]!;
      const consistentAt = pgTimeIso(pgTimeNow()); // microseconds, like the commit times it is compared with
      schema = await shapeInSnapshot(job.source_url, snapshot, published.tables);
      ctx.progress({ phase: "base backup", bytes: 0, chunks: 0 });
      const backup = await backupDatabase({
        kind: "database.backup", job_id: job.job_id, repository: job.repository, backup_id: job.stream_id, database: job.database,
        type: "full", source_url: job.source_url, recipients: job.recipients, chunk_id_key: job.chunk_id_key,
        ...(job.parent_manifest_key ? { parent_manifest_key: job.parent_manifest_key } : {}),
      }, ctx, { snapshot });
      const report: BaseReport = {
        stream_id: job.stream_id, slot_name: job.slot_name, consistent_lsn: consistentLsn, consistent_at: consistentAt,
        schema, schema_fingerprint: schemaFingerprint(schema), uncovered: published.uncovered, ddl_captured: ddl, backup,
      };
      await repo.report("continuous/base", report);
      startLsn = consistentLsn;
    } else {
      // One consumer per slot: a previous holder (a runner declared lost) is cut off before this one starts.
      await sql.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '${job.slot_name}' AND active_pid IS NOT NULL`);
      repl = await PgWire.connect(job.source_url, { replication: true });
    }
    return await new Streamer(job, ctx, sql, repl, schema).run(startLsn);
  } finally {
    repl?.destroy();
    await sql.close().catch(() => {});
  }
}

class Streamer {
  private pending = empty();
  /** Segments cut and not yet recorded. */
  private inFlight = 0;
  private cutting: Promise<void> = Promise.resolve();
  private segments = 0;
  private nextSeq: number;
  private confirmed: bigint;
  private readonly skipThrough: bigint;
  /** Server time of the newest keepalive received with nothing pending and no transaction open. */
  private idleAt: string | undefined;
  private idleWalEnd: bigint | undefined;
  /** Every commit before this is durable and recorded. */
  private coveredUntil: string | undefined;
  private inTransaction = false;
  /** A transaction's SQL is being added to the pending segment (a cut waits for it: cutDue). */
  private feeding = false;
  private cutDue = false;
  /** Parts of a large transaction are in the pending segment, its last part not yet. */
  private partial = false;
  private stopping: { ended: StreamEnd; detail: string } | undefined;
  private failure: unknown;
  private readonly tables = new Map<string, TableShape>();
  private schemaChanged: string | undefined;
  private ddlSince = new Set<string>();
  private readonly decoder: PgOutputDecoder;

  private readonly job: ContinuousStreamDispatch;
  private readonly ctx: JobContext;
  private readonly sql: PgWire;
  private readonly repl: PgWire;

  constructor(job: ContinuousStreamDispatch, ctx: JobContext, sql: PgWire, repl: PgWire, schema: TableShape[]) {
    this.job = job;
    this.ctx = ctx;
    this.sql = sql;
    this.repl = repl;
    this.nextSeq = job.next_seq;
    this.confirmed = job.resume_after_lsn ? parseLsn(job.resume_after_lsn) : 0n;
    this.skipThrough = this.confirmed;
    for (const t of schema) this.tables.set(`${t.schema}.${t.name}`, t);
    this.decoder = new PgOutputDecoder((r) => this.checkRelation(r));
  }

  async run(startLsn: string): Promise<ContinuousStreamResult> {
    // A transaction being fed into the segment is finished first: receive() cuts once it is in.
    const cutTimer = setInterval(() => (this.feeding || this.partial ? (this.cutDue = true) : this.cut()), this.job.segment_seconds * 1000);
    const beatTimer = setInterval(() => void this.heartbeat(), this.job.heartbeat_seconds * 1000);
    this.ctx.onCancel(() => this.stop("failed", "the runner is shutting down"));
    try {
      const command = `START_REPLICATION SLOT ${this.job.slot_name} LOGICAL ${startLsn} (proto_version '1', publication_names '${this.job.publication_name}', messages 'true')`;
      try {
        for await (const m of this.repl.replicate(command)) {
          if (this.failure) throw this.failure;
          if (this.stopping) break;
          await this.receive(m);
        }
      } catch (e) {
        if (this.stopping) {
          // the socket was closed to stop: expected
        } else if (isSlotLost(e)) {
          this.stopping = { ended: "slot_lost", detail: (e as Error).message };
        } else throw this.repl.asAppError(e);
      }
      if (!this.stopping) this.stopping = { ended: "failed", detail: "the server ended the replication stream" };
      // What is held is cut and recorded before the job ends, unless the stream broke (then the next job re-reads it from the slot).
      if (["yielded", "schema_changed", "superseded", "rebased"].includes(this.stopping.ended)) this.cut();
      await this.cutting;
      if (this.failure) throw this.failure;
      if (this.stopping.ended === "rebased" || this.stopping.ended === "schema_changed") {
        // The stream ends here (a successor covers what follows, or a new base starts): its slot would only hold WAL back.
        this.repl.destroy();
        await this.withSql((sql) => dropSlot(sql, this.job.slot_name));
      }
      if (this.stopping.ended === "failed") throw new AppError("stream_failed", this.stopping.detail);
      return {
        kind: "continuous.stream", stream_id: this.job.stream_id, ended: this.stopping.ended, detail: this.stopping.detail,
        segments: this.segments, ...(this.confirmed ? { confirmed_lsn: lsnText(this.confirmed) } : {}),
      };
    } finally {
      clearInterval(cutTimer);
      clearInterval(beatTimer);
      this.pending.store?.writer.close(); // a stream that failed: its unrecorded packs are garbage for gc
    }
  }

  private stop(ended: StreamEnd, detail: string): void {
    if (this.stopping) return;
    this.stopping = { ended, detail };
    // Ends the copy: the for-await above sees the closed socket.
    setTimeout(() => this.repl.destroy(), 0);
  }

  private async receive(m: Buffer): Promise<void> {
    const type = String.fromCharCode(m[0]!);
    if (type === "k") {
      const walEnd = m.readBigUInt64BE(1);
      const serverUs = m.readBigInt64BE(9);
      if (!this.inTransaction && this.pending.transactions === 0) {
        this.idleAt = pgTimeIso(serverUs);
        this.idleWalEnd = walEnd;
      }
      if (m[17] === 1) this.status(false);
      return;
    }
    if (type !== "w") return;
    const payload = m.subarray(25);
    const tag = String.fromCharCode(payload[0]!);
    if (tag === "B") {
      this.inTransaction = true;
      this.idleAt = undefined;
    }
    const heldMessages = this.decoder.messages.length;
    const tx = this.decoder.decode(payload);
    const message = this.decoder.messages.length > heldMessages ? this.decoder.messages.at(-1) : undefined;
    if (message?.prefix === DDL_MESSAGE_PREFIX && this.inTransaction) {
      // A captured DDL statement explains the Relation messages that follow it; a query string of several does not replay safely.
      if (isSingleStatement(message.content)) this.ddlSince.add("*");
      else this.schemaChanged ??= "a captured DDL query holds more than one statement";
    }
    if (!tx) return;
    const last = !tx.part || tx.part.last; // a large transaction comes in parts (pgoutput.ts, PART_BYTES)
    if (last) {
      this.inTransaction = false;
      this.decoder.messages.length = 0;
    }
    if (this.schemaChanged) {
      // This transaction's changes do not fit the schema of record and no captured DDL explains them:
      // it stays unconfirmed (the next stream's base holds it) and the stream ends here.
      const detail = this.schemaChanged;
      this.stop("schema_changed", detail);
      return;
    }
    if (tx.lsn <= this.skipThrough) return; // already in a recorded segment (a resumed stream)
    const p = this.pending;
    const sql = Buffer.from(tx.text, "utf8");
    p.store ??= { writer: new ChunkWriter(this.ctx.repository, "packs/", this.job.recipients, this.job.chunk_id_key), splitter: new StreamSplitter(), hash: createHash("sha256") };
    this.feeding = true;
    try {
      p.store.hash.update(sql);
      // As pieces (views of this and earlier transactions' buffers, never reused): the writer copies each chunk once.
      for (const pieces of p.store.splitter.pushPieces(sql)) await p.store.writer.add(pieces);
    } finally {
      this.feeding = false;
    }
    p.bytes += sql.length;
    // A segment never ends inside a transaction: the cut waits for its last part.
    this.partial = !last;
    if (!last) return;
    p.transactions++;
    p.firstLsn ??= tx.lsn;
    p.firstCommitAt ??= tx.commitAt;
    p.lastLsn = tx.lsn;
    p.lastCommitAt = tx.commitAt;
    p.confirmLsn = tx.endLsn;
    if (p.bytes >= this.job.segment_max_bytes || this.cutDue) {
      this.cut();
      await this.cutting; // backpressure: one segment being finished at a time beside the one being fed
    }
  }

  private checkRelation(r: Relation): void {
    const key = `${r.schema}.${r.name}`;
    const known = this.tables.get(key);
    const shape: TableShape = { schema: r.schema, name: r.name, columns: r.columns.map((c) => ({ name: c.name, typeOid: c.typeOid })) };
    const same = known && JSON.stringify(known.columns) === JSON.stringify(shape.columns);
    if (same) return;
    if (this.ddlSince.has("*")) {
      this.tables.set(key, shape); // the replay runs the captured DDL before these changes
      return;
    }
    this.schemaChanged ??= known ? `the columns of ${key} changed without captured DDL` : `${key} appeared in the stream without captured DDL`;
  }

  /** Cuts what is pending into a segment (chained: segments are written and confirmed in order). */
  private cut(): void {
    this.cutDue = false;
    if (this.partial) {
      // Only when the stream stops inside a large transaction: what is pending is left unrecorded and
      // unconfirmed (its packs are garbage for gc), and the slot gives it to the next job again.
      console.warn(`continuous ${this.job.database}: stopped inside a large transaction; its segment (${this.pending.transactions} transactions before it) is left to the next job`);
      this.pending.store?.writer.close();
      this.pending = empty();
      this.partial = false;
      return;
    }
    if (this.pending.transactions === 0) return;
    const segment = this.pending;
    this.pending = empty();
    const seq = this.nextSeq++;
    this.inFlight++;
    this.cutting = this.cutting.then(() => this.failure ? undefined : this.writeSegment(seq, segment)).catch((e: unknown) => {
      this.failure ??= e;
      this.stop("failed", (e as Error).message);
    }).finally(() => this.inFlight--);
  }

  private async writeSegment(seq: number, p: Pending): Promise<void> {
    const job = this.job;
    const { writer, splitter, hash } = p.store!;
    for (const pieces of splitter.endPieces()) await writer.add(pieces);
    const chunks = await writer.finish();
    const sequences = await this.withSql(readSequences);
    const schema = [...this.tables.values()];
    const coveredUntil = p.lastCommitAt!;
    const manifest = SegmentManifest.parse({
      format: "astrid-backup/continuous-segment", format_version: FORMAT_VERSION, backup_id: job.stream_id, database: job.database, seq,
      start_lsn: lsnText(p.firstLsn!), end_lsn: lsnText(p.lastLsn!), first_commit_at: p.firstCommitAt ?? null, last_commit_at: p.lastCommitAt ?? null,
      transactions: p.transactions, covered_until: coveredUntil, schema_fingerprint: schemaFingerprint(schema), sequences,
      payload: { format: "sql", logical_bytes: p.bytes, sha256: hash.digest("hex") },
      compression: { algorithm: "zstd", level: ZSTD_LEVEL }, encryption: { scheme: "age-x25519", recipients: job.recipients },
      chunker: CHUNKER, stats: { ...writer.stats }, pack_prefix: "packs/", chunks,
    });
    const body = Buffer.from(JSON.stringify(manifest, null, 1));
    const key = segmentManifestKey(job.stream_id, seq, job.job_id);
    await this.ctx.repository.put(key, body, sha256Hex(body));
    const report: SegmentReport = {
      stream_id: job.stream_id, seq, manifest_key: key, start_lsn: manifest.start_lsn, end_lsn: manifest.end_lsn,
      confirm_lsn: lsnText(p.confirmLsn!), first_commit_at: manifest.first_commit_at, last_commit_at: manifest.last_commit_at,
      transactions: p.transactions, covered_until: coveredUntil, logical_bytes: p.bytes, stored_bytes: writer.stats.stored_bytes,
      sha256: manifest.payload.sha256, schema,
    };
    // Recorded by the Worker, then confirmed to the server: never the other way round.
    await this.ctx.repository.report("continuous/segment", report);
    this.segments++;
    this.confirmed = p.confirmLsn!;
    this.coveredUntil = coveredUntil;
    this.status(false);
    this.ctx.progress({ phase: `streaming, ${this.segments} segments`, bytes: 0, chunks: seq + 1 });
  }

  /** Standby status update: write = flush = apply = the confirmed LSN (or the idle keepalive's end, nothing pending). */
  private status(requestReply: boolean): void {
    let lsn = this.confirmed;
    if (this.idleWalEnd !== undefined && this.idleAt !== undefined && this.pending.transactions === 0 && !this.inTransaction && this.inFlight === 0) {
      if (this.idleWalEnd > lsn) lsn = this.idleWalEnd;
    }
    const b = Buffer.alloc(34);
    b.write("r", 0);
    b.writeBigUInt64BE(lsn, 1);
    b.writeBigUInt64BE(lsn, 9);
    b.writeBigUInt64BE(lsn, 17);
    b.writeBigInt64BE(pgTimeNow(), 25);
    b[33] = requestReply ? 1 : 0;
    try {
      this.repl.sendCopyData(b);
    } catch {
      // the stream is ending; the next job starts from what the server has confirmed
    }
  }

  /** The source connection serves one statement at a time (segment cuts and heartbeats share it). */
  private withSql<T>(fn: (sql: PgWire) => Promise<T>): Promise<T> {
    const run = this.sqlTurn.then(() => fn(this.sql));
    this.sqlTurn = run.then(() => {}, () => {});
    return run;
  }
  private sqlTurn: Promise<void> = Promise.resolve();
  private beating = false;

  private async heartbeat(): Promise<void> {
    if (this.stopping || this.beating) return;
    this.beating = true;
    try {
      // An idle source still moves the slot: a logical message makes the server send us WAL to confirm past.
      await this.withSql((sql) => sql.query("SELECT pg_logical_emit_message(false, 'astrid_heartbeat', '')"));
      this.status(true);
      const slot: SlotHealth = await this.withSql((sql) => slotHealth(sql, this.job.slot_name));
      if (slot.wal_status === null) {
        this.stop("slot_lost", `replication slot ${this.job.slot_name} no longer exists`);
        return;
      }
      if (slot.wal_status === "lost") {
        this.stop("slot_lost", `replication slot ${this.job.slot_name} was invalidated (wal_status lost)`);
        return;
      }
      // Nothing pending and nothing being written: every commit up to the newest idle keepalive is durable.
      const settled = this.pending.transactions === 0 && !this.inTransaction && this.inFlight === 0;
      const covered = settled && this.idleAt ? maxIso(this.idleAt, this.coveredUntil) : this.coveredUntil;
      const answer = await this.ctx.repository.report<HeartbeatAnswer>("continuous/heartbeat", {
        stream_id: this.job.stream_id, ...(covered ? { covered_until: covered } : {}), slot,
      });
      if (answer.stop === "yield") this.stop("yielded", "an exclusive job (garbage collection) is waiting");
      else if (answer.stop === "superseded") this.stop("superseded", "another job holds this stream now");
      else if (answer.stop === "rebased") this.stop("rebased", "a newer stream (its own slot and base) has taken over");
    } catch (e) {
      console.warn(`continuous ${this.job.database}: heartbeat failed: ${(e as Error).message}`);
    } finally {
      this.beating = false;
    }
  }
}

function maxIso(a: string, b: string | undefined): string {
  return b && b > a ? b : a;
}

/** The slot is gone or can no longer give the changes it should (undefined_object; object_not_in_prerequisite_state). */
function isSlotLost(e: unknown): boolean {
  const state = (e as PgServerError).sqlstate;
  const message = (e as Error).message ?? "";
  return state === "42704" || (state === "55000" && /replication slot/.test(message)) || /can no longer get changes|does not exist/.test(message);
}
