// Test helpers: a real redis-server of its own per test file (never 6379,
// never a mock), unique queue names, polling, a raw client for asserting on
// what is stored in Redis.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import { Redis } from "ioredis";

// The spawner every suite shares (CONTRIBUTING.md says why one program): it
// chooses the port, retrying when another process wins it, never 6379.
const REDISPROC = fileURLToPath(new URL("../../../tools/redisproc.py", import.meta.url));

/**
 * Starts a throwaway redis-server (`--save '' --appendonly no`) through
 * tools/redisproc.py. `args` go to the spawner: its flags (`--tls`,
 * `--cluster`, N), then `--` and redis-server's. `stop()` closes the
 * spawner's stdin, which stops the server; so does this process dying.
 */
export async function startRedis({ args = [] } = {}) {
  const proc = spawn("python3", [REDISPROC, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
  const started = new Promise((resolve, reject) => {
    proc.once("error", (e) => reject(new Error(`python3 must be on PATH to start redis-server: ${e.message}`)));
    const lines = createInterface({ input: proc.stdout });
    lines.once("line", (line) => {
      // One line is all it prints: let go of the pipe so it cannot hold
      // this process's event loop open.
      lines.close();
      proc.stdout.destroy();
      resolve(line);
    });
    exited.then((code) => reject(new Error(`${REDISPROC} exited (${code}) before printing an address`)));
  });
  const info = JSON.parse(await started);
  if (info.error) {
    await exited;
    throw new Error(`redis-server did not start: ${info.error}`);
  }
  return {
    port: info.port,
    ports: info.ports,
    url: info.url,
    pid: info.pid,
    async stop() {
      proc.stdin.end();
      await exited;
    },
  };
}

/**
 * One redis-server for the test file: `ctx.url` and a raw ioredis client
 * `ctx.r` (Buffer replies via the *Buffer commands) are set before the tests.
 */
export function useRedis() {
  const ctx = { url: "", r: null, server: null };
  before(async () => {
    ctx.server = await startRedis();
    ctx.url = ctx.server.url;
    ctx.r = new Redis(ctx.url);
  });
  after(async () => {
    ctx.r?.disconnect();
    await ctx.server?.stop();
  });
  return ctx;
}

let counter = 0;
/** A queue name unique to the test run. */
export function qname(label = "q") {
  counter += 1;
  return `t${process.pid}-${counter}-${label}`;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a truthy value; fails after `timeoutMs`. */
export async function waitFor(fn, { timeoutMs = 10_000, intervalMs = 20, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** The key of queue `q` with `suffix`. */
export function key(q, suffix) {
  return `{chasqui:${q}}:${suffix}`;
}

/** Every key in Redis (to prove nothing was written). */
export async function allKeys(r) {
  return (await r.keys("*")).sort();
}

/** Runs a worker until `done()` is true, then closes it. */
export async function runUntil(worker, done, opts) {
  const running = worker.run();
  try {
    await waitFor(done, opts);
  } finally {
    await worker.close();
    await running;
  }
}
