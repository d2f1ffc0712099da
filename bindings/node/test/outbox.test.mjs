// Outcomes the writer cannot write yet hold the reader back, and a refused
// flush is retried until it lands, so no job runs twice because of it.
// Redis refuses every settle script here (a DLQ key of the wrong type)
// while reads keep working.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Queue, UnrecoverableError, Worker } from "../index.mjs";
import { key, qname, sleep, useRedis, waitFor } from "./helpers.mjs";

const ctx = useRedis();

// engine/src/consumer.rs: at most max(16 x concurrency, 256) outcomes wait.
const CONCURRENCY = 2;
const CAP = Math.max(16 * CONCURRENCY, 256);
const JOBS = 1_000;

test("reading is held back while the writer is stalled", async () => {
  const q = qname("outbox");
  const dlq = key(q, "dlq");
  await ctx.r.rpush(dlq, "not a stream");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const jobs = await queue.addBulk(Array.from({ length: JOBS }, (_, i) => ({ name: "j", data: i })));
  const runs = new Map();
  const worker = new Worker(
    q,
    async (job) => {
      runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
      throw new UnrecoverableError("to the DLQ");
    },
    { redisUrl: ctx.url, concurrency: CONCURRENCY, claimMinIdleMs: 1_000, readBlockMs: 200 },
  );
  const run = worker.run();
  try {
    await waitFor(() => runs.size >= CAP, { what: "the outbox to fill" });
    await sleep(3_000);
    const ran = runs.size;
    assert.ok(ran >= CAP && ran <= CAP + 2 * CONCURRENCY, `ran ${ran}`);
    assert.equal(Math.max(...runs.values()), 1);
    await ctx.r.del(dlq);
    await waitFor(async () => (await ctx.r.xlen(dlq)) === JOBS, {
      timeoutMs: 60_000,
      what: "all jobs in the DLQ",
    });
  } finally {
    await worker.close();
    await run;
    await queue.close();
  }
  assert.deepEqual([...runs.keys()].sort(), jobs.map((j) => j.id).sort());
  assert.deepEqual([...new Set(runs.values())], [1]);
});
