// Delayed jobs (delayMs, BullMQ's delay, a Date) and cancelDelayed.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Queue, Worker } from "../index.mjs";
import { key, qname, runUntil, useRedis } from "./helpers.mjs";

const ctx = useRedis();

test("delayMs, delay and a Date schedule later delivery", async () => {
  const q = qname("delayed");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const t0 = Date.now();
  await queue.add("ms", 1, { delayMs: 300 });
  await queue.add("bullmq", 2, { delay: 300 });
  await queue.add("date", 3, { delayMs: new Date(Date.now() + 300) });
  assert.equal(await ctx.r.zcard(key(q, "delayed")), 3);
  assert.equal(await ctx.r.xlen(key(q, "stream")), 0);
  // The delayed member: u32le name length, name, envelope.
  const [member] = await ctx.r.zrangeBuffer(key(q, "delayed"), 0, 0);
  const len = member.readUInt32LE(0);
  assert.ok(["ms", "bullmq", "date"].includes(member.subarray(4, 4 + len).toString()));
  const seen = [];
  const worker = new Worker(q, async (j) => void seen.push([j.name, Date.now() - t0]), { redisUrl: ctx.url });
  await runUntil(worker, () => seen.length === 3);
  for (const [, at] of seen) {
    assert.ok(at >= 250, `delivered after ${at} ms`);
  }
  const events = await ctx.r.xrange(key(q, "events"), "-", "+");
  const delayed = events.filter(([, f]) => f[1] === "delayed");
  assert.equal(delayed.length, 3);
  assert.ok(delayed[0][1].includes("delay_ms"));
  await queue.close();
});

test("cancelDelayed removes a waiting job once", async () => {
  const q = qname("cancel");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const job = await queue.add("later", 1, { delay: 60_000, jobId: "cancel-me" });
  assert.equal(job.id, "cancel-me");
  assert.equal(await queue.cancelDelayed("cancel-me"), true);
  assert.equal(await queue.cancelDelayed("cancel-me"), false);
  assert.equal(await queue.cancelDelayed("never-existed"), false);
  assert.equal(await ctx.r.zcard(key(q, "delayed")), 0);
  await queue.close();
});

test("a delay longer than maxDelaySecs is refused", async () => {
  const queue = new Queue(qname("maxdelay"), { redisUrl: ctx.url, maxDelaySecs: 10 });
  await assert.rejects(queue.add("x", 1, { delay: 60_000 }), { code: "invalid_argument" });
  await queue.close();
});
