//! The job envelope, its retry override, the delayed-set member and the
//! retry backoff: byte for byte the ChasquiMQ 1.x layout
//! (`spec/wire/` holds the vectors; `docs/wire-format.md` the prose).

use crate::errors::{Error, Result};
use rand::Rng;

/// Backoff kind of a retry override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackoffKind {
    Fixed,
    Exponential,
}

impl BackoffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackoffKind::Fixed => "fixed",
            BackoffKind::Exponential => "exponential",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "fixed" => Ok(BackoffKind::Fixed),
            "exponential" => Ok(BackoffKind::Exponential),
            other => Err(Error::invalid_argument(
                "backoff.kind",
                format!("unknown backoff kind {other:?}; use \"fixed\" or \"exponential\""),
            )),
        }
    }
}

/// Retry backoff. `None` fields fall back to the queue-wide default.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub kind: BackoffKind,
    pub delay_ms: u64,
    pub max_delay_ms: Option<u64>,
    pub multiplier: Option<f64>,
    pub jitter_ms: Option<u64>,
}

impl Backoff {
    /// The queue-wide default: exponential, 100 ms, x2, at most 30 s, jitter 100 ms.
    pub fn queue_default() -> Backoff {
        Backoff {
            kind: BackoffKind::Exponential,
            delay_ms: 100,
            max_delay_ms: Some(30_000),
            multiplier: Some(2.0),
            jitter_ms: Some(100),
        }
    }

    /// Delay before run number `next + 1`, where `next` is the new attempt
    /// counter (1 after the first failure). Jitter comes from `jitter`,
    /// a value in `[0, 1)`, so tests can pin it.
    pub fn delay_for(&self, next: u32, jitter: f64) -> u64 {
        let d = Backoff::queue_default();
        let base = match self.kind {
            BackoffKind::Fixed => self.delay_ms as f64,
            BackoffKind::Exponential => {
                let m = self.multiplier.or(d.multiplier).unwrap_or(2.0);
                let exp = next.saturating_sub(1).min(1_000) as i32;
                self.delay_ms as f64 * m.powi(exp)
            }
        };
        let cap = self.max_delay_ms.or(d.max_delay_ms).unwrap_or(u64::MAX) as f64;
        let base = if base.is_finite() { base.min(cap) } else { cap };
        let jitter_ms = self.jitter_ms.or(d.jitter_ms).unwrap_or(0) as f64;
        let j = (jitter.clamp(0.0, 0.999_999) * jitter_ms).floor();
        (base.max(0.0) + j).min(u64::MAX as f64) as u64
    }

    /// `delay_for` with a random jitter.
    pub fn delay_random(&self, next: u32) -> u64 {
        self.delay_for(next, rand::rng().random::<f64>())
    }
}

/// Per-job retry override: the envelope's optional fifth element.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetryOverride {
    pub max_attempts: Option<u32>,
    pub backoff: Option<Backoff>,
}

/// The job envelope stored in the stream's `d` field.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: String,
    /// msgpack of the user's data (opaque to the engine).
    pub payload: Vec<u8>,
    pub created_at_ms: u64,
    /// Number of previous failed runs (0 on the first run).
    pub attempt: u32,
    pub retry: Option<RetryOverride>,
}

fn w_str(out: &mut Vec<u8>, s: &str) {
    rmp::encode::write_str(out, s).expect("writing to a Vec cannot fail");
}
fn w_uint(out: &mut Vec<u8>, v: u64) {
    rmp::encode::write_uint(out, v).expect("writing to a Vec cannot fail");
}
fn w_opt_uint(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => w_uint(out, v),
        None => rmp::encode::write_nil(out).expect("writing to a Vec cannot fail"),
    }
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.payload.len());
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = if self.retry.is_some() { 5 } else { 4 };
        rmp::encode::write_array_len(out, len).expect("vec");
        w_str(out, &self.id);
        rmp::encode::write_bin(out, &self.payload).expect("vec");
        rmp::encode::write_u64(out, self.created_at_ms).expect("vec");
        w_uint(out, self.attempt as u64);
        if let Some(r) = &self.retry {
            encode_retry(out, r);
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Envelope> {
        let mut rd = bytes;
        let n = read_array_len(&mut rd)?;
        if !(3..=5).contains(&n) {
            return Err(Error::Decode(format!(
                "envelope must be an array of 3 to 5 elements, got {n}"
            )));
        }
        let id = read_str(&mut rd)?.to_string();
        let payload = read_bin(&mut rd)?.to_vec();
        let created_at_ms = read_uint(&mut rd)?;
        let attempt = if n >= 4 {
            read_uint(&mut rd)?.min(u32::MAX as u64) as u32
        } else {
            0
        };
        let retry = if n == 5 { decode_retry(&mut rd)? } else { None };
        if !rd.is_empty() {
            return Err(Error::Decode(format!(
                "{} trailing bytes after the envelope",
                rd.len()
            )));
        }
        Ok(Envelope {
            id,
            payload,
            created_at_ms,
            attempt,
            retry,
        })
    }
}

/// Encodes a retry override as `[max_attempts|nil, backoff|nil]`.
pub fn encode_retry(out: &mut Vec<u8>, r: &RetryOverride) {
    rmp::encode::write_array_len(out, 2).expect("vec");
    w_opt_uint(out, r.max_attempts.map(u64::from));
    match &r.backoff {
        None => rmp::encode::write_nil(out).expect("vec"),
        Some(b) => {
            rmp::encode::write_array_len(out, 5).expect("vec");
            w_str(out, b.kind.as_str());
            w_uint(out, b.delay_ms);
            w_opt_uint(out, b.max_delay_ms);
            match b.multiplier {
                Some(m) => rmp::encode::write_f64(out, m).expect("vec"),
                None => rmp::encode::write_nil(out).expect("vec"),
            }
            w_opt_uint(out, b.jitter_ms);
        }
    }
}

/// Decodes `[max_attempts|nil, backoff|nil]`; a bare nil means no override.
pub fn decode_retry(rd: &mut &[u8]) -> Result<Option<RetryOverride>> {
    if take_nil(rd) {
        return Ok(None);
    }
    let n = read_array_len(rd)?;
    if n != 2 {
        return Err(Error::Decode(format!(
            "retry override must be an array of 2, got {n}"
        )));
    }
    let max_attempts = if take_nil(rd) {
        None
    } else {
        Some(read_uint(rd)?.min(u32::MAX as u64) as u32)
    };
    let backoff = if take_nil(rd) {
        None
    } else {
        let n = read_array_len(rd)?;
        if n != 5 {
            return Err(Error::Decode(format!(
                "backoff must be an array of 5, got {n}"
            )));
        }
        let kind = BackoffKind::parse(read_str(rd)?).map_err(|e| Error::Decode(e.to_string()))?;
        let delay_ms = read_uint(rd)?;
        let max_delay_ms = if take_nil(rd) {
            None
        } else {
            Some(read_uint(rd)?)
        };
        let multiplier = if take_nil(rd) {
            None
        } else {
            Some(read_f64(rd)?)
        };
        let jitter_ms = if take_nil(rd) {
            None
        } else {
            Some(read_uint(rd)?)
        };
        Some(Backoff {
            kind,
            delay_ms,
            max_delay_ms,
            multiplier,
            jitter_ms,
        })
    };
    Ok(Some(RetryOverride {
        max_attempts,
        backoff,
    }))
}

/// Delayed-set member: u32 LE name length, name, envelope bytes.
pub fn encode_member(name: &str, envelope: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + name.len() + envelope.len());
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(envelope);
    out
}

/// Splits a delayed-set member into (name, envelope bytes).
pub fn decode_member(member: &[u8]) -> Result<(&str, &[u8])> {
    if member.len() < 4 {
        return Err(Error::Decode(
            "delayed member shorter than its 4-byte length prefix".into(),
        ));
    }
    let len = u32::from_le_bytes([member[0], member[1], member[2], member[3]]) as usize;
    let rest = &member[4..];
    if len > rest.len() {
        return Err(Error::Decode(format!(
            "delayed member name length {len} overruns the member"
        )));
    }
    let name = std::str::from_utf8(&rest[..len])
        .map_err(|_| Error::Decode("delayed member name is not UTF-8".into()))?;
    Ok((name, &rest[len..]))
}

// ---- small msgpack readers over a byte slice; never allocate from an
// untrusted length, never panic.

fn need(rd: &[u8], n: usize) -> Result<()> {
    if rd.len() < n {
        Err(Error::Decode("truncated msgpack".into()))
    } else {
        Ok(())
    }
}

fn take_nil(rd: &mut &[u8]) -> bool {
    if rd.first() == Some(&0xc0) {
        *rd = &rd[1..];
        true
    } else {
        false
    }
}

fn be(rd: &mut &[u8], n: usize) -> Result<u64> {
    need(rd, n)?;
    let mut v = 0u64;
    for b in &rd[..n] {
        v = (v << 8) | *b as u64;
    }
    *rd = &rd[n..];
    Ok(v)
}

fn marker(rd: &mut &[u8]) -> Result<u8> {
    need(rd, 1)?;
    let m = rd[0];
    *rd = &rd[1..];
    Ok(m)
}

pub(crate) fn read_array_len(rd: &mut &[u8]) -> Result<usize> {
    let m = marker(rd)?;
    Ok(match m {
        0x90..=0x9f => (m & 0x0f) as usize,
        0xdc => be(rd, 2)? as usize,
        0xdd => be(rd, 4)? as usize,
        _ => {
            return Err(Error::Decode(format!(
                "expected a msgpack array, found marker 0x{m:02x}"
            )))
        }
    })
}

pub(crate) fn read_str<'a>(rd: &mut &'a [u8]) -> Result<&'a str> {
    let m = marker(rd)?;
    let len = match m {
        0xa0..=0xbf => (m & 0x1f) as usize,
        0xd9 => be(rd, 1)? as usize,
        0xda => be(rd, 2)? as usize,
        0xdb => be(rd, 4)? as usize,
        _ => {
            return Err(Error::Decode(format!(
                "expected a msgpack str, found marker 0x{m:02x}"
            )))
        }
    };
    need(rd, len)?;
    let (s, rest) = rd.split_at(len);
    *rd = rest;
    std::str::from_utf8(s).map_err(|_| Error::Decode("msgpack str is not UTF-8".into()))
}

pub(crate) fn read_bin<'a>(rd: &mut &'a [u8]) -> Result<&'a [u8]> {
    let m = marker(rd)?;
    let len = match m {
        0xc4 => be(rd, 1)? as usize,
        0xc5 => be(rd, 2)? as usize,
        0xc6 => be(rd, 4)? as usize,
        _ => {
            return Err(Error::Decode(format!(
                "expected msgpack bin, found marker 0x{m:02x}"
            )))
        }
    };
    need(rd, len)?;
    let (s, rest) = rd.split_at(len);
    *rd = rest;
    Ok(s)
}

pub(crate) fn read_uint(rd: &mut &[u8]) -> Result<u64> {
    let m = marker(rd)?;
    match m {
        0x00..=0x7f => Ok(m as u64),
        0xcc => be(rd, 1),
        0xcd => be(rd, 2),
        0xce => be(rd, 4),
        0xcf => be(rd, 8),
        // Signed encodings of non-negative values are accepted.
        0xd0..=0xd3 => {
            let n = 1usize << (m - 0xd0);
            let raw = be(rd, n)?;
            let shift = 64 - 8 * n as u32;
            let v = ((raw << shift) as i64) >> shift;
            u64::try_from(v)
                .map_err(|_| Error::Decode(format!("expected an unsigned int, found {v}")))
        }
        _ => Err(Error::Decode(format!(
            "expected a msgpack uint, found marker 0x{m:02x}"
        ))),
    }
}

fn read_f64(rd: &mut &[u8]) -> Result<f64> {
    need(rd, 1)?;
    match rd[0] {
        0xcb => {
            *rd = &rd[1..];
            Ok(f64::from_bits(be(rd, 8)?))
        }
        0xca => {
            *rd = &rd[1..];
            Ok(f32::from_bits(be(rd, 4)? as u32) as f64)
        }
        // Integers are accepted where a float is expected.
        _ => Ok(read_uint(rd)? as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulid26() -> String {
        "01JD6Z3Q0J6M1V0Q5X5W8J4K2B".to_string()
    }

    #[test]
    fn envelope_bytes_match_the_wire_reference() {
        // Python add("send-email", {"to": "a@x", "n": 1})
        let payload = vec![
            0x82, 0xa2, 0x74, 0x6f, 0xa3, 0x61, 0x40, 0x78, 0xa1, 0x6e, 0x01,
        ];
        let env = Envelope {
            id: ulid26(),
            payload,
            created_at_ms: 1_700_000_000_123,
            attempt: 0,
            retry: None,
        };
        let b = env.encode();
        let mut expect = vec![0x94, 0xba];
        expect.extend_from_slice(ulid26().as_bytes());
        expect.extend_from_slice(&[
            0xc4, 0x0b, 0x82, 0xa2, 0x74, 0x6f, 0xa3, 0x61, 0x40, 0x78, 0xa1, 0x6e, 0x01, 0xcf,
        ]);
        expect.extend_from_slice(&1_700_000_000_123u64.to_be_bytes());
        expect.push(0x00);
        assert_eq!(b, expect);
        assert_eq!(Envelope::decode(&b).unwrap(), env);
    }

    #[test]
    fn retry_override_bytes_match_the_wire_reference() {
        let r = RetryOverride {
            max_attempts: Some(5),
            backoff: Some(Backoff {
                kind: BackoffKind::Exponential,
                delay_ms: 250,
                max_delay_ms: Some(10_000),
                multiplier: Some(3.0),
                jitter_ms: Some(50),
            }),
        };
        let mut out = Vec::new();
        encode_retry(&mut out, &r);
        let mut expect = vec![0x92, 0x05, 0x95, 0xab];
        expect.extend_from_slice(b"exponential");
        expect.extend_from_slice(&[0xcc, 0xfa, 0xcd, 0x27, 0x10, 0xcb]);
        expect.extend_from_slice(&3.0f64.to_be_bytes());
        expect.push(0x32);
        assert_eq!(out, expect);
        let env = Envelope {
            id: "x".into(),
            payload: vec![0xc0],
            created_at_ms: 1,
            attempt: 2,
            retry: Some(r),
        };
        assert_eq!(Envelope::decode(&env.encode()).unwrap(), env);
    }

    #[test]
    fn three_element_envelope_means_attempt_zero() {
        let mut b = vec![0x93, 0xa1, b'a', 0xc4, 0x01, 0xc0, 0x05];
        let e = Envelope::decode(&b).unwrap();
        assert_eq!((e.id.as_str(), e.attempt, e.created_at_ms), ("a", 0, 5));
        b[0] = 0x96;
        assert!(Envelope::decode(&b).is_err());
    }

    #[test]
    fn decoder_never_panics_on_prefixes_or_noise() {
        let env = Envelope {
            id: ulid26(),
            payload: vec![1, 2, 3],
            created_at_ms: 9,
            attempt: 3,
            retry: Some(RetryOverride {
                max_attempts: None,
                backoff: None,
            }),
        };
        let b = env.encode();
        for i in 0..b.len() {
            assert!(Envelope::decode(&b[..i]).is_err());
        }
        // A length prefix claiming gigabytes.
        assert!(Envelope::decode(&[0x94, 0xdb, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Envelope::decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..2000 {
            let n = (x % 40) as usize;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(x as u8);
            }
            let _ = Envelope::decode(&v);
        }
    }

    #[test]
    fn member_round_trip_and_malformed_members() {
        let m = encode_member("send", &[0x90]);
        assert_eq!(&m[..4], &[4, 0, 0, 0]);
        assert_eq!(decode_member(&m).unwrap(), ("send", &[0x90][..]));
        let empty = encode_member("", &[0x91]);
        assert_eq!(&empty[..5], &[0, 0, 0, 0, 0x91]);
        assert!(decode_member(&[1, 0]).is_err());
        assert!(decode_member(&[9, 0, 0, 0, b'a']).is_err());
    }

    #[test]
    fn backoff_follows_the_wire_rules() {
        let exp = Backoff {
            kind: BackoffKind::Exponential,
            delay_ms: 100,
            max_delay_ms: Some(1_000),
            multiplier: Some(2.0),
            jitter_ms: Some(0),
        };
        assert_eq!(exp.delay_for(1, 0.0), 100);
        assert_eq!(exp.delay_for(2, 0.0), 200);
        assert_eq!(exp.delay_for(4, 0.0), 800);
        assert_eq!(exp.delay_for(5, 0.0), 1_000);
        assert_eq!(exp.delay_for(500, 0.0), 1_000);
        let fixed = Backoff {
            kind: BackoffKind::Fixed,
            delay_ms: 70,
            max_delay_ms: None,
            multiplier: None,
            jitter_ms: Some(10),
        };
        assert_eq!(fixed.delay_for(3, 0.0), 70);
        assert_eq!(fixed.delay_for(3, 0.95), 79);
        // nil fields fall back to the queue-wide default (jitter 100, max 30 s, x2)
        let sparse = Backoff {
            kind: BackoffKind::Exponential,
            delay_ms: 10_000,
            max_delay_ms: None,
            multiplier: None,
            jitter_ms: None,
        };
        assert_eq!(sparse.delay_for(3, 0.0), 30_000);
        assert_eq!(sparse.delay_for(2, 0.5), 20_050);
    }
}
