//! A bounds-checked msgpack reader and an infallible writer, for every value
//! the engine reads from Redis (envelopes, retry overrides, stored specs).
//!
//! The reader never panics and never allocates from a length prefix: every
//! length is checked against the bytes actually present before slicing, and
//! element counts are only compared with the expected shape or walked one
//! (at least one-byte) element at a time.

use rmp::encode::{self, ByteBuf, ValueWriteError};
use rmp::Marker;

use crate::repeat::RepeatError;

/// The deepest nesting [`Reader::skip`] walks.
pub(crate) const MAX_SKIP_DEPTH: usize = 32;

/// Bytes that are not a valid stored value. Offsets count from the start of
/// the decoded buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what}: input ends at byte {offset}")]
    Truncated { what: &'static str, offset: usize },
    #[error("{what}: unexpected msgpack marker 0x{marker:02x} at byte {offset}")]
    UnexpectedMarker {
        what: &'static str,
        marker: u8,
        offset: usize,
    },
    #[error("{what}: expected {expected} elements, found {found}")]
    WrongLength {
        what: &'static str,
        expected: &'static str,
        found: u32,
    },
    #[error("{what}: unknown variant {found:?}")]
    UnknownVariant { what: &'static str, found: String },
    #[error("{what}: integer out of range")]
    OutOfRange { what: &'static str },
    #[error("{what}: string is not UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("{what}: {found} trailing bytes after the value")]
    TrailingBytes { what: &'static str, found: usize },
    #[error("{what}: nested deeper than {max}")]
    TooDeep { what: &'static str, max: usize },
}

/// rmp's writers into a growable buffer, whose error type is `Infallible`.
#[derive(Default)]
pub(crate) struct Writer(ByteBuf);

fn infallible<T>(r: Result<T, ValueWriteError<std::convert::Infallible>>) -> T {
    match r {
        Ok(v) => v,
        Err(ValueWriteError::InvalidMarkerWrite(e) | ValueWriteError::InvalidDataWrite(e)) => {
            match e {}
        }
    }
}

impl Writer {
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0.into_vec()
    }

    pub(crate) fn array_len(&mut self, len: u32) {
        infallible(encode::write_array_len(&mut self.0, len));
    }

    pub(crate) fn map_len(&mut self, len: u32) {
        infallible(encode::write_map_len(&mut self.0, len));
    }

    pub(crate) fn nil(&mut self) {
        match encode::write_nil(&mut self.0) {
            Ok(()) => {}
            Err(e) => match e {},
        }
    }

    pub(crate) fn uint(&mut self, v: u64) {
        infallible(encode::write_uint(&mut self.0, v));
    }

    pub(crate) fn opt_uint(&mut self, v: Option<u64>) {
        match v {
            Some(v) => self.uint(v),
            None => self.nil(),
        }
    }

    /// rmp takes lengths as `u32` and would truncate a longer one silently.
    pub(crate) fn str(&mut self, field: &'static str, s: &str) -> Result<(), RepeatError> {
        fits_u32(field, s.len())?;
        infallible(encode::write_str(&mut self.0, s));
        Ok(())
    }

    pub(crate) fn bin(&mut self, field: &'static str, b: &[u8]) -> Result<(), RepeatError> {
        fits_u32(field, b.len())?;
        infallible(encode::write_bin(&mut self.0, b));
        Ok(())
    }
}

fn fits_u32(field: &'static str, len: usize) -> Result<(), RepeatError> {
    match u32::try_from(len) {
        Ok(_) => Ok(()),
        Err(_) => Err(RepeatError::TooLarge { field, len }),
    }
}

/// A bounds-checked msgpack cursor over borrowed bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn truncated(&self, what: &'static str) -> DecodeError {
        DecodeError::Truncated {
            what,
            offset: self.buf.len(),
        }
    }

    pub(crate) fn peek(&self, what: &'static str) -> Result<Marker, DecodeError> {
        self.buf
            .get(self.pos)
            .map(|b| Marker::from_u8(*b))
            .ok_or_else(|| self.truncated(what))
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| self.truncated(what))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn be(&mut self, n: usize, what: &'static str) -> Result<u64, DecodeError> {
        Ok(self
            .take(n, what)?
            .iter()
            .fold(0_u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Consumes the marker byte; the error points at it.
    fn marker(&mut self, what: &'static str) -> Result<(Marker, usize), DecodeError> {
        let at = self.pos;
        let m = self.peek(what)?;
        self.pos += 1;
        Ok((m, at))
    }

    fn unexpected(&self, what: &'static str, at: usize) -> DecodeError {
        DecodeError::UnexpectedMarker {
            what,
            marker: self.buf[at],
            offset: at,
        }
    }

    pub(crate) fn array_len(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        match self.marker(what)? {
            (Marker::FixArray(n), _) => Ok(u32::from(n)),
            (Marker::Array16, _) => Ok(self.be(2, what)? as u32),
            (Marker::Array32, _) => Ok(self.be(4, what)? as u32),
            (_, at) => Err(self.unexpected(what, at)),
        }
    }

    pub(crate) fn expect_array(&mut self, what: &'static str, len: u32) -> Result<(), DecodeError> {
        let found = self.array_len(what)?;
        if found != len {
            return Err(DecodeError::WrongLength {
                what,
                expected: ["0", "1", "2", "3"]
                    .get(len as usize)
                    .copied()
                    .unwrap_or("more"),
                found,
            });
        }
        Ok(())
    }

    pub(crate) fn map_len(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        match self.marker(what)? {
            (Marker::FixMap(n), _) => Ok(u32::from(n)),
            (Marker::Map16, _) => Ok(self.be(2, what)? as u32),
            (Marker::Map32, _) => Ok(self.be(4, what)? as u32),
            (_, at) => Err(self.unexpected(what, at)),
        }
    }

    pub(crate) fn str(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let len = match self.marker(what)? {
            (Marker::FixStr(n), _) => usize::from(n),
            (Marker::Str8, _) => self.be(1, what)? as usize,
            (Marker::Str16, _) => self.be(2, what)? as usize,
            (Marker::Str32, _) => self.be(4, what)? as usize,
            (_, at) => return Err(self.unexpected(what, at)),
        };
        std::str::from_utf8(self.take(len, what)?).map_err(|_| DecodeError::InvalidUtf8 { what })
    }

    pub(crate) fn bin(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = match self.marker(what)? {
            (Marker::Bin8, _) => self.be(1, what)? as usize,
            (Marker::Bin16, _) => self.be(2, what)? as usize,
            (Marker::Bin32, _) => self.be(4, what)? as usize,
            (_, at) => return Err(self.unexpected(what, at)),
        };
        self.take(len, what)
    }

    /// Consumes a nil if one is next.
    pub(crate) fn nil(&mut self) -> Result<bool, DecodeError> {
        if self.peek("value")? == Marker::Null {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// A non-negative integer of any msgpack width, signed or not.
    pub(crate) fn uint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let out_of_range = DecodeError::OutOfRange { what };
        match self.marker(what)? {
            (Marker::FixPos(n), _) => Ok(u64::from(n)),
            (Marker::U8, _) => self.be(1, what),
            (Marker::U16, _) => self.be(2, what),
            (Marker::U32, _) => self.be(4, what),
            (Marker::U64, _) => self.be(8, what),
            (Marker::FixNeg(_), _) => Err(out_of_range),
            (m @ (Marker::I8 | Marker::I16 | Marker::I32 | Marker::I64), _) => {
                let n = match m {
                    Marker::I8 => 1,
                    Marker::I16 => 2,
                    Marker::I32 => 4,
                    _ => 8,
                };
                let raw = self.be(n, what)?;
                let shift = 64 - 8 * n as u32;
                // Sign-extend the big-endian two's complement value.
                let v = ((raw << shift) as i64) >> shift;
                u64::try_from(v).map_err(|_| out_of_range)
            }
            (_, at) => Err(self.unexpected(what, at)),
        }
    }

    pub(crate) fn opt_uint(&mut self, what: &'static str) -> Result<Option<u64>, DecodeError> {
        if self.nil()? {
            return Ok(None);
        }
        self.uint(what).map(Some)
    }

    pub(crate) fn f64(&mut self, what: &'static str) -> Result<f64, DecodeError> {
        match self.marker(what)? {
            (Marker::F64, _) => Ok(f64::from_bits(self.be(8, what)?)),
            (Marker::F32, _) => Ok(f64::from(f32::from_bits(self.be(4, what)? as u32))),
            (_, at) => Err(self.unexpected(what, at)),
        }
    }

    /// Skips one value of any type. Each element consumes at least one byte,
    /// so a lying element count runs out of input instead of looping long.
    pub(crate) fn skip(&mut self, what: &'static str, depth: usize) -> Result<(), DecodeError> {
        if depth >= MAX_SKIP_DEPTH {
            return Err(DecodeError::TooDeep {
                what,
                max: MAX_SKIP_DEPTH,
            });
        }
        let (marker, at) = self.marker(what)?;
        let (skip_bytes, children) = match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                (0, 0)
            }
            Marker::U8 | Marker::I8 => (1, 0),
            Marker::U16 | Marker::I16 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            Marker::FixStr(n) => (usize::from(n), 0),
            Marker::Str8 | Marker::Bin8 => (self.be(1, what)? as usize, 0),
            Marker::Str16 | Marker::Bin16 => (self.be(2, what)? as usize, 0),
            Marker::Str32 | Marker::Bin32 => (self.be(4, what)? as usize, 0),
            Marker::FixExt1 => (2, 0),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::Ext8 => (self.be(1, what)? as usize + 1, 0),
            Marker::Ext16 => (self.be(2, what)? as usize + 1, 0),
            Marker::Ext32 => (self.be(4, what)? as usize + 1, 0),
            Marker::FixArray(n) => (0, u64::from(n)),
            Marker::Array16 => (0, self.be(2, what)?),
            Marker::Array32 => (0, self.be(4, what)?),
            Marker::FixMap(n) => (0, 2 * u64::from(n)),
            Marker::Map16 => (0, 2 * self.be(2, what)?),
            Marker::Map32 => (0, 2 * self.be(4, what)?),
            Marker::Reserved => return Err(self.unexpected(what, at)),
        };
        self.take(skip_bytes, what)?;
        for _ in 0..children {
            self.skip(what, depth + 1)?;
        }
        Ok(())
    }

    pub(crate) fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            found => Err(DecodeError::TrailingBytes { what, found }),
        }
    }
}

/// The deepest nesting a payload may have: msgpack-python's packer stops
/// at 511 levels, so nothing deeper can come from a well-behaved producer.
pub const MAX_PAYLOAD_DEPTH: usize = 512;

/// Why a payload would not read back as the value that was added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error(
        "a map key at byte {offset} is {kind}; msgpack readers (Python's msgpack, \
         msgpackr) cannot use it as a key, so every worker would dead-letter the job \
         as decode_failed. Use str, int, float, bool, None or bytes keys (turn a \
         tuple key into a string such as \"1,2\")"
    )]
    CompoundKey { offset: usize, kind: &'static str },
    #[error("is not one msgpack value: {0}")]
    Malformed(DecodeError),
    #[error("nests deeper than {max} levels; flatten it")]
    TooDeep { max: usize },
}

/// Checks that `payload` (the msgpack of a job's data) is one value whose
/// map keys are all scalars, so that every reader decodes it back. One
/// pass over the bytes, no allocation beyond a small stack: cheap enough
/// for every add.
pub fn check_payload(payload: &[u8]) -> Result<(), PayloadError> {
    struct Open {
        children: u64,
        seen: u64,
        is_map: bool,
    }
    let malformed = PayloadError::Malformed;
    let mut r = Reader::new(payload);
    let mut stack: Vec<Open> = Vec::new();
    loop {
        // A map's even-numbered children are its keys.
        let is_key = stack.last().is_some_and(|o| o.is_map && o.seen % 2 == 0);
        if let Some(o) = stack.last_mut() {
            o.seen += 1;
        }
        let at = r.pos;
        let opened = match r.peek("payload").map_err(malformed)? {
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                Some((u64::from(r.array_len("payload").map_err(malformed)?), false))
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => Some((
                2 * u64::from(r.map_len("payload").map_err(malformed)?),
                true,
            )),
            _ => {
                r.skip("payload", 0).map_err(malformed)?;
                None
            }
        };
        if let Some((children, is_map)) = opened {
            if is_key {
                return Err(PayloadError::CompoundKey {
                    offset: at,
                    kind: if is_map {
                        "a map"
                    } else {
                        "an array (a tuple or list)"
                    },
                });
            }
            if children > 0 {
                if stack.len() + 1 >= MAX_PAYLOAD_DEPTH {
                    return Err(PayloadError::TooDeep {
                        max: MAX_PAYLOAD_DEPTH,
                    });
                }
                stack.push(Open {
                    children,
                    seen: 0,
                    is_map,
                });
                continue;
            }
        }
        while stack.last().is_some_and(|o| o.seen == o.children) {
            stack.pop();
        }
        if stack.is_empty() {
            return r.finish("payload").map_err(malformed);
        }
    }
}

#[cfg(test)]
mod payload_tests {
    use super::*;

    fn ok(b: &[u8]) -> bool {
        check_payload(b).is_ok()
    }

    #[test]
    fn scalars_and_nested_containers_with_scalar_keys_pass() {
        assert!(ok(&[0xc0])); // nil
        assert!(ok(&[0x90])); // []
        assert!(ok(&[0x80])); // {}
                              // {"a": [1, {"b": 2}], 3: h'00'}
        assert!(ok(&[
            0x82, 0xa1, b'a', 0x92, 0x01, 0x81, 0xa1, b'b', 0x02, 0x03, 0xc4, 0x01, 0x00
        ]));
        // {[]: 1}: an empty array is still an array key
        assert!(!ok(&[0x81, 0x90, 0x01]));
    }

    #[test]
    fn an_array_or_map_key_is_rejected_with_its_offset() {
        // {"x": {[1, 2]: 3}}: the tuple key sits at byte 4
        let b = [0x81, 0xa1, b'x', 0x81, 0x92, 0x01, 0x02, 0x03];
        assert_eq!(
            check_payload(&b),
            Err(PayloadError::CompoundKey {
                offset: 4,
                kind: "an array (a tuple or list)"
            })
        );
        // {{}: 1}
        assert!(matches!(
            check_payload(&[0x81, 0x80, 0x01]),
            Err(PayloadError::CompoundKey { kind: "a map", .. })
        ));
        // A map as a value is fine: {1: {}}
        assert!(ok(&[0x81, 0x01, 0x80]));
    }

    #[test]
    fn truncated_trailing_and_too_deep_input_is_rejected() {
        assert!(matches!(
            check_payload(&[0x92, 0x01]),
            Err(PayloadError::Malformed(_))
        ));
        assert!(matches!(
            check_payload(&[0x01, 0x02]),
            Err(PayloadError::Malformed(DecodeError::TrailingBytes { .. }))
        ));
        assert!(matches!(
            check_payload(&[]),
            Err(PayloadError::Malformed(_))
        ));
        let mut deep = vec![0x91; MAX_PAYLOAD_DEPTH];
        deep.push(0xc0);
        assert_eq!(
            check_payload(&deep),
            Err(PayloadError::TooDeep {
                max: MAX_PAYLOAD_DEPTH
            })
        );
        let mut fine = vec![0x91; MAX_PAYLOAD_DEPTH - 2];
        fine.push(0xc0);
        assert!(ok(&fine));
    }
}
