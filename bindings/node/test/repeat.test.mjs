// Repeatable jobs: upsert, list, fire, remove; BullMQ's repeat shapes.

import assert from "node:assert/strict";
import { test } from "node:test";
import { MissedFiresPolicy, Queue, RepeatableMeta, RepeatPattern, Worker } from "../index.mjs";
import { key, qname, useRedis, waitFor } from "./helpers.mjs";

const ctx = useRedis();

test("upsertRepeatableJob, getRepeatableJobs, removeRepeatableByKey", async () => {
  const q = qname("repeat");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const cron = await queue.upsertRepeatableJob("report", { r: 1 }, {
    repeat: RepeatPattern.cron("0 3 * * *", { tz: "America/New_York" }),
    limit: 10,
    missedFires: MissedFiresPolicy.fireAll(3),
  });
  assert.equal(cron.id, "report::cron:0 3 * * *:America/New_York");
  const every = await queue.upsertRepeatableJob("tick", null, {
    repeat: RepeatPattern.every(60_000),
    jobId: "my-tick",
  });
  assert.equal(every.id, "my-tick");
  const metas = await queue.getRepeatableJobs();
  assert.equal(metas.length, 2);
  for (const m of metas) assert.ok(m instanceof RepeatableMeta);
  const byKey = Object.fromEntries(metas.map((m) => [m.key, m]));
  const c = byKey[cron.id];
  assert.equal(c.jobName, "report");
  assert.equal(c.pattern.kind, "cron");
  assert.equal(c.pattern.expression, "0 3 * * *");
  assert.equal(c.pattern.tz, "America/New_York");
  assert.equal(c.limit, 10);
  assert.equal(c.missedFires.kind, "fire-all");
  assert.equal(c.missedFires.maxCatchup, 3);
  const e = byKey["my-tick"];
  assert.equal(e.pattern.intervalMs, 60_000);
  assert.equal(e.missedFires.kind, "skip");
  assert.ok(e.nextFireMs > Date.now());
  // The stored spec is the 1.x StoredSpec; its payload is double-wrapped.
  const raw = await ctx.r.hgetBuffer(key(q, "repeat:spec:my-tick"), "spec");
  assert.ok(raw.includes(Buffer.from("c403c401c0", "hex")), raw.toString("hex"));
  assert.equal(await queue.removeRepeatableByKey("my-tick"), true);
  assert.equal(await queue.removeRepeatableByKey("my-tick"), false);
  assert.equal((await queue.getRepeatableJobs(1)).length, 1);
  await queue.close();
});

test("a repeatable fires into the queue; add({repeat}) and BullMQ's {every}", async () => {
  const q = qname("fire");
  const queue = new Queue(q, { redisUrl: ctx.url });
  const spec = await queue.add("beat", { b: 1 }, { repeat: { every: 200 }, jobId: "beat" });
  assert.equal(spec.id, "beat");
  const other = await queue.add("beat2", 2, { repeat: { kind: "every", intervalMs: 100_000 } });
  assert.equal(other.id, "beat2::every:100000");
  const seen = [];
  const worker = new Worker(q, async (j) => void seen.push(j), {
    redisUrl: ctx.url,
    schedulerTickMs: 50,
  });
  const running = worker.run();
  await waitFor(() => seen.length >= 2, { timeoutMs: 10_000, what: "two fires" });
  await worker.close();
  await running;
  assert.equal(seen[0].name, "beat");
  assert.deepEqual(seen[0].data, { b: 1 });
  assert.notEqual(seen[0].id, seen[1].id);
  await assert.rejects(queue.add("x", 1, { repeat: { every: 100 }, delay: 5 }), { code: "invalid_argument" });
  await assert.rejects(queue.add("x", 1, { repeat: { kind: "cron", expression: "not a cron" } }), {
    code: "invalid_argument",
  });
  await queue.close();
});

test("value types: factories, toDict, frozen", () => {
  const p = RepeatPattern.cron("*/5 * * * *");
  assert.deepEqual(p.toDict(), { kind: "cron", expression: "*/5 * * * *", tz: null });
  assert.deepEqual(RepeatPattern.every(5).toDict(), { kind: "every", intervalMs: 5 });
  assert.ok(Object.isFrozen(p));
  assert.throws(() => {
    "use strict";
    p.kind = "every";
  }, TypeError);
  assert.equal(MissedFiresPolicy.skip().kind, "skip");
  assert.equal(MissedFiresPolicy.fireOnce().kind, "fire-once");
});
