// CHASQUIMQ_ENGINE_THREADS: a bad value is a typed error naming the
// variable, at the first call that needs the engine runtime. Each case runs
// in a fresh process (the runtime is process-wide).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { useRedis } from "./helpers.mjs";

const ctx = useRedis();
const index = fileURLToPath(new URL("../index.mjs", import.meta.url));

function run(value) {
  const script = `
    import { Queue, InvalidArgumentError } from ${JSON.stringify(index)};
    const q = new Queue("threads", { redisUrl: process.argv[1] });
    try {
      const job = await q.add("t", 1);
      console.log("added", typeof job.id);
    } catch (e) {
      console.log("error", e instanceof InvalidArgumentError, e.message);
    } finally {
      await q.close().catch(() => {});
    }
  `;
  const env = { ...process.env };
  delete env.CHASQUIMQ_ENGINE_THREADS;
  if (value !== undefined) env.CHASQUIMQ_ENGINE_THREADS = value;
  const out = spawnSync(process.execPath, ["--input-type=module", "-e", script, ctx.url], {
    env,
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.trim();
}

test("the default and a valid thread count both run", () => {
  assert.equal(run(undefined), "added string");
  assert.equal(run("2"), "added string");
});

test("a bad thread count is an InvalidArgumentError naming the variable", () => {
  const out = run("0");
  assert.match(out, /^error true /);
  assert.match(out, /CHASQUIMQ_ENGINE_THREADS/);
  assert.match(out, /unset it for the default, 1/);
});
