// maxStreamLen is a refusal, never a trim: adds past it fail with
// QueueFullError and write nothing; the promoter holds due jobs back.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ChasquiError, Queue, QueueFullError, Worker } from "../index.mjs";
import { key, qname, sleep, useRedis, waitFor } from "./helpers.mjs";

const ctx = useRedis();

test("adds past maxStreamLen raise QueueFullError; no unread job is lost", async () => {
  const q = qname("full");
  const queue = new Queue(q, { redisUrl: ctx.url, maxStreamLen: 100 });
  const accepted = [];
  let refused = 0;
  let first;
  for (let i = 0; i < 1_050; i++) {
    try {
      accepted.push((await queue.add("job", { i })).id);
    } catch (e) {
      assert.ok(e instanceof QueueFullError, String(e));
      first ??= e;
      refused += 1;
    }
  }
  assert.equal(accepted.length, 100);
  assert.equal(refused, 950);
  assert.ok(first instanceof ChasquiError);
  assert.equal(first.code, "queue_full");
  assert.match(first.message, /max_stream_len \(100\)/);
  assert.equal(await ctx.r.xlen(key(q, "stream")), 100);
  const seen = [];
  const worker = new Worker(q, async (job) => void seen.push(job.id), { redisUrl: ctx.url });
  const run = worker.run();
  await waitFor(() => seen.length === 100, { timeoutMs: 20_000, what: "the 100 accepted jobs" });
  await worker.close();
  await run;
  assert.deepEqual([...seen].sort(), [...accepted].sort());
  await queue.close();
});

test("addBulk is all or nothing at the cap", async () => {
  const q = qname("fullbulk");
  const queue = new Queue(q, { redisUrl: ctx.url, maxStreamLen: 2_010 });
  await queue.addBulk(Array.from({ length: 11 }, (_, i) => ({ name: "f", data: i })));
  const batch = [
    ...Array.from({ length: 2_000 }, (_, i) => ({ name: "p", data: i })),
    { name: "u", data: 1, jobId: "nb-u" },
  ];
  await assert.rejects(queue.addBulk(batch), QueueFullError);
  assert.equal(await ctx.r.xlen(key(q, "stream")), 11);
  assert.equal(await ctx.r.exists(key(q, "dlid:nb-u")), 0);
  await ctx.r.del(key(q, "stream"));
  assert.equal((await queue.addBulk(batch)).length, 2_001);
  assert.equal(await ctx.r.xlen(key(q, "stream")), 2_001);
  await queue.close();
});

test("the promoter holds due delayed jobs while the stream is full", async () => {
  const q = qname("fullpromote");
  const queue = new Queue(q, { redisUrl: ctx.url, maxStreamLen: 5 });
  await queue.addBulk(Array.from({ length: 5 }, (_, i) => ({ name: "now", data: i })));
  await queue.addBulk(Array.from({ length: 3 }, (_, i) => ({ name: "later", data: 10 + i, delayMs: 50 })));
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  const ran = [];
  const worker = new Worker(
    q,
    async (job) => {
      await gate;
      ran.push(job.data);
    },
    { redisUrl: ctx.url, maxStreamLen: 5, readBlockMs: 200 },
  );
  const run = worker.run();
  await sleep(1_000);
  assert.equal(await ctx.r.zcard(key(q, "delayed")), 3);
  assert.equal(await ctx.r.xlen(key(q, "stream")), 5);
  release();
  await waitFor(() => ran.length === 8, { timeoutMs: 20_000, what: "all 8 jobs" });
  await worker.close();
  await run;
  assert.deepEqual([...ran].sort((a, b) => a - b), [0, 1, 2, 3, 4, 10, 11, 12]);
  await queue.close();
});
