/**
 * msgpack encoding of job data and results, byte-compatible with the Python
 * package (`msgpack.packb(data, use_bin_type=True)`): strings are str,
 * Buffers and typed arrays are bin, integers take their smallest encoding,
 * other numbers are float64. A JavaScript Map is a msgpack map (any key
 * type); a Set, a function or a symbol is a PayloadEncodeError, never silently
 * dropped.
 */

import { Decoder, Encoder } from "@msgpack/msgpack";
import { PayloadDecodeError, PayloadEncodeError } from "./_generated/errors.js";

type Internal = {
  encodeMap(object: unknown, depth: number): void;
  doEncode(object: unknown, depth: number): void;
  writeU8(v: number): void;
  writeU16(v: number): void;
  writeU32(v: number): void;
};

function mapAwareEncoder(): Encoder {
  const encoder = new Encoder();
  const inner = encoder as unknown as Internal;
  const encodeObjectAsMap = inner.encodeMap;
  // @msgpack/msgpack encodes any non-array object by its own keys, which
  // turns a Map or a Set into an empty map.
  inner.encodeMap = function (this: Internal, object: unknown, depth: number): void {
    if (object instanceof Map) {
      const size = object.size;
      if (size < 16) {
        this.writeU8(0x80 + size);
      } else if (size < 0x10000) {
        this.writeU8(0xde);
        this.writeU16(size);
      } else {
        this.writeU8(0xdf);
        this.writeU32(size);
      }
      for (const [key, value] of object) {
        this.doEncode(key, depth + 1);
        this.doEncode(value, depth + 1);
      }
      return;
    }
    if (object instanceof Set || object instanceof WeakMap || object instanceof WeakSet) {
      throw new Error(`cannot encode a ${object.constructor.name}; pass an array instead`);
    }
    encodeObjectAsMap.call(this, object, depth);
  };
  return encoder;
}

const encoder = mapAwareEncoder();
const decoder = new Decoder();

/** msgpack of `value`; a PayloadEncodeError naming `field` when it cannot be encoded. */
export function pack(field: string, value: unknown): Uint8Array {
  try {
    return encoder.encode(value);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new PayloadEncodeError(
      `${field} cannot be encoded as msgpack (${why}); pass null, booleans, ` +
        "numbers, strings, Buffers, arrays, plain objects or Maps",
    );
  }
}

/** Decodes msgpack written by any ChasquiMQ producer. */
export function unpack(raw: Uint8Array): any {
  try {
    return decoder.decode(raw);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new PayloadDecodeError(`payload is not valid msgpack: ${why}`);
  }
}

/** Fields of a raw envelope (`d`), or null when it does not decode. */
export function decodeEnvelope(d: Uint8Array): Record<string, unknown> | null {
  let env: unknown;
  try {
    env = decoder.decode(d);
  } catch {
    return null;
  }
  if (!Array.isArray(env) || env.length < 3 || env.length > 5) {
    return null;
  }
  const out: Record<string, unknown> = {
    jobId: env[0],
    createdAtMs: env[2],
    attempt: env.length > 3 ? env[3] : 0,
    data: null,
  };
  if (env[1] instanceof Uint8Array) {
    try {
      out.data = unpack(env[1]);
    } catch {
      out.data = null;
    }
  }
  return out;
}
