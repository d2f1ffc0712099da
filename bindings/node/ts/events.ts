/**
 * Behaviour of `QueueEvents` (signatures and validation are generated), and
 * the per-Queue listener that wakes `Job.waitForResult` on `completed`.
 *
 * The events stream is a plain Redis stream of ASCII fields, read with
 * ioredis: one connection per QueueEvents, one `XREAD BLOCK` at a time. One
 * read loop feeds both faces of the class: the EventEmitter (it runs while
 * there are listeners) and the async iterator (it reads when an iteration
 * waits), so no entry is lost or delivered twice to either.
 */

import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import {
  AuthenticationError,
  ClosedError,
  OperationTimeoutError,
  RedisConnectionError,
  RedisServerError,
} from "./_generated/errors.js";
import { QueueEvent } from "./_generated/types.js";
import { camel } from "./util.js";
import { isTlsScheme } from "./validate.js";

// Fields the engine writes as decimal integers.
const NUMERIC = new Set(["attempt", "backoff_ms", "delay_ms", "duration_us", "ts"]);
const INT = /^-?[0-9]+$/;
const RETRY_MS = 1_000;

/** A QueueEvent from the raw fields of one events-stream entry. */
export function parseEvent(raw: Array<Buffer | string>): QueueEvent {
  const fields: Record<string, any> = {};
  let name = "";
  let jobId = "";
  let jobName = "";
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i].toString();
    const text = raw[i + 1].toString();
    if (key === "e") {
      name = text;
    } else if (key === "id") {
      jobId = text;
    } else if (key === "n") {
      jobName = text;
    } else {
      fields[camel(key)] = NUMERIC.has(key) && INT.test(text) ? Number(text) : text;
    }
  }
  return new QueueEvent({ name, jobId: jobId || null, jobName, fields });
}

/** The ChasquiMQ error for an ioredis error. */
export function typed(e: unknown): unknown {
  if (!(e instanceof Error)) {
    return e;
  }
  const message = e.message;
  const upper = message.toUpperCase();
  if (upper.startsWith("WRONGPASS") || upper.startsWith("NOAUTH") || upper.includes("INVALID PASSWORD")) {
    return new AuthenticationError(`the Redis server refused the credentials: ${message}`);
  }
  if (e.name === "ReplyError") {
    return new RedisServerError(`the Redis server replied with an error: ${message}`);
  }
  if (/timed? ?out/i.test(message)) {
    return new OperationTimeoutError(`reading the events stream timed out: ${message}`);
  }
  return new RedisConnectionError(`reading the events stream failed: ${message}`);
}

/** A Redis client of either kind (both have callBuffer and disconnect). */
export type Client = Redis | Cluster;

/**
 * One ioredis connection for a reader of the events stream, for every URL
 * the engine accepts: redis:// and rediss:// (with the engine's TLS query
 * parameters tls_ca_file, tls_cert_file, tls_key_file), valkey(s)://, and
 * redis-cluster:// / rediss-cluster:// with more seeds as ?node=host:port.
 */
export function connect(url: string): Client {
  const u = new URL(url);
  const scheme = u.protocol.slice(0, -1).toLowerCase();
  const cluster = scheme.endsWith("-cluster");
  const seed = { host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port ? Number(u.port) : 6379 };
  const auth: RedisOptions = {
    connectTimeout: 5_000,
    // Fail a command after one reconnect attempt instead of queueing it for
    // minutes: the reader retries, or the caller sees a typed error.
    maxRetriesPerRequest: 1,
    enableReadyCheck: false,
  };
  if (u.username) auth.username = decodeURIComponent(u.username);
  if (u.password) auth.password = decodeURIComponent(u.password);
  if (isTlsScheme(scheme)) {
    const tls: ConnectionOptions = {};
    const ca = u.searchParams.get("tls_ca_file");
    const cert = u.searchParams.get("tls_cert_file");
    const key = u.searchParams.get("tls_key_file");
    if (ca) tls.ca = readFileSync(ca);
    if (cert) tls.cert = readFileSync(cert);
    if (key) tls.key = readFileSync(key);
    auth.tls = tls;
  }
  const retry = (times: number): number => Math.min(times * 100, 2_000);
  let client: Client;
  if (cluster) {
    const nodes = [seed];
    for (const node of u.searchParams.getAll("node")) {
      const at = node.lastIndexOf(":");
      nodes.push({ host: node.slice(0, at).replace(/^\[|\]$/g, ""), port: Number(node.slice(at + 1)) });
    }
    client = new Cluster(nodes, { lazyConnect: true, redisOptions: auth, clusterRetryStrategy: retry });
  } else {
    const db = u.pathname.replace(/^\//, "");
    client = new Redis({
      ...seed,
      ...auth,
      ...(db ? { db: Number(db) } : {}),
      lazyConnect: true,
      retryStrategy: retry,
    });
  }
  // Errors reach the caller through the rejected command; without a
  // listener ioredis would also print each one.
  client.on("error", () => undefined);
  return client;
}

type Waiter = {
  resolve: (r: IteratorResult<QueueEvent>) => void;
  reject: (e: unknown) => void;
};

export class QueueEventsBase extends EventEmitter implements AsyncIterableIterator<QueueEvent> {
  /** @internal */ _name!: string;
  /** @internal */ _key!: string;
  /** @internal */ _redisUrl!: string;
  /** @internal */ _lastId!: string;
  /** @internal */ _blockMs!: number;
  /** @internal */ _count!: number;
  /** @internal */ _client: Client | null = null;
  /** @internal */ _isClosed = false;
  /** @internal */ _buffer: QueueEvent[] = [];
  /** @internal */ _waiter: Waiter | null = null;
  /** @internal */ _loop: Promise<void> | null = null;
  /** @internal */ _ready: Promise<void> | null = null;
  /** @internal Ends the pause after a read error (set while pausing). */
  _wake: (() => void) | null = null;

  /** @internal */
  _init(
    queueName: string,
    options: { redisUrl: string; lastEventId: string; blockMs: number; count: number },
  ): void {
    this._name = queueName;
    this._key = `{chasqui:${queueName}}:events`;
    this._redisUrl = options.redisUrl;
    this._lastId = options.lastEventId;
    this._blockMs = options.blockMs;
    this._count = options.count;
    this.on("newListener", (event: string | symbol) => {
      if (event !== "newListener" && event !== "removeListener" && event !== "error") {
        queueMicrotask(() => this._pump());
      }
    });
  }

  /** The queue whose events this reads. */
  get queueName(): string {
    return this._name;
  }

  /**
   * Resolves once the start position is fixed: events written after this
   * resolves are delivered ("$" is pinned to the newest entry on first use).
   * The habit of BullMQ's `QueueEvents.waitUntilReady()`.
   */
  waitUntilReady(): Promise<void> {
    if (this._isClosed) {
      return Promise.reject(new ClosedError(`QueueEvents '${this._name}' is closed`));
    }
    if (this._ready === null) {
      this._ready = this._startId();
      this._ready.catch(() => {
        this._ready = null;
      });
    }
    return this._ready;
  }

  // ---- reading -----------------------------------------------------

  /** @internal */
  _redis(): Client {
    if (this._isClosed) {
      // Never reconnect after close(): the connection would outlive the object.
      throw new ClosedError(`QueueEvents '${this._name}' is closed`);
    }
    if (this._client === null) {
      this._client = connect(this._redisUrl);
    }
    return this._client;
  }

  /** @internal Pins "$" to a concrete id, so entries added between two reads are never skipped. */
  async _startId(): Promise<void> {
    if (this._lastId !== "$") {
      return;
    }
    let last: unknown;
    const client = this._redis();
    try {
      last = await client.callBuffer("XREVRANGE", this._key, "+", "-", "COUNT", "1");
    } catch (e) {
      throw typed(e);
    }
    if (this._lastId === "$") {
      const entries = last as Array<[Buffer, unknown]>;
      this._lastId = entries.length ? entries[0][0].toString() : "0-0";
    }
  }

  /** @internal One XREAD: the events after the last one read (possibly none). */
  async _readBatch(): Promise<QueueEvent[]> {
    if (this._isClosed) {
      throw new ClosedError(`QueueEvents '${this._name}' is closed`);
    }
    await this.waitUntilReady();
    const client = this._redis();
    let reply: unknown;
    try {
      reply = await client.callBuffer(
        "XREAD",
        "COUNT",
        String(this._count),
        "BLOCK",
        String(this._blockMs),
        "STREAMS",
        this._key,
        this._lastId,
      );
    } catch (e) {
      throw typed(e);
    }
    const out: QueueEvent[] = [];
    if (!reply) {
      return out;
    }
    for (const [, entries] of reply as Array<[Buffer, Array<[Buffer, Buffer[]]>]>) {
      for (const [id, fields] of entries) {
        this._lastId = id.toString();
        out.push(parseEvent(fields ?? []));
      }
    }
    return out;
  }

  /** @internal Whether anyone wants events now. */
  _wanted(): boolean {
    if (this._isClosed) {
      return false;
    }
    if (this._waiter !== null) {
      return true;
    }
    return this.eventNames().some(
      (e) => e !== "newListener" && e !== "removeListener" && e !== "error",
    );
  }

  /** @internal Starts the read loop unless it runs. */
  _pump(): void {
    if (this._loop !== null || !this._wanted()) {
      return;
    }
    this._loop = this._run().finally(() => {
      this._loop = null;
      if (this._wanted()) {
        this._pump();
      }
    });
  }

  /** @internal */
  async _run(): Promise<void> {
    while (this._wanted()) {
      let batch: QueueEvent[];
      try {
        batch = await this._readBatch();
      } catch (e) {
        if (this._isClosed) {
          return;
        }
        const waiter = this._waiter;
        if (waiter !== null) {
          this._waiter = null;
          waiter.reject(e);
        }
        if (this.listenerCount("error") > 0) {
          this.emit("error", e);
        }
        if (!this._wanted()) {
          return;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, RETRY_MS);
          this._wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this._wake = null;
        continue;
      }
      if (this._isClosed) {
        return;
      }
      for (const ev of batch) {
        try {
          this.emit(ev.name, ev);
          this.emit("event", ev);
        } catch (e) {
          // A throwing listener fails as it would on a synchronous emit,
          // without stopping the reads of the other listeners.
          process.nextTick(() => {
            throw e;
          });
        }
      }
      this._deliver(batch);
    }
  }

  /** @internal Hands a batch to the iterator: the waiting call first, the rest buffered. */
  _deliver(batch: QueueEvent[]): void {
    const iterating = this._waiter !== null || this._iterating;
    if (!iterating) {
      return;
    }
    this._buffer.push(...batch);
    const waiter = this._waiter;
    if (waiter !== null && this._buffer.length > 0) {
      this._waiter = null;
      waiter.resolve({ value: this._buffer.shift() as QueueEvent, done: false });
    }
  }

  /** @internal Set once an iteration started: later batches are kept for it. */
  _iterating = false;

  // ---- async iteration -------------------------------------------------

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next event; done once close() is called. */
  next(): Promise<IteratorResult<QueueEvent>> {
    if (this._isClosed) {
      return Promise.resolve({ value: undefined, done: true });
    }
    this._iterating = true;
    const ev = this._buffer.shift();
    if (ev !== undefined) {
      return Promise.resolve({ value: ev, done: false });
    }
    if (this._waiter !== null) {
      return Promise.reject(
        new ClosedError("QueueEvents: next() called again before the previous call resolved"),
      );
    }
    return new Promise((resolve, reject) => {
      this._waiter = { resolve, reject };
      this._pump();
    });
  }

  /**
   * Ends an iteration (`break` in `for await`); the object stays usable and
   * a later iteration goes on after the last event read.
   */
  async return(): Promise<IteratorResult<QueueEvent>> {
    this._iterating = false;
    return { value: undefined, done: true };
  }

  // ---- closing -----------------------------------------------------

  /** `await using events = new QueueEvents(...)` closes it at scope exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this._close();
  }

  /** @internal */
  async _close(): Promise<void> {
    if (this._isClosed) {
      return;
    }
    this._isClosed = true;
    this._buffer = [];
    const waiter = this._waiter;
    this._waiter = null;
    waiter?.resolve({ value: undefined, done: true });
    const client = this._client;
    this._client = null;
    // Disconnecting fails a blocked XREAD at once.
    client?.disconnect();
    this._wake?.();
    const loop = this._loop;
    if (loop !== null) {
      await loop.catch(() => undefined);
    }
  }
}

// ---- result waiters ---------------------------------------------------

const LISTENER_BLOCK_MS = 1_000;
const LISTENER_IDLE_MS = 2_000;

/**
 * Wakes `waitForResult` callers when their job's `completed` event arrives.
 * One lazily started listener per Queue (XREAD from "$", one connection); it
 * stops after a few idle seconds without waiters, and on close().
 */
export class ResultWaiters {
  private readonly waiters = new Map<string, Set<(completed: boolean) => void>>();
  private events: QueueEventsBase | null = null;
  private idle: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly queueName: string,
    private readonly redisUrl: string,
  ) {}

  /**
   * A promise resolved with true once `completed` is seen for `jobId` (false
   * on close), and its unsubscribe function; null when events cannot be used
   * (then poll). Returns after the listener pinned its start id, so a
   * completion after this call is never missed.
   */
  async subscribe(jobId: string): Promise<{ done: Promise<boolean>; cancel: () => void } | null> {
    if (this.closed) {
      return null;
    }
    if (this.idle !== null) {
      clearTimeout(this.idle);
      this.idle = null;
    }
    let events = this.events;
    if (events === null) {
      events = this.events = new QueueEventsBase();
      events._init(this.queueName, {
        redisUrl: this.redisUrl,
        lastEventId: "$",
        blockMs: LISTENER_BLOCK_MS,
        count: 1000,
      });
      events.on("completed", (ev: QueueEvent) => this.wake(ev.jobId, true));
      events.on("error", () => undefined);
    }
    let resolve!: (completed: boolean) => void;
    const done = new Promise<boolean>((r) => (resolve = r));
    let set = this.waiters.get(jobId);
    if (set === undefined) {
      set = new Set();
      this.waiters.set(jobId, set);
    }
    set.add(resolve);
    const cancel = (): void => {
      const s = this.waiters.get(jobId);
      if (s !== undefined) {
        s.delete(resolve);
        if (s.size === 0) {
          this.waiters.delete(jobId);
        }
      }
      resolve(false);
      this.maybeIdle();
    };
    try {
      await events.waitUntilReady();
    } catch {
      cancel();
      return null;
    }
    return { done, cancel };
  }

  private wake(jobId: string | null, completed: boolean): void {
    if (jobId === null) {
      return;
    }
    const set = this.waiters.get(jobId);
    if (set !== undefined) {
      this.waiters.delete(jobId);
      for (const resolve of set) {
        resolve(completed);
      }
    }
  }

  private maybeIdle(): void {
    if (this.waiters.size > 0 || this.events === null || this.idle !== null) {
      return;
    }
    this.idle = setTimeout(() => {
      this.idle = null;
      if (this.waiters.size === 0 && this.events !== null) {
        const events = this.events;
        this.events = null;
        void events._close();
      }
    }, LISTENER_IDLE_MS);
    this.idle.unref();
  }

  /** Stops the listener and wakes every waiter (idempotent). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.idle !== null) {
      clearTimeout(this.idle);
      this.idle = null;
    }
    for (const set of this.waiters.values()) {
      for (const resolve of set) {
        resolve(false);
      }
    }
    this.waiters.clear();
    const events = this.events;
    this.events = null;
    await events?._close();
  }
}
