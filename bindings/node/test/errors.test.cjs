// The one conversion from engine errors to Node errors (every code), the
// error class hierarchy, and the CommonJS entry point.

const assert = require("node:assert/strict");
const { test } = require("node:test");
const chasquimq = require("..");
const native = require("../dist/native.js");

const {
  ChasquiError,
  InvalidArgumentError,
  InvalidTypeError,
  PayloadEncodeError,
  UnrecoverableError,
  NotSupportedError,
} = chasquimq;
const { ERRORS_BY_CODE } = require("../dist/_generated/errors.js");

test("every engine code converts to its class, carrying err.code", () => {
  const codes = native.engineErrorCodes();
  assert.ok(codes.length >= 12);
  assert.deepEqual(
    [...codes, "unrecoverable"].sort(),
    Object.keys(ERRORS_BY_CODE).sort(),
    "the spec's codes are the engine's plus unrecoverable",
  );
  for (const code of codes) {
    let caught;
    try {
      native.throwEngineError(code);
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof ERRORS_BY_CODE[code], code);
    assert.ok(caught instanceof ChasquiError, code);
    assert.ok(caught instanceof Error, code);
    assert.equal(caught.code, code);
    assert.equal(caught.name, ERRORS_BY_CODE[code].name);
    assert.ok(!caught.message.startsWith("["), caught.message);
    assert.equal(ERRORS_BY_CODE[code].code, code);
  }
});

test("argument errors also extend the builtin TypeError / RangeError", () => {
  assert.ok(new InvalidArgumentError("x") instanceof RangeError);
  assert.ok(new InvalidArgumentError("x") instanceof ChasquiError);
  assert.ok(new InvalidTypeError("x") instanceof TypeError);
  assert.ok(new InvalidTypeError("x") instanceof ChasquiError);
  assert.ok(new PayloadEncodeError("x") instanceof TypeError);
  assert.ok(!(new TypeError("x") instanceof ChasquiError));
  assert.ok(!(new RangeError("x") instanceof InvalidArgumentError));
  assert.equal(new InvalidTypeError("x").code, "invalid_type");
});

test("UnrecoverableError and user subclasses", () => {
  class MissingUser extends UnrecoverableError {}
  const e = new MissingUser("gone", { cause: 1 });
  assert.ok(e instanceof UnrecoverableError);
  assert.ok(e instanceof ChasquiError);
  assert.equal(e.code, "unrecoverable");
  assert.equal(e.name, "MissingUser");
  assert.equal(e.cause, 1);
  assert.equal(new NotSupportedError("no").code, "not_supported");
  assert.equal(new ChasquiError("root").code, "error");
});

test("the power-user native classes convert their errors too", async () => {
  assert.throws(() => new chasquimq.Producer("http://x", "q"), { code: "invalid_argument" });
  assert.throws(() => new chasquimq.Producer(5, "q"), (e) => e instanceof InvalidTypeError);
  const p = new chasquimq.Producer("redis://127.0.0.1:1", "q");
  await assert.rejects(p.add("x", Buffer.from([0xc0])), { code: "connection" });
  assert.throws(() => p.add("x", Buffer.from([0xc0]), { backoff: { kind: "linear", delayMs: 1 } }), {
    code: "invalid_argument",
  });
  await p.close();
  assert.equal(typeof chasquimq.version(), "string");
  assert.ok(chasquimq.Consumer && chasquimq.Scheduler);
});

test("CommonJS and ES module entry points share one set of classes", async () => {
  const esm = await import("../index.mjs");
  assert.equal(esm.Queue, chasquimq.Queue);
  assert.equal(esm.ChasquiError, chasquimq.ChasquiError);
  for (const name of Object.keys(chasquimq)) {
    assert.ok(name in esm, `${name} is exported by index.mjs`);
  }
});
