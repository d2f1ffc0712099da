// QueueEvents: async iterator and EventEmitter over the events stream.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Queue, QueueEvent, QueueEvents, Worker } from "../index.mjs";
import { qname, runUntil, useRedis, waitFor } from "./helpers.mjs";

const ctx = useRedis();

test("async iteration yields the lifecycle of a job; close ends it", async () => {
  const q = qname("iter");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const events = new QueueEvents(q, { redisUrl: ctx.url, blockMs: 200 });
  await events.waitUntilReady();
  const job = await queue.add("ev", { a: 1 });
  const worker = new Worker(q, async () => "done", { redisUrl: ctx.url });
  const running = worker.run();
  const got = [];
  // The read that found the job came back short, so `drained` is written
  // too: after `active`, before or after `completed` (whichever flush).
  for await (const ev of events) {
    assert.ok(ev instanceof QueueEvent);
    got.push(ev);
    const names = got.map((e) => e.name);
    if (names.includes("completed") && names.includes("drained")) break;
  }
  await worker.close();
  await running;
  const names = got.map((e) => e.name);
  assert.equal(names.length, 3, `events: ${names}`);
  assert.equal(names[0], "active", `events: ${names}`);
  const active = got.find((e) => e.name === "active");
  assert.equal(active.jobId, job.id);
  assert.equal(active.jobName, "ev");
  assert.equal(active.fields.attempt, 1);
  const completed = got.find((e) => e.name === "completed");
  assert.equal(completed.jobId, job.id);
  assert.equal(typeof completed.fields.durationUs, "number");
  assert.equal(typeof completed.fields.ts, "number");
  // close() ends a pending iteration.
  const pending = events.next();
  await events.close();
  assert.deepEqual(await pending, { value: undefined, done: true });
  assert.deepEqual(await events.next(), { value: undefined, done: true });
  await queue.close();
});

test("EventEmitter: events by name and as 'event'; lastEventId '0' replays", async () => {
  const q = qname("emit");
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.add("first", 1);
  const worker = new Worker(q, async (j) => {
    if (j.data === 2) throw new Error("bad");
  }, { redisUrl: ctx.url, maxAttempts: 1 });
  await runUntil(worker, async () => (await ctx.r.xlen(`{chasqui:${q}}:events`)) >= 3);
  const replay = new QueueEvents(q, { redisUrl: ctx.url, lastEventId: "0", blockMs: 100 });
  const all = [];
  const completed = [];
  replay.on("event", (ev) => all.push(ev));
  replay.on("completed", (ev) => completed.push(ev));
  await waitFor(() => completed.length === 1);
  assert.equal(completed[0].jobName, "first");
  assert.ok(all.some((e) => e.name === "active"));
  // New events arrive while listening.
  const failed = [];
  replay.on("failed", (ev) => failed.push(ev));
  await queue.add("second", 2);
  const worker2 = new Worker(q, async (j) => {
    if (j.data === 2) throw new Error("bad");
  }, { redisUrl: ctx.url, maxAttempts: 1 });
  await runUntil(worker2, () => failed.length === 1);
  assert.match(failed[0].fields.reason, /Error: bad/);
  await replay.close();
  await queue.close();
});

test("a read error reaches 'error' listeners and rejects a waiting iteration", async () => {
  const events = new QueueEvents(qname("err"), { redisUrl: "redis://127.0.0.1:1", blockMs: 100 });
  await assert.rejects(events.next(), { code: "connection" });
  const errors = [];
  events.on("error", (e) => errors.push(e));
  events.on("completed", () => undefined);
  await waitFor(() => errors.length >= 1);
  assert.equal(errors[0].code, "connection");
  await events.close();
});
