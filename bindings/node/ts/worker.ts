/**
 * Behaviour of `Worker` (signatures and validation are generated).
 *
 * The hot path: the engine hands over jobs one batch per promise
 * (`Consumer.nextBatch`); each job's handler runs on this event loop, all of
 * them concurrently (the engine caps them at `concurrency`); outcomes go back
 * in one synchronous `Consumer.settle` call per event-loop turn
 * (`setImmediate`). No per-job thread hop, no per-job Redis round trip.
 */

import { AsyncResource } from "node:async_hooks";
import * as codec from "./codec.js";
import { InvalidArgumentError, UnrecoverableError } from "./_generated/errors.js";
import { Job } from "./_generated/types.js";
import type { Handler } from "./_generated/types.js";
import { Consumer, type Delivery, type SettleOutcome } from "./native.js";

// Outcome kinds understood by Consumer.settle.
const OK = 0;
const FAILED = 1;
const UNRECOVERABLE = 2;
const ABANDONED = 3;
const DECODE_FAILED = 4;
const TIMEOUT = 5;

/** What a run past its time limit rejects with (never seen by users). */
const TIMED_OUT: unique symbol = Symbol("chasquimq.timedOut");

const MAX_REASON = 1024;

function reason(e: unknown): string {
  let text: string;
  if (e instanceof Error) {
    text = `${e.name}: ${e.message}`;
  } else {
    text = `${typeof e}: ${String(e)}`;
  }
  return text.length <= MAX_REASON ? text : text.slice(0, MAX_REASON);
}

/** True for UnrecoverableError and its subclasses, and for BullMQ's class of that name. */
function isUnrecoverable(e: unknown): boolean {
  if (e instanceof UnrecoverableError) {
    return true;
  }
  let proto = e !== null && typeof e === "object" ? Object.getPrototypeOf(e) : null;
  while (proto !== null && proto !== Object.prototype) {
    if (proto.constructor?.name === "UnrecoverableError") {
      return true;
    }
    proto = Object.getPrototypeOf(proto);
  }
  return false;
}

function micros(startNs: bigint): number {
  return Number((process.hrtime.bigint() - startNs) / 1000n);
}

type WorkerOptions = {
  redisUrl: string;
  concurrency: number;
  maxAttempts: number;
  group: string;
  consumerId: string | null;
  readBlockMs: number | null;
  readCount: number | null;
  claimMinIdleMs: number | null;
  maxPayloadBytes: number | null;
  maxStreamLen: number | null;
  dlqMaxStreamLen: number | null;
  eventsEnabled: boolean;
  delayedEnabled: boolean;
  runScheduler: boolean;
  schedulerTickMs: number | null;
  storeResults: boolean;
  resultTtlMs: number | null;
  shutdownTimeoutMs: number;
  startTimeoutMs: number | null;
  jobTimeoutMs: number | null;
};

export class WorkerBase {
  /** @internal */ _name!: string;
  /** @internal */ _handler!: Handler;
  /** @internal */ _native!: Consumer;
  /** @internal */ _storeResults = false;
  /** @internal */ _shutdownTimeoutMs = 30_000;
  /** @internal */ _isClosed = false;
  /** @internal */ _running: Promise<void> | null = null;
  /** @internal */ _done = false;
  /** @internal */ _buf: SettleOutcome[] = [];
  /** @internal */ _flushScheduled = false;
  /** @internal Tokens handed to a handler and not settled yet. */
  _pending = new Set<number>();

  /** @internal */
  _init(queueName: string, handler: Handler, o: WorkerOptions): void {
    if (o.concurrency > 100_000) {
      throw new InvalidArgumentError(
        `concurrency must be at most 100000 (got ${o.concurrency}); pass a smaller integer`,
      );
    }
    if (o.maxAttempts > 2 ** 32 - 1) {
      throw new InvalidArgumentError(
        `maxAttempts must be at most ${2 ** 32 - 1} (got ${o.maxAttempts}); pass a smaller integer`,
      );
    }
    const native: Record<string, unknown> = {
      concurrency: o.concurrency,
      maxAttempts: o.maxAttempts,
      group: o.group,
      eventsEnabled: o.eventsEnabled,
      delayedEnabled: o.delayedEnabled,
      runScheduler: o.runScheduler,
      storeResults: o.storeResults,
    };
    const optional = {
      consumerId: o.consumerId,
      readBlockMs: o.readBlockMs,
      readCount: o.readCount,
      claimMinIdleMs: o.claimMinIdleMs,
      maxPayloadBytes: o.maxPayloadBytes,
      maxStreamLen: o.maxStreamLen,
      dlqMaxStreamLen: o.dlqMaxStreamLen,
      schedulerTickMs: o.schedulerTickMs,
      resultTtlMs: o.resultTtlMs,
      jobTimeoutMs: o.jobTimeoutMs,
      startTimeoutMs: o.startTimeoutMs,
    };
    for (const [key, value] of Object.entries(optional)) {
      if (value != null) {
        native[key] = value;
      }
    }
    this._native = new Consumer(o.redisUrl, queueName, native);
    this._name = queueName;
    this._handler = handler;
    this._storeResults = o.storeResults;
    this._shutdownTimeoutMs = o.shutdownTimeoutMs;
  }

  /** @internal */
  get _isRunning(): boolean {
    return this._running !== null && !this._done;
  }

  /** @internal */
  async _run(): Promise<void> {
    if (this._running === null) {
      if (this._isClosed) {
        return;
      }
      this._running = this._main().finally(() => {
        this._done = true;
      });
    }
    return this._running;
  }

  /** @internal */
  async _close(): Promise<void> {
    if (this._isClosed) {
      return;
    }
    this._isClosed = true;
    this._native.stop();
  }

  /**
   * `await using worker = new Worker(...)`: at scope exit, close() and wait
   * for a running run() to drain.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this._close();
    await this._running?.catch(() => undefined);
  }

  // ---- engine loop -------------------------------------------------

  /** @internal */
  async _main(): Promise<void> {
    const native = this._native;
    try {
      await native.start();
    } catch (e) {
      // Nothing started, so nothing is poisoned: the next run() tries
      // again (the engine keeps no state from a failed start).
      this._running = null;
      this._done = false;
      if (this._isClosed) {
        return; // close() ended the wait for Redis: a normal end
      }
      throw e;
    }
    if (this._isClosed) {
      native.stop();
    }
    const inFlight = new Set<Promise<void>>();
    try {
      for (;;) {
        const batch = await native.nextBatch();
        if (batch === null) {
          break;
        }
        for (const d of batch) {
          // Each job starts in an async resource of its own, so what one
          // handler sets in its async context (AsyncLocalStorage.enterWith)
          // before its first await never reaches the next job's.
          const p = new AsyncResource("chasquimq.job").runInAsyncScope(this._one, this, d);
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
        }
      }
    } finally {
      native.stop();
      if (inFlight.size > 0) {
        await this._drain(inFlight);
      }
      this._flush();
      await native.close();
    }
  }

  /**
   * @internal Waits up to shutdownTimeoutMs for running handlers; the jobs
   * still running after that are abandoned (they stay pending in Redis and
   * another worker recovers them) and their late outcomes are ignored.
   */
  async _drain(inFlight: Set<Promise<void>>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this._shutdownTimeoutMs);
    });
    await Promise.race([Promise.allSettled([...inFlight]), deadline]);
    clearTimeout(timer);
    for (const token of this._pending) {
      this._buf.push({ token, kind: ABANDONED });
    }
    this._pending.clear();
  }

  /** @internal Runs one job and buffers its outcome. */
  async _one(d: Delivery): Promise<void> {
    const token = d.token;
    this._pending.add(token);
    const t0 = process.hrtime.bigint();
    let out: SettleOutcome;
    let data: unknown;
    try {
      data = codec.unpack(d.payload);
    } catch (e) {
      this._settle({
        token,
        kind: DECODE_FAILED,
        reason: e instanceof Error ? e.message : String(e),
        durationUs: 0,
      });
      return;
    }
    try {
      const job = new Job({
        id: d.jobId,
        name: d.name,
        data,
        attempt: d.attempt,
        createdAtMs: d.createdAtMs,
      });
      const result = d.timeoutMs == null ? await this._handler(job) : await this._withLimit(job, d.timeoutMs);
      const durationUs = micros(t0);
      if (this._storeResults && result != null) {
        try {
          out = { token, kind: OK, result: codec.pack("result", result), durationUs };
        } catch (e) {
          out = {
            token,
            kind: FAILED,
            reason: `the handler's return value cannot be encoded as msgpack: ${reason(e)}`,
            durationUs,
          };
        }
      } else {
        out = { token, kind: OK, durationUs };
      }
    } catch (e) {
      if (e === TIMED_OUT) {
        out = { token, kind: TIMEOUT, durationUs: micros(t0) };
      } else {
        out = {
          token,
          kind: isUnrecoverable(e) ? UNRECOVERABLE : FAILED,
          reason: reason(e),
          durationUs: micros(t0),
        };
      }
    }
    this._settle(out);
  }

  /**
   * @internal The handler's outcome, or a rejection with TIMED_OUT once
   * `limitMs` passes: then the job fails (its slot is freed) and
   * `job.signal` is aborted; what the handler does later is ignored.
   */
  _withLimit(job: Job, limitMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(TIMED_OUT);
        job._abortRun(new DOMException(`the job's ${limitMs} ms time limit passed`, "TimeoutError"));
      }, limitMs);
      let running: Promise<unknown>;
      try {
        running = Promise.resolve(this._handler(job));
      } catch (e) {
        clearTimeout(timer);
        reject(e);
        return;
      }
      running.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  /** @internal */
  _settle(out: SettleOutcome): void {
    // An abandoned job (shutdown deadline) was settled already.
    if (!this._pending.delete(out.token)) {
      return;
    }
    this._buf.push(out);
    if (!this._flushScheduled) {
      this._flushScheduled = true;
      setImmediate(() => this._flush());
    }
  }

  /** @internal One settle call for every outcome of this event-loop turn. */
  _flush(): void {
    this._flushScheduled = false;
    if (this._buf.length > 0) {
      const buf = this._buf;
      this._buf = [];
      this._native.settle(buf);
    }
  }
}
