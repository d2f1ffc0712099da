// Worker lifecycle: batching, concurrency, close while running (graceful
// drain, shutdown deadline, recovery by another worker), run() twice.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Queue, Worker } from "../index.mjs";
import { key, qname, runUntil, sleep, startRedis, useRedis, waitFor } from "./helpers.mjs";

const ctx = useRedis();

test("jobs arrive in batches and settle in few calls", async () => {
  const q = qname("batch");
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.addBulk(Array.from({ length: 500 }, (_, i) => ({ name: "b", data: i })));
  let done = 0;
  const worker = new Worker(q, async () => void done++, { redisUrl: ctx.url });
  const native = worker._native;
  const batches = [];
  const settles = [];
  const nextBatch = native.nextBatch.bind(native);
  native.nextBatch = async () => {
    const b = await nextBatch();
    if (b) batches.push(b.length);
    return b;
  };
  const settle = native.settle.bind(native);
  native.settle = (outcomes) => {
    settles.push(outcomes.length);
    return settle(outcomes);
  };
  await runUntil(worker, () => done === 500);
  assert.equal(batches.reduce((a, b) => a + b, 0), 500);
  assert.equal(settles.reduce((a, b) => a + b, 0), 500);
  assert.ok(batches.length < 100, `${batches.length} batches`);
  assert.ok(settles.length < 100, `${settles.length} settle calls`);
  await waitFor(async () => (await ctx.r.xlen(key(q, "stream"))) === 0);
  await queue.close();
});

test("concurrency caps the handlers in flight", async () => {
  const q = qname("conc");
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.addBulk(Array.from({ length: 20 }, (_, i) => ({ name: "c", data: i })));
  let now = 0;
  let peak = 0;
  let done = 0;
  const worker = new Worker(
    q,
    async () => {
      now++;
      peak = Math.max(peak, now);
      await sleep(20);
      now--;
      done++;
    },
    { redisUrl: ctx.url, concurrency: 3 },
  );
  await runUntil(worker, () => done === 20);
  assert.ok(peak <= 3, `peak ${peak}`);
  assert.ok(peak >= 2, `peak ${peak}`);
  await queue.close();
});

test("close while running lets in-flight handlers finish", async () => {
  const q = qname("drain");
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.add("slow", 1);
  let started = false;
  let finished = false;
  const worker = new Worker(
    q,
    async () => {
      started = true;
      await sleep(300);
      finished = true;
      return "ok";
    },
    { redisUrl: ctx.url },
  );
  const running = worker.run();
  const again = worker.run(); // awaits the same loop, starts no second one
  await waitFor(() => started);
  assert.equal(worker.isRunning, true);
  await worker.close();
  await worker.close();
  await running;
  await again;
  assert.equal(finished, true);
  assert.equal(worker.isRunning, false);
  await waitFor(async () => (await ctx.r.xlen(key(q, "stream"))) === 0);
  await queue.close();
});

test("past the shutdown deadline a job is abandoned, stays pending, and is recovered", async () => {
  const q = qname("abandon");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const job = await queue.add("stuck", 1);
  let release;
  const stuck = new Promise((r) => (release = r));
  let runs = 0;
  const first = new Worker(
    q,
    async () => {
      runs++;
      await stuck;
    },
    { redisUrl: ctx.url, shutdownTimeoutMs: 100, claimMinIdleMs: 300 },
  );
  const running = first.run();
  await waitFor(() => runs === 1);
  const t0 = Date.now();
  await first.close();
  await running;
  assert.ok(Date.now() - t0 < 3_000);
  const pending = await ctx.r.xpending(key(q, "stream"), "default");
  assert.equal(pending[0], 1, "the abandoned job stays pending");
  assert.deepEqual(await queue.peekDlq(), []);
  release(); // the late outcome of the abandoned run is ignored
  const recovered = [];
  const second = new Worker(q, async (j) => void recovered.push(j), {
    redisUrl: ctx.url,
    claimMinIdleMs: 300,
  });
  await runUntil(second, () => recovered.length === 1);
  assert.equal(recovered[0].id, job.id);
  assert.equal(recovered[0].attempt, 2, "a redelivery counts as an attempt");
  await queue.close();
});

test("close before run: run() returns at once", async () => {
  const worker = new Worker(qname("never"), async () => undefined, { redisUrl: ctx.url });
  await worker.close();
  await worker.run();
  assert.equal(worker.isRunning, false);
  assert.equal(worker.name.startsWith("t"), true);
});

test("a worker on an unreachable server rejects run() with RedisConnectionError", async () => {
  const worker = new Worker(qname("down"), async () => undefined, {
    redisUrl: "redis://127.0.0.1:1",
    startTimeoutMs: 0,
  });
  await assert.rejects(worker.run(), (e) => {
    assert.equal(e.code, "connection");
    assert.match(e.message, /127\.0\.0\.1:1 refused the connection/);
    assert.doesNotMatch(e.message, /Os \{/);
    return true;
  });
  // Not poisoned: a second run() tries again (and fails the same way).
  await assert.rejects(worker.run(), { code: "connection" });
  assert.equal(worker.isRunning, false);
});

test("run() waits for Redis within startTimeoutMs, and close() ends the wait", async () => {
  const srv = await startRedis();
  const port = srv.port;
  await srv.stop(); // the port is free now; a server comes back on it below
  const q = qname("later");
  const url = `redis://127.0.0.1:${port}`;
  const seen = [];
  const worker = new Worker(q, async (job) => void seen.push(job.id), { redisUrl: url });
  const running = worker.run();
  let settled = false;
  void running.finally(() => (settled = true)).catch(() => undefined);
  await sleep(1000);
  assert.equal(settled, false, "run() gave up while Redis was down");
  const again = await startRedis({ args: ["--port", String(port)] });
  try {
    const queue = new Queue(q, { redisUrl: url });
    const job = await queue.add("after-start", 1);
    await waitFor(() => seen.includes(job.id), { what: "the job added after Redis came up" });
    await queue.close();
  } finally {
    await worker.close();
    await running;
    await again.stop();
  }
  const waiting = new Worker(qname("never-up"), async () => undefined, { redisUrl: url });
  const waitingRun = waiting.run();
  await sleep(300);
  const t0 = Date.now();
  await waiting.close();
  await waitingRun; // resolves, like any run() after close()
  assert.ok(Date.now() - t0 < 3000);
});

test("Symbol.asyncDispose closes (what `await using` calls)", async () => {
  const q = qname("dispose");
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.add("d", 1);
  let done = false;
  const worker = new Worker(q, async () => void (done = true), { redisUrl: ctx.url });
  const running = worker.run();
  await waitFor(() => done);
  await worker[Symbol.asyncDispose]();
  assert.equal(worker.isRunning, false);
  await running;
  await queue[Symbol.asyncDispose]();
  assert.equal(queue.isClosed, true);
});
