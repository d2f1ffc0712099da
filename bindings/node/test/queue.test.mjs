// Queue -> Worker round trips, job names, the wire bytes, BullMQ-habit
// options and stored results, against a real redis-server.

import assert from "node:assert/strict";
import { test } from "node:test";
import { BackoffSpec, Job, Queue, Worker } from "../index.mjs";
import { key, qname, runUntil, sleep, useRedis, waitFor } from "./helpers.mjs";

const ctx = useRedis();

test("add and a worker round trip: data, name, attempt, id", async () => {
  const q = qname("rt");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const added = await queue.add("send-email", { to: "a@x", n: 1, nested: [1, "two", null] });
  assert.ok(added instanceof Job);
  assert.match(added.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(added.name, "send-email");
  assert.equal(added.attempt, 0);
  assert.equal(added.attemptsMade, 0);
  assert.ok(Math.abs(added.createdAtMs - Date.now()) < 60_000);
  const seen = [];
  const worker = new Worker(q, async (job) => void seen.push(job), { redisUrl: ctx.url });
  assert.equal(worker.isRunning, false);
  await runUntil(worker, () => seen.length === 1);
  assert.equal(worker.isClosed, true);
  const [job] = seen;
  assert.ok(job instanceof Job);
  assert.equal(job.id, added.id);
  assert.equal(job.name, "send-email");
  assert.deepEqual(job.data, { to: "a@x", n: 1, nested: [1, "two", null] });
  assert.equal(job.attempt, 1);
  assert.equal(job.createdAtMs, added.createdAtMs);
  // Acked entries are deleted from the stream.
  await waitFor(async () => (await ctx.r.xlen(key(q, "stream"))) === 0, { what: "ack" });
  await queue.close();
});

test("addBulk: one pipeline, order kept, flat and BullMQ opts entries", async () => {
  const q = qname("bulk");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const jobs = await queue.addBulk([
    ...Array.from({ length: 200 }, (_, i) => ({ name: `n${i % 3}`, data: { i } })),
    { name: "opt", data: "x", opts: { jobId: "bulk-opt-1", attempts: 2 } },
    { name: "flat", data: "y", jobId: "bulk-flat-1" },
  ]);
  assert.equal(jobs.length, 202);
  assert.deepEqual(jobs[5].data, { i: 5 });
  assert.equal(jobs[200].id, "bulk-opt-1");
  assert.equal(jobs[201].id, "bulk-flat-1");
  const seen = new Map();
  const worker = new Worker(q, async (job) => void seen.set(job.id, job), { redisUrl: ctx.url });
  await runUntil(worker, () => seen.size === 202);
  assert.equal(seen.get(jobs[7].id).name, "n1");
  assert.equal(seen.get("bulk-opt-1").data, "x");
  await queue.close();
});

test("names: empty names omit `n`, UTF-8 names round trip", async () => {
  const q = qname("names");
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.add("", 1);
  await queue.add("ñandú-✓", 2);
  const entries = await ctx.r.xrangeBuffer(key(q, "stream"), "-", "+");
  assert.deepEqual(
    entries.map(([, f]) => f.filter((_, i) => i % 2 === 0).map(String)),
    [["d"], ["d", "n"]],
  );
  assert.equal(entries[1][1][3].toString("utf8"), "ñandú-✓");
  const seen = [];
  const worker = new Worker(q, async (job) => void seen.push([job.name, job.data]), { redisUrl: ctx.url });
  await runUntil(worker, () => seen.length === 2);
  assert.deepEqual(seen.sort(), [["", 1], ["ñandú-✓", 2]]);
  await queue.close();
});

test("wire bytes: the envelope Python writes, user data msgpack inside a bin", async () => {
  const q = qname("wire");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const job = await queue.add("send-email", { to: "a@x", n: 1 });
  const retried = await queue.add("send-email", { to: "a@x", n: 1 }, {
    attempts: 5,
    backoff: BackoffSpec.exponential(250, { multiplier: 3, maxMs: 10_000, jitterMs: 50 }),
  });
  const entries = await ctx.r.xrangeBuffer(key(q, "stream"), "-", "+");
  const [, f1] = entries[0];
  assert.deepEqual(f1.map((b, i) => (i % 2 ? null : b.toString())).filter(Boolean), ["d", "n"]);
  assert.equal(f1[3].toString(), "send-email");
  const d = f1[1];
  const user = Buffer.from("82a2746fa36140" + "78a16e01", "hex");
  const expected = Buffer.concat([
    Buffer.from([0x94, 0xba]),
    Buffer.from(job.id),
    Buffer.from([0xc4, user.length]),
    user,
    Buffer.from([0xcf]),
  ]);
  assert.deepEqual(d.subarray(0, expected.length), expected);
  assert.equal(d.readBigUInt64BE(expected.length), BigInt(job.createdAtMs));
  assert.equal(d[expected.length + 8], 0x00);
  assert.equal(d.length, expected.length + 9);

  const d2 = entries[1][1][1];
  assert.equal(d2[0], 0x95);
  const tail = Buffer.concat([
    Buffer.from([0x92, 0x05, 0x95, 0xab]),
    Buffer.from("exponential"),
    Buffer.from([0xcc, 0xfa, 0xcd, 0x27, 0x10, 0xcb, 0x40, 0x08, 0, 0, 0, 0, 0, 0, 0x32]),
  ]);
  assert.deepEqual(d2.subarray(d2.length - tail.length), tail);
  assert.equal(retried.name, "send-email");
  await queue.close();
});

test("payload types: strings are str, Buffers are bin, Maps are maps", async () => {
  const q = qname("types");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const data = { s: "é", b: Buffer.from([1, 2, 3]), f: 1.5, big: 2 ** 40, neg: -7, t: true };
  await queue.add("t", data);
  await queue.add("m", new Map([[1, "one"], ["k", [true]]]));
  const entries = await ctx.r.xrangeBuffer(key(q, "stream"), "-", "+");
  const d = entries[0][1][1];
  const payload = d.subarray(2 + 26 + 2, 2 + 26 + 2 + d[2 + 26 + 1]);
  // {s: "é"} -> a1 73 a2 c3 a9 ; b -> c4 03 01 02 03 ; 1.5 -> cb 3ff8...
  assert.ok(payload.includes(Buffer.from("a173a2c3a9", "hex")));
  assert.ok(payload.includes(Buffer.from("a162c403010203", "hex")));
  assert.ok(payload.includes(Buffer.from("a166cb3ff8000000000000", "hex")));
  assert.ok(payload.includes(Buffer.from("a3626967cf0000010000000000", "hex")));
  const seen = [];
  const worker = new Worker(q, async (job) => void seen.push(job.data), { redisUrl: ctx.url });
  await runUntil(worker, () => seen.length === 2);
  const got = seen.find((x) => "s" in x);
  assert.equal(got.s, "é");
  assert.deepEqual(Buffer.from(got.b), Buffer.from([1, 2, 3]));
  assert.equal(got.big, 2 ** 40);
  assert.deepEqual(seen.find((x) => !("s" in x)), { 1: "one", k: [true] });
  await queue.close();
});

test("jobId is idempotent on the delayed path; addUnique requires it", async () => {
  const q = qname("unique");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const a = await queue.add("x", 1, { jobId: "order-42", delay: 60_000 });
  const b = await queue.addUnique("x", 2, { jobId: "order-42", delayMs: 60_000 });
  assert.equal(a.id, "order-42");
  assert.equal(b.id, "order-42");
  assert.equal(await ctx.r.zcard(key(q, "delayed")), 1);
  await assert.rejects(queue.addUnique("x", 3), { code: "invalid_type" });
  await queue.close();
});

test("results: storeResults, getJobResult(Bulk), waitForResult", async () => {
  const q = qname("results");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const jobs = await queue.addBulk([
    { name: "a", data: 2 },
    { name: "none", data: 0 },
  ]);
  const worker = new Worker(
    q,
    async (job) => (job.name === "none" ? undefined : { doubled: job.data * 2, bin: Buffer.from("hi") }),
    { redisUrl: ctx.url, storeResults: true },
  );
  // A job that stores no result is told apart from "not done yet" by its
  // `completed` event, so that wait starts before the job runs.
  const noneResult = jobs[1].waitForResult({ timeoutMs: 10_000 });
  await sleep(200);
  const running = worker.run();
  const result = await jobs[0].waitForResult({ timeoutMs: 10_000 });
  assert.equal(result.doubled, 4);
  assert.equal(Buffer.from(result.bin).toString(), "hi");
  assert.equal(await noneResult, null);
  assert.deepEqual((await queue.getJobResult(jobs[0].id)).doubled, 4);
  const bulk = await queue.getJobResultBulk([jobs[0].id, jobs[1].id, "missing"]);
  assert.equal(bulk[0].doubled, 4);
  assert.equal(bulk[1], null);
  assert.equal(bulk[2], null);
  // The stored bytes are msgpack of the return value, with a TTL.
  const raw = await ctx.r.getBuffer(key(q, `result:${jobs[0].id}`));
  assert.equal(raw[0], 0x82);
  assert.ok((await ctx.r.ttl(key(q, `result:${jobs[0].id}`))) > 0);
  await worker.close();
  await running;
  // A job given to a handler has no queue to poll.
  const orphan = new Job({ id: "x", name: "", data: null, attempt: 1, createdAtMs: 0 });
  await assert.rejects(orphan.waitForResult(), { code: "closed" });
  // No result in time.
  const late = await queue.add("never", 1);
  await assert.rejects(late.waitForResult({ timeoutMs: 200, pollIntervalMs: 50 }), { code: "timeout" });
  await queue.close();
});

test("a closed Queue raises ClosedError; close is idempotent", async () => {
  const queue = new Queue(qname("closed"), { redisUrl: ctx.url });
  assert.equal(queue.isClosed, false);
  await queue.close();
  await queue.close();
  assert.equal(queue.isClosed, true);
  await assert.rejects(queue.add("x", 1), { code: "closed", name: "ClosedError" });
});

test("an unreachable server is a RedisConnectionError", async () => {
  const queue = new Queue(qname("down"), { redisUrl: "redis://127.0.0.1:1" });
  await assert.rejects(queue.add("x", 1), { code: "connection" });
  await queue.close();
});
