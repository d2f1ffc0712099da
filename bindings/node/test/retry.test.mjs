// Retries, the dead-letter queue, unrecoverable errors (subclasses too),
// undecodable payloads and DLQ replay.

import assert from "node:assert/strict";
import { test } from "node:test";
import { BackoffSpec, Queue, UnrecoverableError, Worker } from "../index.mjs";
import { key, qname, runUntil, useRedis, waitFor } from "./helpers.mjs";

const ctx = useRedis();

test("a failing job is retried with its backoff, then dead-lettered", async () => {
  const q = qname("retry");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const job = await queue.add("flaky", { x: 1 }, { attempts: 3, backoff: { type: "fixed", delay: 10 } });
  const attempts = [];
  const worker = new Worker(
    q,
    async (j) => {
      attempts.push(j.attempt);
      throw new Error(`boom ${j.attempt}`);
    },
    { redisUrl: ctx.url },
  );
  await runUntil(worker, async () => (await queue.peekDlq()).length === 1);
  assert.deepEqual(attempts, [1, 2, 3]);
  const [entry] = await queue.peekDlq();
  assert.equal(entry.reason, "retries_exhausted");
  assert.equal(entry.jobId, job.id);
  assert.equal(entry.name, "flaky");
  assert.deepEqual(entry.data, { x: 1 });
  assert.equal(typeof entry.dlqId, "string");
  assert.equal(typeof entry.sourceId, "string");
  assert.ok(Buffer.isBuffer(entry.payload));
  await queue.close();
});

test("a job that succeeds on a retry completes; maxAttempts is the queue-wide cap", async () => {
  const q = qname("recover");
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.add("once", 1, { backoff: 5 });
  const attempts = [];
  const worker = new Worker(
    q,
    async (j) => {
      attempts.push(j.attempt);
      if (j.attempt < 2) throw new TypeError("first run fails");
    },
    { redisUrl: ctx.url, maxAttempts: 2 },
  );
  await runUntil(worker, () => attempts.length === 2);
  await waitFor(async () => (await ctx.r.xlen(key(q, "stream"))) === 0);
  assert.deepEqual(await queue.peekDlq(), []);
  await queue.close();
});

test("UnrecoverableError, its subclasses and BullMQ's class skip retries", async () => {
  const q = qname("unrec");
  const queue = new Queue(q, { redisUrl: ctx.url });
  class MissingUser extends UnrecoverableError {}
  // A foreign class of the same name (as bullmq exports) counts too.
  class Foreign extends Error {}
  Object.defineProperty(Foreign, "name", { value: "UnrecoverableError" });
  await queue.addBulk([
    { name: "base", data: 1 },
    { name: "sub", data: 2 },
    { name: "foreign", data: 3 },
  ]);
  const runs = [];
  const worker = new Worker(
    q,
    async (j) => {
      runs.push(j.name);
      if (j.name === "base") throw new UnrecoverableError("no user");
      if (j.name === "sub") throw new MissingUser("no user either");
      throw new Foreign("bullmq style");
    },
    { redisUrl: ctx.url, maxAttempts: 5 },
  );
  await runUntil(worker, async () => (await queue.peekDlq()).length === 3);
  assert.deepEqual(runs.sort(), ["base", "foreign", "sub"]);
  const dlq = await queue.peekDlq();
  assert.deepEqual(dlq.map((e) => e.reason), ["unrecoverable", "unrecoverable", "unrecoverable"]);
  const sub = dlq.find((e) => e.name === "sub");
  assert.match(sub.detail ?? "", /MissingUser: no user either/);
  await queue.close();
});

test("events of a retried job: failed, retry-scheduled, dlq", async () => {
  const q = qname("retry-events");
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.add("ev", 1, { attempts: 2, backoff: BackoffSpec.fixed(5) });
  const worker = new Worker(q, async () => { throw new Error("nope"); }, { redisUrl: ctx.url });
  await runUntil(worker, async () => (await queue.peekDlq()).length === 1);
  const events = await ctx.r.xrange(key(q, "events"), "-", "+");
  const names = events.map(([, f]) => f[f.indexOf("e") + 1]);
  for (const name of ["active", "failed", "retry-scheduled", "dlq"]) {
    assert.ok(names.includes(name), `${name} in ${names}`);
  }
  await queue.close();
});

test("a payload that is not msgpack goes to the DLQ as decode_failed", async () => {
  const q = qname("decode");
  const queue = new Queue(q, { redisUrl: ctx.url });
  // An envelope whose payload bin holds bytes that are not msgpack (0xc1 is never used).
  const d = Buffer.concat([
    Buffer.from([0x94, 0xa3]),
    Buffer.from("bad"),
    Buffer.from([0xc4, 0x01, 0xc1, 0x01, 0x00]),
  ]);
  await ctx.r.xadd(key(q, "stream"), "*", "d", d, "n", "raw");
  let ran = false;
  const worker = new Worker(q, async () => void (ran = true), { redisUrl: ctx.url });
  await runUntil(worker, async () => (await queue.peekDlq()).length === 1);
  assert.equal(ran, false);
  const [entry] = await queue.peekDlq();
  assert.equal(entry.reason, "decode_failed");
  assert.equal(entry.jobId, "bad");
  await queue.close();
});

test("replayDlq moves entries back with their attempt reset", async () => {
  const q = qname("replay");
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.add("r", "again", { attempts: 1 });
  let fail = true;
  const seen = [];
  const worker = new Worker(
    q,
    async (j) => {
      seen.push(j.attempt);
      if (fail) throw new Error("first");
    },
    { redisUrl: ctx.url },
  );
  const running = worker.run();
  await waitFor(async () => (await queue.peekDlq()).length === 1);
  fail = false;
  assert.equal(await queue.replayDlq(10), 1);
  await waitFor(() => seen.length === 2);
  assert.deepEqual(seen, [1, 1]);
  assert.deepEqual(await queue.peekDlq(), []);
  assert.equal(await queue.replayDlq(), 0);
  await worker.close();
  await running;
  await queue.close();
});
