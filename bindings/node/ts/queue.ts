/**
 * Behaviour of `Queue` (signatures, docs and argument validation are
 * generated in `_generated/api.ts`).
 */

import * as codec from "./codec.js";
import { ClosedError, InvalidArgumentError, InvalidTypeError, OperationTimeoutError } from "./_generated/errors.js";
import {
  BackoffSpec,
  Job,
  MissedFiresPolicy,
  RepeatableMeta,
  RepeatPattern,
} from "./_generated/types.js";
import type { BackoffLike, DelayMsLike, MissedFiresLike, RepeatLike } from "./_generated/types.js";
import { ResultWaiters } from "./events.js";
import {
  Producer,
  type MissedFiresObject,
  type NativeAddOptions,
  type NativeBackoff,
  type PatternObject,
  type UpsertSpec,
} from "./native.js";

/** Milliseconds from now, from either delay form (already type-checked). */
export function delayToMs(delayMs: DelayMsLike | null, delay: number | null): number | null {
  if (delay != null) {
    return Math.trunc(delay);
  }
  if (delayMs == null) {
    return null;
  }
  if (delayMs instanceof Date) {
    return Math.max(0, Math.ceil(delayMs.getTime() - Date.now()));
  }
  return Math.trunc(delayMs);
}

const NATIVE_BACKOFF_KEYS = ["kind", "delayMs", "maxDelayMs", "multiplier", "jitterMs"];
const BULLMQ_BACKOFF_KEYS = ["type", "delay"];

function checkKeys(field: string, value: object, keys: string[], shape: string): void {
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) {
      throw new InvalidTypeError(`${field}.${key} is not a known key of ${shape}; use only ${keys.join(", ")}`);
    }
  }
}

/** BackoffLike (integer ms, BackoffSpec, BullMQ's {type, delay}, native object) to the native shape. */
export function backoffToNative(backoff: BackoffLike | null, field = "backoff"): NativeBackoff | undefined {
  if (backoff == null) {
    return undefined;
  }
  if (typeof backoff === "number") {
    return { kind: "fixed", delayMs: backoff };
  }
  if (backoff instanceof BackoffSpec) {
    return backoff._native();
  }
  const raw = backoff as Record<string, unknown>;
  if ("type" in raw) {
    checkKeys(field, raw, BULLMQ_BACKOFF_KEYS, "a BullMQ backoff");
    const delay = raw.delay ?? 0;
    if (typeof delay !== "number" || !Number.isInteger(delay) || delay < 0) {
      throw new InvalidArgumentError(`${field}.delay must be a non-negative integer of milliseconds (got ${String(delay)})`);
    }
    if (raw.type === "fixed") {
      return { kind: "fixed", delayMs: delay };
    }
    if (raw.type === "exponential") {
      return { kind: "exponential", delayMs: delay, multiplier: 2 };
    }
    throw new InvalidArgumentError(
      `${field}.type must be 'fixed' or 'exponential' (got ${String(raw.type)}); a custom BullMQ backoff strategy is not supported`,
    );
  }
  checkKeys(field, raw, NATIVE_BACKOFF_KEYS, "a backoff");
  const out: Record<string, unknown> = {};
  for (const key of NATIVE_BACKOFF_KEYS) {
    if (raw[key] != null) {
      out[key] = raw[key];
    }
  }
  return out as unknown as NativeBackoff;
}

const PATTERN_KEYS = ["kind", "expression", "tz", "intervalMs"];

/** RepeatLike (RepeatPattern, its object, or BullMQ's {pattern, tz} / {every}) to the native shape. */
export function patternToNative(repeat: RepeatLike, field = "repeat"): PatternObject {
  if (repeat instanceof RepeatPattern) {
    return repeat._native();
  }
  const raw = repeat as Record<string, unknown>;
  if (!("kind" in raw)) {
    if ("pattern" in raw) {
      checkKeys(field, raw, ["pattern", "tz"], "a BullMQ repeat");
      return RepeatPattern.cron(raw.pattern as string, { tz: (raw.tz as string | null) ?? null })._native();
    }
    if ("every" in raw) {
      checkKeys(field, raw, ["every"], "a BullMQ repeat");
      return RepeatPattern.every(raw.every as number)._native();
    }
  }
  checkKeys(field, raw, PATTERN_KEYS, "a repeat pattern");
  const out: Record<string, unknown> = {};
  for (const key of PATTERN_KEYS) {
    if (raw[key] != null) {
      out[key] = raw[key];
    }
  }
  return out as unknown as PatternObject;
}

function missedToNative(missed: MissedFiresLike | null): MissedFiresObject | undefined {
  if (missed == null) {
    return undefined;
  }
  if (missed instanceof MissedFiresPolicy) {
    return missed._native();
  }
  const raw = missed as Record<string, unknown>;
  checkKeys("missedFires", raw, ["kind", "maxCatchup"], "a missed-fires policy");
  const out: MissedFiresObject = { kind: raw.kind as string };
  if (raw.maxCatchup != null) {
    out.maxCatchup = raw.maxCatchup as number;
  }
  return out;
}

/** Per-job options as the native producer takes them; undefined when empty. */
export function nativeOptions(o: {
  delayMs?: DelayMsLike | null;
  delay?: number | null;
  attempts?: number | null;
  backoff?: BackoffLike | null;
  jobId?: string | null;
  timeoutMs?: number | null;
}): NativeAddOptions | undefined {
  const out: NativeAddOptions = {};
  let any = false;
  const ms = delayToMs(o.delayMs ?? null, o.delay ?? null);
  if (ms) {
    out.delayMs = ms;
    any = true;
  }
  if (o.attempts != null) {
    out.attempts = o.attempts;
    any = true;
  }
  const backoff = backoffToNative(o.backoff ?? null);
  if (backoff !== undefined) {
    out.backoff = backoff;
    any = true;
  }
  if (o.jobId != null) {
    out.jobId = o.jobId;
    any = true;
  }
  if (o.timeoutMs != null) {
    out.timeoutMs = o.timeoutMs;
    any = true;
  }
  return any ? out : undefined;
}

type AddArgs = {
  delayMs: DelayMsLike | null;
  delay: number | null;
  attempts: number | null;
  backoff: BackoffLike | null;
  jobId: string | null;
  timeoutMs: number | null;
  repeat: RepeatLike | null;
  missedFires: MissedFiresLike | null;
};

type UpsertArgs = {
  repeat: RepeatLike;
  jobId?: string | null;
  limit?: number | null;
  startAfterMs?: number | null;
  endBeforeMs?: number | null;
  attempts?: number | null;
  backoff?: BackoffLike | null;
  missedFires?: MissedFiresLike | null;
};

function sleep(ms: number): { done: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return { done, cancel: () => clearTimeout(timer) };
}

export class QueueBase {
  /** @internal */ _name!: string;
  /** @internal */ _redisUrl!: string;
  /** @internal */ _maxStreamLen!: number | null;
  /** @internal */ _maxDelaySecs!: number | null;
  /** @internal */ _commandTimeoutMs: number | null = null;
  /** @internal */ _producer: Producer | null = null;
  /** @internal */ _isClosed = false;
  /** @internal */ _results!: ResultWaiters;

  /** @internal */
  _init(
    name: string,
    options: {
      redisUrl: string;
      maxStreamLen: number | null;
      maxDelaySecs: number | null;
      commandTimeoutMs: number | null;
    },
  ): void {
    this._name = name;
    this._redisUrl = options.redisUrl;
    this._maxStreamLen = options.maxStreamLen;
    this._maxDelaySecs = options.maxDelaySecs;
    this._commandTimeoutMs = options.commandTimeoutMs;
    this._results = new ResultWaiters(name, options.redisUrl);
  }

  /** @internal The native producer, created on first use. */
  _native(): Producer {
    if (this._isClosed) {
      throw new ClosedError(`Queue '${this._name}' is closed; create a new Queue`);
    }
    if (this._producer === null) {
      const opts: { maxStreamLen?: number; maxDelaySecs?: number; commandTimeoutMs?: number } =
        {};
      if (this._maxStreamLen != null) opts.maxStreamLen = this._maxStreamLen;
      if (this._maxDelaySecs != null) opts.maxDelaySecs = this._maxDelaySecs;
      if (this._commandTimeoutMs != null) opts.commandTimeoutMs = this._commandTimeoutMs;
      this._producer = new Producer(this._redisUrl, this._name, opts);
    }
    return this._producer;
  }

  /** @internal */
  _job(id: string, name: string, data: unknown, createdAtMs: number): Job {
    return new Job({ id, name, data, attempt: 0, createdAtMs, _queue: this as never });
  }

  /** @internal */
  async _add(name: string, data: unknown, o: AddArgs): Promise<Job> {
    if (o.repeat != null) {
      if (o.delayMs != null || o.delay != null) {
        throw new InvalidArgumentError(
          "delayMs/delay: a repeatable's first fire follows its pattern; use startAfterMs on upsertRepeatableJob instead",
        );
      }
      if (o.timeoutMs != null) {
        throw new InvalidArgumentError(
          "timeoutMs: a repeatable's fires carry no per-job time limit; set jobTimeoutMs on the Worker instead",
        );
      }
      return this._upsert(name, data, {
        repeat: o.repeat,
        jobId: o.jobId,
        attempts: o.attempts,
        backoff: o.backoff,
        missedFires: o.missedFires,
      });
    }
    const payload = codec.pack("data", data);
    const opts = nativeOptions(o);
    const [id, created] = await this._native().add(name, payload, opts);
    return this._job(id, name, data, created);
  }

  /** @internal */
  async _addUnique(
    name: string,
    data: unknown,
    o: Omit<AddArgs, "missedFires" | "jobId"> & { jobId: string },
  ): Promise<Job> {
    return this._add(name, data, { ...o, missedFires: null });
  }

  /** @internal */
  async _addBulk(jobs: ReadonlyArray<Record<string, any>>): Promise<Job[]> {
    // Encode everything first: an entry that cannot be encoded fails the call
    // before anything is written. Repeatable entries are upserts (their own
    // round trip each); all other entries go in one pipeline.
    type Entry = { i: number; name: string; data: unknown; opts: Record<string, any> };
    const plain: Entry[] = [];
    const repeats: Entry[] = [];
    const payloads: Uint8Array[] = [];
    jobs.forEach((j, i) => {
      const opts = { ...(j.opts ?? {}), ...j };
      const entry = { i, name: j.name ?? "", data: j.data, opts };
      if (opts.repeat != null) {
        if (opts.delayMs != null || opts.delay != null) {
          throw new InvalidArgumentError(`jobs[${i}]: a repeatable entry takes no delayMs/delay`);
        }
        if (opts.timeoutMs != null) {
          throw new InvalidArgumentError(
            `jobs[${i}].timeoutMs: a repeatable's fires carry no per-job time limit; set jobTimeoutMs on the Worker instead`,
          );
        }
        patternToNative(opts.repeat, `jobs[${i}].repeat`);
        codec.pack(`jobs[${i}].data`, j.data);
        repeats.push(entry);
      } else {
        payloads.push(codec.pack(`jobs[${i}].data`, j.data));
        backoffToNative(opts.backoff ?? null, `jobs[${i}].backoff`);
        plain.push(entry);
      }
    });
    const out: Job[] = new Array(jobs.length);
    for (const e of repeats) {
      out[e.i] = await this._upsert(e.name, e.data, {
        repeat: e.opts.repeat,
        jobId: e.opts.jobId,
        attempts: e.opts.attempts,
        backoff: e.opts.backoff,
      });
    }
    if (plain.length > 0) {
      const entries = plain.map((e, k) => {
        const options = nativeOptions(e.opts);
        return options === undefined
          ? { name: e.name, payload: payloads[k] }
          : { name: e.name, payload: payloads[k], options };
      });
      const added = await this._native().addBulk(entries);
      plain.forEach((e, k) => {
        const [id, created] = added[k];
        out[e.i] = this._job(id, e.name, e.data, created);
      });
    }
    return out;
  }

  /** @internal */
  async _cancelDelayed(jobId: string): Promise<boolean> {
    return this._native().cancelDelayed(jobId);
  }

  /** @internal */
  async _peekDlq(limit: number): Promise<Array<Record<string, any>>> {
    const entries = await this._native().peekDlq(limit);
    return entries.map((e) => ({
      dlqId: e.dlqId,
      sourceId: e.sourceId,
      reason: e.reason,
      detail: e.detail ?? null,
      name: e.name,
      payload: e.payload,
      ...(codec.decodeEnvelope(e.payload) ?? {}),
    }));
  }

  /** @internal */
  async _replayDlq(limit: number): Promise<number> {
    return this._native().replayDlq(limit);
  }

  /** @internal */
  async _upsert(name: string, data: unknown, o: UpsertArgs): Promise<Job> {
    const spec: UpsertSpec = {
      name,
      payload: codec.pack("data", data),
      pattern: patternToNative(o.repeat),
    };
    if (o.jobId != null) spec.key = o.jobId;
    if (o.limit != null) spec.limit = o.limit;
    if (o.startAfterMs != null) spec.startAfterMs = o.startAfterMs;
    if (o.endBeforeMs != null) spec.endBeforeMs = o.endBeforeMs;
    if (o.attempts != null) spec.attempts = o.attempts;
    const backoff = backoffToNative(o.backoff ?? null);
    if (backoff !== undefined) spec.backoff = backoff;
    const missed = missedToNative(o.missedFires ?? null);
    if (missed !== undefined) spec.missedFires = missed;
    const key = await this._native().upsertRepeatable(spec);
    return this._job(key, name, data, Date.now());
  }

  /** @internal */
  async _upsertRepeatableJob(name: string, data: unknown, o: UpsertArgs & { repeat: RepeatPattern }): Promise<Job> {
    return this._upsert(name, data, o);
  }

  /** @internal */
  async _getRepeatableJobs(limit: number): Promise<RepeatableMeta[]> {
    const metas = await this._native().repeatables(limit);
    return metas.map((m) => {
      const p = m.pattern;
      const pattern =
        p.kind === "cron"
          ? new RepeatPattern({ kind: "cron", expression: p.expression ?? null, tz: p.tz ?? null })
          : new RepeatPattern({ kind: "every", intervalMs: p.intervalMs ?? null });
      return new RepeatableMeta({
        key: m.key,
        jobName: m.jobName,
        pattern,
        nextFireMs: m.nextFireMs,
        limit: m.limit ?? null,
        startAfterMs: m.startAfterMs ?? null,
        endBeforeMs: m.endBeforeMs ?? null,
        missedFires: new MissedFiresPolicy({
          kind: m.missedFires.kind,
          maxCatchup: m.missedFires.maxCatchup ?? null,
        }),
      });
    });
  }

  /** @internal */
  async _removeRepeatableByKey(key: string): Promise<boolean> {
    return this._native().removeRepeatable(key);
  }

  /** @internal */
  async _getJobResult(jobId: string): Promise<any> {
    const [raw] = await this._native().getResults([jobId]);
    return raw == null ? null : codec.unpack(raw);
  }

  /** @internal */
  async _getJobResultBulk(jobIds: ReadonlyArray<string>): Promise<any[]> {
    const raws = await this._native().getResults([...jobIds]);
    return raws.map((raw) => (raw == null ? null : codec.unpack(raw)));
  }

  /**
   * @internal Job.waitForResult: reads the result when the job's `completed`
   * event arrives (one shared listener per Queue), and every `pollIntervalMs`
   * anyway (events may be disabled).
   */
  async _waitResult(jobId: string, timeoutMs: number, pollIntervalMs: number): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    this._native(); // ClosedError before anything starts
    const sub = await this._results.subscribe(jobId);
    let completed = false;
    let settled = false;
    sub?.done.then((v) => {
      completed = v;
      settled = true;
    });
    try {
      for (;;) {
        // Read before deciding: a `completed` seen before the read means the
        // read reflects that completion (same script).
        const wasCompleted = completed;
        const [raw] = await this._native().getResults([jobId]);
        if (raw != null) {
          return codec.unpack(raw);
        }
        if (wasCompleted) {
          return null; // completed without a stored result
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          throw new OperationTimeoutError(`no result for job '${jobId}' within ${timeoutMs} ms`);
        }
        const pause = sleep(Math.min(pollIntervalMs, remaining));
        if (sub === null || settled) {
          await pause.done;
        } else {
          await Promise.race([pause.done, sub.done]);
          pause.cancel();
        }
      }
    } finally {
      sub?.cancel();
    }
  }

  /** `await using queue = new Queue(...)` closes the queue at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this._close();
  }

  /** @internal */
  async _close(): Promise<void> {
    if (this._isClosed) {
      return;
    }
    this._isClosed = true;
    await this._results.close();
    const p = this._producer;
    this._producer = null;
    if (p !== null) {
      await p.close();
    }
  }
}
