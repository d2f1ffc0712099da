// An add whose reply never comes (Redis frozen with SIGSTOP) fails with
// OutcomeUnknownError, an OperationTimeoutError; a retry with the same
// jobId never enqueues twice.

import assert from "node:assert/strict";
import { test } from "node:test";
import { OperationTimeoutError, OutcomeUnknownError, Queue } from "../index.mjs";
import { key, startRedis, waitFor } from "./helpers.mjs";

test("a frozen Redis makes an add's outcome unknown; jobId retries are safe", async () => {
  const server = await startRedis();
  const queue = new Queue("frozen", { redisUrl: server.url, commandTimeoutMs: 300 });
  const { default: Redis } = await import("ioredis");
  const r = new Redis(server.url);
  try {
    await queue.add("warm", 0);
    process.kill(server.pid, "SIGSTOP");
    let err;
    try {
      await queue.add("job", 1);
    } catch (e) {
      err = e;
    } finally {
      process.kill(server.pid, "SIGCONT");
    }
    assert.ok(err instanceof OutcomeUnknownError, String(err));
    assert.ok(err instanceof OperationTimeoutError);
    assert.equal(err.code, "outcome_unknown");
    assert.match(err.message, /may or may not have been added/);
    assert.match(err.message, /jobId/);
    await waitFor(async () => (await r.xlen(key("frozen", "stream"))) === 2, {
      what: "the delayed write",
    });
    process.kill(server.pid, "SIGSTOP");
    try {
      await assert.rejects(queue.add("job", 2, { jobId: "order-1" }), OutcomeUnknownError);
    } finally {
      process.kill(server.pid, "SIGCONT");
    }
    assert.equal((await queue.add("job", 2, { jobId: "order-1" })).id, "order-1");
    assert.equal(await r.xlen(key("frozen", "stream")), 3);
  } finally {
    await queue.close();
    r.disconnect();
    await server.stop();
  }
});
