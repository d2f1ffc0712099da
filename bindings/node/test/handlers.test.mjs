// Handlers as users write them: async functions and plain functions, async
// context (AsyncLocalStorage) per job, errors thrown synchronously, fetch()
// against a real HTTP server, and per-job time limits with job.signal.

import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import { createServer } from "node:http";
import { test } from "node:test";
import { Queue, Worker } from "../index.mjs";
import { key, qname, runUntil, sleep, useRedis, waitFor } from "./helpers.mjs";

const ctx = useRedis();

async function events(q) {
  const rows = await ctx.r.xrange(key(q, "events"), "-", "+");
  return rows.map(([, f]) => {
    const o = {};
    for (let i = 0; i < f.length; i += 2) o[f[i]] = f[i + 1];
    return o;
  });
}

async function failed(q) {
  return (await events(q)).filter((e) => e.e === "failed");
}

test("each job has its own async context, copied from where run() started", async () => {
  const q = qname("als");
  const als = new AsyncLocalStorage();
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.addBulk(Array.from({ length: 20 }, (_, i) => ({ name: "a", data: i })));
  const seen = [];
  const mine = new Map();
  const worker = new Worker(
    q,
    async (job) => {
      seen.push(als.getStore()?.from);
      // Set synchronously in the handler's first step: must not leak into
      // the next job of the same batch.
      als.enterWith({ from: `job-${job.data}` });
      await sleep(5);
      mine.set(job.data, als.getStore()?.from);
    },
    { redisUrl: ctx.url, concurrency: 20 },
  );
  await als.run({ from: "run" }, () => runUntil(worker, () => mine.size === 20));
  assert.deepEqual(seen, Array(20).fill("run"));
  for (let i = 0; i < 20; i++) assert.equal(mine.get(i), `job-${i}`);
  await queue.close();
});

test("a plain function handler works, and a synchronous throw fails only its job", async () => {
  const q = qname("plain");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const jobs = await queue.addBulk(Array.from({ length: 6 }, (_, i) => ({ name: "p", data: i, attempts: 1 })));
  const worker = new Worker(
    q,
    (job) => {
      if (job.data === 2) throw new Error("sync boom");
      return job.data * 10;
    },
    { redisUrl: ctx.url, storeResults: true },
  );
  await runUntil(worker, async () => (await ctx.r.xlen(key(q, "dlq"))) === 1 && (await ctx.r.xlen(key(q, "stream"))) === 0);
  const results = await queue.getJobResultBulk(jobs.map((j) => j.id));
  assert.deepEqual(results, [0, 10, null, 30, 40, 50]);
  const f = await failed(q);
  assert.equal(f.length, 1);
  assert.equal(f[0].id, jobs[2].id);
  assert.match(f[0].reason, /sync boom/);
  await queue.close();
});

test("fetch() against a real server inside handlers", async () => {
  const server = createServer((req, res) => {
    const n = new URL(req.url, "http://x").searchParams.get("n");
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ n: Number(n) }));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${server.address().port}`;
  const q = qname("fetch");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const jobs = await queue.addBulk(Array.from({ length: 10 }, (_, i) => ({ name: "f", data: i })));
  const worker = new Worker(
    q,
    async (job) => {
      const res = await fetch(`${base}/echo?n=${job.data}`, { signal: job.signal });
      return (await res.json()).n;
    },
    { redisUrl: ctx.url, storeResults: true },
  );
  await runUntil(worker, async () => (await queue.getJobResultBulk(jobs.map((j) => j.id))).every((v) => v !== null));
  assert.deepEqual(await queue.getJobResultBulk(jobs.map((j) => j.id)), [...Array(10).keys()]);
  assert.deepEqual(await failed(q), []);
  await queue.close();
  await new Promise((r) => server.close(r));
});

test("a run past the worker's limit fails with a timeout reason, aborts job.signal, and is retried", async () => {
  const q = qname("limit");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const job = await queue.add("slow", {}, { attempts: 2, backoff: 0 });
  const aborted = [];
  const worker = new Worker(
    q,
    (j) =>
      new Promise((resolve) => {
        j.signal.addEventListener("abort", () => {
          aborted.push([j.attempt, j.signal.reason?.name]);
          resolve("late");
        });
      }),
    { redisUrl: ctx.url, jobTimeoutMs: 200, storeResults: true },
  );
  await runUntil(worker, async () => (await ctx.r.xlen(key(q, "dlq"))) === 1);
  assert.deepEqual(aborted, [
    [1, "TimeoutError"],
    [2, "TimeoutError"],
  ]);
  const f = await failed(q);
  assert.deepEqual(
    f.map((e) => e.attempt),
    ["1", "2"],
  );
  for (const e of f) {
    assert.equal(e.id, job.id);
    assert.match(e.reason, /^timeout: .*200 ms/);
  }
  // The late "late" result was ignored: nothing stored for a failed job.
  assert.equal(await queue.getJobResult(job.id), null);
  await queue.close();
});

test("a job's own timeoutMs overrides the worker's", async () => {
  const q = qname("override");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const short = await queue.add("a", 1000, { timeoutMs: 100, attempts: 1 });
  const fine = await queue.add("b", 300);
  const longer = await queue.add("c", 500, { timeoutMs: 10_000 });
  const worker = new Worker(
    q,
    async (j) => {
      await sleep(j.data);
      return "done";
    },
    { redisUrl: ctx.url, jobTimeoutMs: 5_000, storeResults: true },
  );
  await runUntil(
    worker,
    async () =>
      (await ctx.r.xlen(key(q, "dlq"))) === 1 &&
      (await queue.getJobResultBulk([fine.id, longer.id])).every((v) => v === "done"),
  );
  const f = await failed(q);
  assert.deepEqual(
    f.map((e) => e.id),
    [short.id],
  );
  assert.match(f[0].reason, /100 ms/);
  await queue.close();
});

test("a timed-out job frees its slot for the next job", async () => {
  const q = qname("slot");
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.add("stuck", "stuck", { timeoutMs: 150, attempts: 1 });
  await queue.add("next", "next");
  const done = [];
  let release;
  const stuck = new Promise((r) => (release = r));
  const worker = new Worker(
    q,
    async (j) => {
      if (j.data === "stuck") await stuck; // never ends on its own
      done.push(j.data);
    },
    { redisUrl: ctx.url, concurrency: 1 },
  );
  await runUntil(worker, () => done.includes("next"));
  release();
  await waitFor(async () => (await ctx.r.xlen(key(q, "dlq"))) === 1);
  await queue.close();
});
