// Conformance driver for the Node package (`chasquimq`, the built package in
// bindings/node).
//
// Executes conformance vectors through the public API and reports what
// happened: one JSON request per line on stdin, one JSON reply per line on
// stdout (see conformance/README.md, "Driver protocol"). Its twin is
// python_driver.py; keep the two in step.
//
//     node conformance/drivers/node_driver.mjs --api api.json
//
// Vectors name calls and parameters with the spec's Python names; the call
// table (conformance/api_table.py) gives each one's Node name and kind
// (positional, or a key of the trailing options object). Values come back
// with the spec's Python names too (camelCase keys of records and event
// fields become snake_case), so both drivers print the same JSON.

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";

const PKG = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bindings", "node");
const chasqui = await import(pathToFileURL(join(PKG, "index.mjs")).href);
const requirePkg = createRequire(join(PKG, "package.json"));
// The test clock and id seed: private functions of the native module (the
// same module instance the package loaded), not part of the package's API.
const native = requirePkg("./native/index.js");
const Redis = requirePkg("ioredis").default ?? requirePkg("ioredis");

class DriverError extends Error {}

const snake = (s) => s.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());

function hex(b) {
  return Buffer.from(b.buffer ?? b, b.byteOffset ?? 0, b.byteLength ?? b.length).toString("hex");
}

function canon(v, api) {
  if (v === null || v === undefined) return null;
  if (typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (v instanceof Uint8Array) return { $bytes: hex(v) };
  if (Array.isArray(v)) return v.map((x) => canon(x, api));
  if (v instanceof Map) {
    const out = {};
    for (const [k, x] of v) out[String(k)] = canon(x, api);
    return out;
  }
  const name = v.constructor?.name;
  const fields = name ? api.dataclasses[name] : undefined;
  if (fields) {
    const out = { $type: name };
    for (const f of fields) {
      let x = v[f.node_name];
      // QueueEvent.fields names its keys in camelCase (spec: node doc).
      if (name === "QueueEvent" && f.name === "fields") x = snakeKeys(x);
      out[f.name] = canon(x, api);
    }
    return out;
  }
  if (typeof v === "object" && (v.constructor === Object || v.constructor === undefined)) {
    const out = {};
    for (const k of Object.keys(v)) out[k] = canon(v[k], api);
    return out;
  }
  return { $repr: name ?? typeof v };
}

function snakeKeys(o) {
  const out = {};
  for (const k of Object.keys(o ?? {})) out[snake(k)] = o[k];
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Run {
  constructor(req, api) {
    this.req = req;
    this.api = api;
    this.vector = req.vector;
    this.url = req.redis_url;
    this.queueName = this.vector.queue;
    this.r = new Redis(this.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
    this.queue = null;
    this.saved = {};
  }

  key(suffix) {
    return `{chasqui:${this.queueName}}:${suffix}`;
  }

  async serverMs() {
    const [s, us] = await this.r.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  }

  // -- values ----------------------------------------------------------------

  resolve(v) {
    if (Array.isArray(v)) return v.map((x) => this.resolve(x));
    if (v === null || typeof v !== "object") return v;
    if ("$new" in v) return this.callFactory(v.$new, v.args ?? {});
    if ("$bytes" in v) return Buffer.from(v.$bytes, "hex");
    if ("$set" in v) return new Set(v.$set); // not msgpack-encodable in either language
    if ("$timedelta_ms" in v) return v.$timedelta_ms; // Node's durations are ms
    if ("$ref" in v) {
      const obj = this.saved[v.$ref];
      if (!("field" in v)) return obj;
      const cls = this.api.dataclasses[obj.constructor.name] ?? [];
      const f = cls.find((x) => x.name === v.field);
      return obj[f ? f.node_name : v.field];
    }
    const out = {};
    for (const k of Object.keys(v)) out[k] = this.resolve(v[k]);
    return out;
  }

  /** Positional arguments, and the options object (null when empty). */
  split(call, args) {
    const names = new Set(call.params.map((p) => p.name));
    const unknown = Object.keys(args).filter((k) => !names.has(k));
    if (unknown.length) throw new DriverError(`${call.op} has no parameter ${unknown}`);
    const pos = [];
    let opts = null;
    call.params.forEach((p, i) => {
      if (!(p.name in args)) return;
      let value = this.resolve(args[p.name]);
      if (p.name === "jobs" && Array.isArray(value)) {
        // add_bulk entries take Queue.add's parameters as keys.
        value = value.map((j) => {
          const o = {};
          for (const k of Object.keys(j)) o[this.api.bulk_keys[k] ?? k] = j[k];
          return o;
        });
      }
      if (p.kind === "positional") {
        if (pos.length !== i) throw new DriverError(`${call.op}: positional ${p.name} after a gap`);
        pos.push(value);
      } else {
        opts ??= {};
        opts[p.node_name] = value;
      }
    });
    return [pos, opts];
  }

  callFactory(name, args) {
    const call = this.api.calls[name];
    const [pos, opts] = this.split(call, args);
    const cls = chasqui[call.class];
    return opts === null ? cls[call.node_name](...pos) : cls[call.node_name](...pos, opts);
  }

  defaultQueue() {
    if (this.queue === null) this.queue = new chasqui.Queue(this.queueName, { redisUrl: this.url });
    return this.queue;
  }

  // -- operations ------------------------------------------------------------

  async op(op) {
    let value;
    try {
      value = await this.dispatch(op.call, op.args ?? {}, op);
    } catch (e) {
      if (e instanceof DriverError) throw e;
      if (e instanceof chasqui.ChasquiError) return { error: e.code };
      return { error: `foreign:${e?.name}: ${e?.message}` };
    }
    if ("save" in op) this.saved[op.save] = value;
    return { result: canon(value, this.api) };
  }

  async dispatch(name, args, op) {
    if (name === "redis") {
      const argv = args.argv.map((a) => this.resolveArg(a));
      await this.r.call(...argv);
      return null;
    }
    if (name === "sleep") {
      await sleep(args.ms);
      return null;
    }
    if (name === "worker.run") return this.workerRun(op);
    if (name === "events.collect") return this.eventsCollect(args);
    const call = this.api.calls[name];
    if (!call) throw new DriverError(`unknown call ${name}`);
    if (call.kind === "factory") return this.callFactory(name, args);
    if (call.kind === "ctor") {
      args = { ...args };
      if (!("redis_url" in args)) args.redis_url = this.url;
      let obj;
      if (call.class === "Worker" && !("handler" in args)) {
        obj = this.makeWorker(args, { returns: null }, []);
      } else {
        const [pos, opts] = this.split(call, args);
        obj = new chasqui[call.class](...pos, ...(opts === null ? [] : [opts]));
      }
      if (call.class === "Queue") this.queue = obj;
      else if (typeof obj.close === "function") await obj.close();
      return null;
    }
    const [pos, opts] = this.split(call, args);
    const target = call.class === "Job" ? this.saved[op.target] : this.defaultQueue();
    let out = opts === null ? target[call.node_name](...pos) : target[call.node_name](...pos, opts);
    out = await out;
    if (name === "queue.peek_dlq") {
      // Records are named in camelCase (`dlqId`); the user data stays as is.
      out = out.map((e) => {
        const o = snakeKeys(e);
        if ("data" in e) o.data = e.data;
        return o;
      });
    }
    return out;
  }

  resolveArg(a) {
    if (a !== null && typeof a === "object" && "key" in a) return this.key(a.key);
    if (a !== null && typeof a === "object" && "hex" in a) return Buffer.from(a.hex, "hex");
    return String(a);
  }

  makeWorker(args, behaviour, seen) {
    const returns = this.resolve(behaviour.returns ?? null);
    const handler = async (job) => {
      seen.push({
        id: job.id,
        name: job.name,
        data: canon(job.data, this.api),
        attempt: job.attempt,
        created_at_ms: job.createdAtMs,
      });
      const below = job.attempt < (behaviour.until_attempt ?? Infinity);
      if (behaviour.hangs && below) {
        // Until the time limit fails the run (job.signal aborts then).
        await new Promise((resolve) => job.signal.addEventListener("abort", resolve));
      }
      const raises = behaviour.raises;
      if (raises && below) {
        const cls = raises === "unrecoverable" ? chasqui.UnrecoverableError : Error;
        throw new cls(behaviour.message ?? "failed");
      }
      return returns;
    };
    args = { ...args, handler };
    if (!("queue_name" in args)) args.queue_name = this.queueName;
    const [pos, opts] = this.split(this.api.calls["worker.new"], args);
    return new chasqui.Worker(...pos, ...(opts === null ? [] : [opts]));
  }

  async workerRun(op) {
    const args = { ...(op.args ?? {}) };
    if (!("redis_url" in args)) args.redis_url = this.url;
    const seen = [];
    const worker = this.makeWorker(args, op.handler ?? {}, seen);
    let failed = null;
    let done = false;
    const running = worker.run().then(
      () => (done = true),
      (e) => {
        done = true;
        failed = e;
      },
    );
    const until = op.until ?? {};
    try {
      const deadline = Date.now() + (op.timeout_ms ?? 15000);
      while (!(await this.satisfied(until, seen))) {
        if (failed) throw failed;
        if (done) throw new DriverError("worker.run returned before `until` held");
        if (Date.now() > deadline) return { timeout: until, observations: seen };
        await sleep(20);
      }
    } finally {
      await worker.close();
      await running;
    }
    return seen.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.attempt - b.attempt));
  }

  async satisfied(until, seen) {
    for (const [suffix, n] of Object.entries(until.xlen ?? {})) {
      if ((await this.r.xlen(this.key(suffix))) !== n) return false;
    }
    for (const [suffix, n] of Object.entries(until.zcard ?? {})) {
      if ((await this.r.zcard(this.key(suffix))) !== n) return false;
    }
    if ("pending" in until) {
      let pending = 0;
      try {
        pending = Number((await this.r.xpending(this.key("stream"), "default"))[0]);
      } catch {
        pending = 0;
      }
      if (pending !== until.pending) return false;
    }
    for (const suffix of until.exists ?? []) {
      if (!(await this.r.exists(this.key(suffix)))) return false;
    }
    return seen.length >= (until.observations ?? 0);
  }

  async eventsCollect(args) {
    const want = await this.r.xlen(this.key("events"));
    args = { ...args };
    if (!("queue_name" in args)) args.queue_name = this.queueName;
    if (!("redis_url" in args)) args.redis_url = this.url;
    const [pos, opts] = this.split(this.api.calls["events.new"], args);
    const events = new chasqui.QueueEvents(...pos, ...(opts === null ? [] : [opts]));
    const out = [];
    const timer = setTimeout(() => events.close(), 15000);
    try {
      if (want > 0) {
        for await (const ev of events) {
          out.push(ev);
          if (out.length >= want) break;
        }
      }
    } finally {
      clearTimeout(timer);
      await events.close();
    }
    return out;
  }

  // -- the request -----------------------------------------------------------

  async execute() {
    const req = this.req;
    const clock = this.vector.clock;
    native._testingSetClockMs(clock ? clock.now_ms : null);
    native._testingSetIdSeed(clock ? clock.id_seed + req.phase_index : null);
    try {
      if (req.flush) await this.r.flushall();
      const t0 = await this.serverMs();
      const results = {};
      for (const [i, op] of this.vector.operations.entries()) {
        if ((op.phase ?? "produce") === req.phase) results[String(i)] = await this.op(op);
      }
      if (this.queue !== null) await this.queue.close();
      const t1 = await this.serverMs();
      return { results, t0, t1, redis: await this.dump() };
    } finally {
      native._testingSetClockMs(null);
      native._testingSetIdSeed(null);
      this.r.disconnect();
    }
  }

  /** Every key, raw: bytes as hex, in Redis's order where it has one. */
  async dump() {
    const out = {};
    const keys = (await this.r.keysBuffer("*")).sort(Buffer.compare);
    for (const kb of keys) {
      const k = kb.toString("utf8");
      const t = await this.r.type(kb);
      const entry = { type: t, pttl: await this.r.pttl(kb) };
      if (t === "string") {
        entry.value = hex(await this.r.getBuffer(kb));
      } else if (t === "stream") {
        const rows = await this.r.xrangeBuffer(kb, "-", "+");
        entry.entries = rows.map(([id, flat]) => {
          const fields = [];
          for (let i = 0; i < flat.length; i += 2) fields.push([hex(flat[i]), hex(flat[i + 1])]);
          return { id: id.toString(), fields };
        });
        const groups = await this.r.call("XINFO", "GROUPS", kb);
        entry.groups = groups.map((flat) => {
          const g = {};
          for (let i = 0; i < flat.length; i += 2) g[String(flat[i])] = flat[i + 1];
          return { name: String(g.name), consumers: Number(g.consumers), pending: Number(g.pending) };
        });
      } else if (t === "zset") {
        const flat = await this.r.zrangeBuffer(kb, 0, -1, "WITHSCORES");
        entry.members = [];
        for (let i = 0; i < flat.length; i += 2) {
          entry.members.push([hex(flat[i]), String(Number(flat[i + 1].toString()))]);
        }
      } else if (t === "hash") {
        const flat = await this.r.callBuffer("HGETALL", kb);
        entry.fields = [];
        for (let i = 0; i < flat.length; i += 2) entry.fields.push([hex(flat[i]), hex(flat[i + 1])]);
      } else {
        throw new DriverError(`unexpected key type ${t} of ${k}`);
      }
      out[k] = entry;
    }
    return out;
  }
}

function parseArgs() {
  const i = process.argv.indexOf("--api");
  if (i < 0) {
    process.stderr.write("usage: node node_driver.mjs --api api.json\n");
    process.exit(2);
  }
  return JSON.parse(readFileSync(process.argv[i + 1], "utf8"));
}

const api = parseArgs();
process.stdout.write(JSON.stringify({ ready: "node", version: chasqui.version() }) + "\n");
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  let reply;
  try {
    reply = await new Run(JSON.parse(line), api).execute();
  } catch (e) {
    reply = { crash: String(e?.stack ?? e) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
