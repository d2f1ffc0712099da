// `npm pack` produces a package that installs into an empty folder and works
// from both `require` and `import`, with types that compile (tsc --noEmit over
// the typed usage files). Needs the package built (nox -s build-node).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { startRedis } from "../test/helpers.mjs";

const PKG = fileURLToPath(new URL("..", import.meta.url));
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
const work = mkdtempSync(join(tmpdir(), "chasqui-pack-"));
const app = join(work, "app");
let redis;
let tarball;

function run(cmd, args, cwd, env = {}) {
  return execFileSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: "utf8", stdio: "pipe" });
}

before(async () => {
  redis = await startRedis();
  const out = run(NPM, ["pack", "--json", "--pack-destination", work], PKG);
  tarball = join(work, JSON.parse(out)[0].filename);
});

after(async () => {
  await redis?.stop();
  rmSync(work, { recursive: true, force: true });
});

test("the tarball holds the built package and nothing else", () => {
  const listing = run("tar", ["-tzf", tarball], work).split("\n").filter(Boolean);
  const files = listing.map((f) => f.replace(/^package\//, ""));
  for (const f of ["package.json", "index.mjs", "dist/index.js", "dist/index.d.ts", "native/index.js", "native/index.d.ts"]) {
    assert.ok(files.includes(f), `${f} in the tarball`);
  }
  assert.ok(files.some((f) => /^native\/chasquimq\..+\.node$/.test(f)), "the native module");
  assert.ok(!files.some((f) => f.startsWith("ts/") || f.startsWith("test") || f.startsWith("src/")), files.join(" "));
});

test("installs into an empty folder; require, import and tsc all work", () => {
  run("mkdir", ["-p", app], work);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, version: "0.0.0" }));
  run(NPM, ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball], app);
  assert.ok(readdirSync(join(app, "node_modules", "chasquimq", "native")).some((f) => f.endsWith(".node")));

  // The same round trip through each entry point: add a job, run a worker
  // until it has it, close.
  const body = (kind) => `
    const url = process.env.REDIS_URL;
    const queue = new mod.Queue("pack-${kind}-" + process.pid, { redisUrl: url });
    const job = await queue.add("hello", { from: "${kind}" });
    let got = null;
    const worker = new mod.Worker(queue.name, async (j) => { got = j.data.from; }, { redisUrl: url });
    const running = worker.run();
    while (got === null) await new Promise((r) => setTimeout(r, 20));
    await worker.close();
    await running;
    await queue.close();
    if (!(new mod.InvalidTypeError("x") instanceof mod.ChasquiError)) throw new Error("classes");
    console.log("ok " + got + " " + job.id.length + " " + mod.version());
  `;
  writeFileSync(
    join(app, "cjs.cjs"),
    `const mod = require("chasquimq");\n(async () => {${body("cjs")}})().catch((e) => { console.error(e); process.exit(1); });\n`,
  );
  writeFileSync(join(app, "esm.mjs"), `import * as mod from "chasquimq";\n${body("esm")}\n`);
  const env = { REDIS_URL: redis.url };
  assert.match(run("node", ["cjs.cjs"], app, env), /^ok cjs 26 /);
  assert.match(run("node", ["esm.mjs"], app, env), /^ok esm 26 /);

  copyFileSync(join(PKG, "test", "types", "usage.ts"), join(app, "usage.ts"));
  copyFileSync(join(PKG, "test", "types", "usage.mts"), join(app, "usage.mts"));
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2022"],
        types: ["node"],
        typeRoots: [join(PKG, "node_modules", "@types")],
        module: "node16",
        moduleResolution: "node16",
        strict: true,
        noEmit: true,
        skipLibCheck: false,
      },
      files: ["usage.ts", "usage.mts"],
    }),
  );
  run(process.execPath, [join(PKG, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], app);
});
