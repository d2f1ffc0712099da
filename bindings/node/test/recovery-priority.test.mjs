// Jobs a dead worker left pending get slots before the backlog: the
// claimer takes the slots handlers free while the reader waits, and claims
// again at once while more are claimable.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Queue, Worker } from "../index.mjs";
import { key, qname, sleep, useRedis, waitFor } from "./helpers.mjs";

const ctx = useRedis();
const DEAD = 50;
const BACKLOG = 3_000;

test("a dead worker's jobs run before the backlog", async () => {
  const q = qname("prio");
  const stream = key(q, "stream");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const dead = await queue.addBulk(Array.from({ length: DEAD }, (_, i) => ({ name: "dead", data: i })));
  await ctx.r.xgroup("CREATE", stream, "default", "0", "MKSTREAM");
  const got = await ctx.r.xreadgroup("GROUP", "default", "dead", "COUNT", DEAD, "STREAMS", stream, ">");
  assert.equal(got[0][1].length, DEAD);
  await queue.addBulk(Array.from({ length: BACKLOG }, (_, i) => ({ name: "backlog", data: i })));
  const deadIds = new Set(dead.map((j) => j.id));
  const ranDead = new Set();
  let backlogDone = 0;
  const worker = new Worker(
    q,
    async (job) => {
      await sleep(10);
      if (deadIds.has(job.id)) ranDead.add(job.id);
      else backlogDone += 1;
    },
    { redisUrl: ctx.url, concurrency: 10, claimMinIdleMs: 1_500, readBlockMs: 200 },
  );
  const run = worker.run();
  let doneWhenDeadRan;
  try {
    await waitFor(() => ranDead.size === DEAD, { timeoutMs: 60_000, what: "the dead worker's jobs" });
    doneWhenDeadRan = backlogDone;
  } finally {
    await worker.close();
    await run;
    await queue.close();
  }
  assert.ok(doneWhenDeadRan < BACKLOG * 0.8, `backlog done ${doneWhenDeadRan}`);
});
