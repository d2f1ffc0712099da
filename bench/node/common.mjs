// What every Node driver shares; the same spec, modes and result as
// bench/drivers/common.py (read its docstring for the keys).
// Node drivers live here, beside node_modules, so that imports resolve.
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export const SPEC = JSON.parse(process.argv[2] ?? '{}');

export const now = () => performance.timeOrigin + performance.now(); // epoch ms

function procCpu(pid) {
  try {
    const data = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = data.slice(data.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

export function snapshot() {
  const u = process.cpuUsage(); // the whole process, every thread, in µs
  return {
    wall: now() / 1000,
    cpu: (u.user + u.system) / 1e6,
    redis_cpu: SPEC.redis_pid ? procCpu(SPEC.redis_pid) : 0,
  };
}

export function writeResult(result) {
  writeFileSync(SPEC.out + '.tmp', JSON.stringify(result));
  renameSync(SPEC.out + '.tmp', SPEC.out);
}

export function redisOptions() {
  const u = new URL(SPEC.url);
  return { host: u.hostname, port: Number(u.port || 6379) };
}

const sCache = new Map();
export function payload(i) {
  const size = SPEC.size ?? 10;
  let s = sCache.get(size);
  if (s === undefined) {
    s = 'x'.repeat(size);
    sCache.set(size, s);
  }
  const d = { i, s };
  if (SPEC.stamp) d.t = now();
  return d;
}

export class Unsupported extends Error {}

// add(data) and addBulk(items) | null are the library's; returns the result.
export async function produce(add, addBulk) {
  const n = SPEC.n;
  const batch = SPEC.batch ?? 50;
  const cap = SPEC.cap_s ?? 1e9;
  let note = '';
  if (SPEC.mode === 'bulk' && !addBulk) throw new Unsupported('no bulk API');
  if (SPEC.mode === 'preload' && !addBulk) note = `added without a bulk API (${batch} adds in flight)`;
  const start = snapshot();
  const deadline = start.wall + cap;
  let done = 0;
  let capped = false;
  if (SPEC.mode === 'single') {
    for (let i = 0; i < n; i++) {
      await add(payload(i));
      done++;
      if ((done & 63) === 0 && now() / 1000 > deadline) {
        capped = true;
        break;
      }
    }
  } else if (SPEC.mode === 'bulk' || SPEC.mode === 'preload') {
    for (let lo = 0; lo < n; lo += batch) {
      const items = [];
      for (let i = lo; i < Math.min(n, lo + batch); i++) items.push(payload(i));
      if (addBulk) await addBulk(items);
      else await Promise.all(items.map((d) => add(d)));
      done += items.length;
      if (now() / 1000 > deadline && done < n) {
        capped = true;
        break;
      }
    }
  } else if (SPEC.mode === 'paced') {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const wait = t0 + (i * 1000) / SPEC.rate - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await add(payload(i));
      done++;
    }
  } else {
    throw new Error(`unknown producer mode ${SPEC.mode}`);
  }
  const end = snapshot();
  return { start, end, count: done, capped, note };
}

export async function producerMain(setup) {
  let result;
  try {
    const { add, addBulk, close } = await setup();
    try {
      result = await produce(add, addBulk);
    } finally {
      await close();
    }
  } catch (e) {
    if (!(e instanceof Unsupported)) throw e;
    result = { unsupported: e.message };
  }
  writeResult(result);
  process.exit(0);
}

export class FirstAttemptFailure extends Error {}

function pct(sorted, p) {
  const k = Math.max(0, Math.min(sorted.length - 1, Math.round((p / 100) * sorted.length + 0.5) - 1));
  return sorted[k];
}

export class Tracker {
  constructor() {
    this.n = SPEC.n;
    this.cap = SPEC.cap_s ?? 1e9;
    this.failOnce = !!SPEC.fail_once;
    this.results = !!SPEC.results;
    this.seen = new Set();
    this.count = 0;
    this.failures = 0;
    this.lat = [];
    this.start = null;
    this.extra = {};
    this.finished = false;
  }

  begin(data) {
    if (data.t !== undefined) this.lat.push(now() - data.t);
    if (this.failOnce && !this.seen.has(data.i)) {
      this.seen.add(data.i);
      this.failures++;
      throw new FirstAttemptFailure(`first attempt of job ${data.i}`);
    }
  }

  end(data) {
    this.count++;
    if (this.count >= this.n) this.finish(false);
    return this.results ? { i: data.i, ok: true } : null;
  }

  openWindow() {
    this.start = snapshot();
    if (SPEC.ready) writeFileSync(SPEC.ready, 'ready');
    setTimeout(() => this.finish(true), this.cap * 1000).unref();
  }

  finish(capped, error) {
    if (this.finished) return;
    this.finished = true;
    const end = snapshot();
    const result = {
      start: this.start ?? end,
      end,
      count: this.count,
      failures: this.failures,
      capped,
      ...this.extra,
    };
    if (this.lat.length) {
      const lat = [...this.lat].sort((a, b) => a - b);
      result.latency_ms = { n: lat.length, p50: pct(lat, 50), p99: pct(lat, 99), max: lat[lat.length - 1] };
    }
    if (error) result.error = error;
    writeResult(result);
    process.exit(0);
  }
}

// start() starts the library's loop and returns its promise.
export async function workerMain(start) {
  const tracker = new Tracker();
  try {
    const warm = SPEC.warmup_s ?? 0;
    if (warm <= 0) tracker.openWindow();
    const loop = start(tracker);
    if (warm > 0) setTimeout(() => tracker.openWindow(), warm * 1000);
    await loop;
    tracker.finish(false, 'the worker loop returned before all jobs were done');
  } catch (e) {
    if (e instanceof Unsupported) {
      writeResult({ unsupported: e.message });
      process.exit(0);
    }
    tracker.finish(false, `${e?.name}: ${e?.message}`);
  }
}
