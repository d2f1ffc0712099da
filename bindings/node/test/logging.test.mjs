// The engine's warnings reach JavaScript on the `chasquimq` diagnostics
// channel; with no subscriber, warnings go to process.emitWarning. A settle
// flush that Redis refuses is reported, and the job waits for the retry.

import assert from "node:assert/strict";
import diagnostics_channel from "node:diagnostics_channel";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { Queue, UnrecoverableError, Worker } from "../index.mjs";
import { key, qname, useRedis, waitFor } from "./helpers.mjs";

const ctx = useRedis();

test("a refused settle flush is published on the chasquimq channel", async () => {
  const q = qname("log");
  const records = [];
  const onRecord = (r) => records.push(r);
  diagnostics_channel.subscribe("chasquimq", onRecord);
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on("warning", onWarning);
  const dlq = key(q, "dlq");
  await ctx.r.rpush(dlq, "not a stream");
  const queue = new Queue(q, { redisUrl: ctx.url });
  await queue.add("pay", 1);
  let runs = 0;
  const worker = new Worker(
    q,
    async () => {
      runs += 1;
      throw new UnrecoverableError("no");
    },
    { redisUrl: ctx.url, readBlockMs: 200 },
  );
  const run = worker.run();
  try {
    await waitFor(() => records.some((r) => r.message.includes("WRONGTYPE")), {
      what: "the settle warning",
    });
    const rec = records.find((r) => r.message.includes("WRONGTYPE"));
    assert.equal(rec.logger, "chasquimq.consumer");
    assert.equal(rec.level, 30);
    assert.equal(rec.levelName, "warning");
    assert.match(rec.message, /settle flush failed; retrying/);
    assert.ok(rec.message.includes(dlq), rec.message);
    // A subscriber takes the records: nothing went to process warnings.
    assert.equal(warnings.filter((w) => w.name === "ChasquiMQWarning").length, 0);
    await ctx.r.del(dlq);
    await waitFor(async () => (await ctx.r.xlen(dlq)) === 1, { what: "the DLQ entry" });
  } finally {
    await worker.close();
    await run;
    await queue.close();
    diagnostics_channel.unsubscribe("chasquimq", onRecord);
    process.off("warning", onWarning);
  }
  assert.equal(runs, 1);
});

test("with no subscriber, the warning reaches stderr", async () => {
  const q = qname("lognosub");
  await ctx.r.rpush(key(q, "dlq"), "not a stream");
  const script = `
    import { Queue, UnrecoverableError, Worker } from ${JSON.stringify(new URL("../index.mjs", import.meta.url).href)};
    const queue = new Queue(${JSON.stringify(q)}, { redisUrl: ${JSON.stringify(ctx.url)} });
    await queue.add("pay", 1);
    await queue.close();
    const w = new Worker(${JSON.stringify(q)}, async () => { throw new UnrecoverableError("no"); },
      { redisUrl: ${JSON.stringify(ctx.url)}, readBlockMs: 200 });
    const run = w.run();
    await new Promise((r) => setTimeout(r, 2000));
    await w.close();
    await run;
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const code = await new Promise((resolve) => child.on("exit", resolve));
  assert.equal(code, 0, stderr);
  assert.match(stderr, /ChasquiMQWarning: chasquimq\.consumer: settle flush failed; retrying/);
  assert.match(stderr, /WRONGTYPE/);
});
