// Test helpers: a real redis-server started on a free port (never 6379,
// never a mock), unique queue names, polling, a raw client for asserting on
// what is stored in Redis.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { Redis } from "ioredis";

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function ping(port) {
  return new Promise((resolve) => {
    const sock = net.createConnection({ host: "127.0.0.1", port });
    sock.setTimeout(500);
    sock.once("connect", () => sock.write("PING\r\n"));
    sock.once("data", (d) => {
      sock.destroy();
      resolve(d.toString().startsWith("+PONG"));
    });
    sock.once("error", () => resolve(false));
    sock.once("timeout", () => {
      sock.destroy();
      resolve(false);
    });
  });
}

/** Starts a throwaway redis-server (`--save '' --appendonly no`). */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "chasqui-node-redis-"));
  const proc = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  let exited = false;
  proc.once("exit", () => (exited = true));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error("redis-server exited at start; is it installed?");
    if (await ping(port)) break;
    await sleep(20);
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (!exited) {
        const gone = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
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
