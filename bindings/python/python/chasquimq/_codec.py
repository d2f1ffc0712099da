"""msgpack encoding of user data and results, with typed errors."""

from __future__ import annotations

from typing import Any

import msgpack

from chasquimq._generated.errors import PayloadDecodeError, PayloadEncodeError

#: msgpack without the error wrapping (str as str, bytes as bin: the
#: msgpack >= 1.0 defaults); hot paths call it and fall back to `pack` for
#: the typed error.
packb = msgpack.packb


def pack(field: str, value: Any) -> bytes:
    """msgpack of `value`; PayloadEncodeError naming `field` when it cannot be encoded."""
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise PayloadEncodeError(
            f"{field} cannot be encoded as msgpack ({type(e).__name__}: {e}); "
            "pass None, bool, int, float, str, bytes, list, tuple or dict values"
        ) from None


def unpack(raw: bytes) -> Any:
    """Decodes msgpack written by any ChasquiMQ producer."""
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception as e:  # msgpack raises several unrelated types
        raise PayloadDecodeError(f"payload is not valid msgpack: {e}") from None


def decode_envelope(d: bytes) -> dict[str, Any] | None:
    """Fields of a raw envelope (`d`), or None when it does not decode."""
    try:
        env = msgpack.unpackb(d, raw=False, strict_map_key=False)
    except Exception:
        return None
    if not isinstance(env, list) or not 3 <= len(env) <= 5:
        return None
    out: dict[str, Any] = {"job_id": env[0], "created_at_ms": env[2]}
    out["attempt"] = env[3] if len(env) > 3 else 0
    try:
        out["data"] = unpack(env[1]) if isinstance(env[1], bytes) else None
    except PayloadDecodeError:
        out["data"] = None
    return out
