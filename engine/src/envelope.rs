//! The job envelope, its retry override, the delayed-set member and the
//! retry backoff: byte for byte the ChasquiMQ 1.x layout
//! (`conformance/vectors/` holds the golden vectors; `docs/wire-format.md` the prose).

use crate::errors::{Error, Result};
use crate::msgpack::{DecodeError, Reader};
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

/// Per-job retry override: the envelope's optional fifth element,
/// `[max_attempts|nil, backoff|nil]`, with a third slot `timeout_ms` that
/// is written only when the job has a time limit (so jobs without one keep
/// the 1.x bytes; readers skip slots they do not know).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetryOverride {
    pub max_attempts: Option<u32>,
    pub backoff: Option<Backoff>,
    /// Per-job time limit of one run, in ms (overrides the worker's).
    pub timeout_ms: Option<u64>,
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
        Self::read(bytes).map_err(|e| Error::Decode(e.to_string()))
    }

    fn read(bytes: &[u8]) -> std::result::Result<Envelope, DecodeError> {
        let mut r = Reader::new(bytes);
        let n = r.array_len("envelope")?;
        if !(3..=5).contains(&n) {
            return Err(DecodeError::WrongLength {
                what: "envelope",
                expected: "3 to 5",
                found: n,
            });
        }
        let id = r.str("envelope.id")?.to_string();
        let payload = r.bin("envelope.payload")?.to_vec();
        let created_at_ms = r.uint("envelope.created_at_ms")?;
        let attempt = if n >= 4 {
            r.uint("envelope.attempt")?.min(u32::MAX as u64) as u32
        } else {
            0
        };
        let retry = if n == 5 && !r.nil()? {
            Some(read_retry(&mut r, "envelope.retry")?)
        } else {
            None
        };
        r.finish("envelope")?;
        Ok(Envelope {
            id,
            payload,
            created_at_ms,
            attempt,
            retry,
        })
    }
}

/// Encodes a retry override as `[max_attempts|nil, backoff|nil]`, plus
/// `timeout_ms` as a third element when set.
pub fn encode_retry(out: &mut Vec<u8>, r: &RetryOverride) {
    let len = if r.timeout_ms.is_some() { 3 } else { 2 };
    rmp::encode::write_array_len(out, len).expect("vec");
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
    if let Some(t) = r.timeout_ms {
        w_uint(out, t);
    }
}

/// Reads `[max_attempts|nil, backoff|nil]` (the envelope's fifth element and
/// a repeatable's `opts`). Longer arrays are accepted and their extra
/// elements skipped, so later versions can add slots.
pub(crate) fn read_retry(
    r: &mut Reader<'_>,
    what: &'static str,
) -> std::result::Result<RetryOverride, DecodeError> {
    let len = r.array_len(what)?;
    if len < 2 {
        return Err(DecodeError::WrongLength {
            what,
            expected: "2 or more",
            found: len,
        });
    }
    let max_attempts = match r.opt_uint("max_attempts")? {
        None => None,
        Some(n) => Some(u32::try_from(n).map_err(|_| DecodeError::OutOfRange {
            what: "max_attempts",
        })?),
    };
    let backoff = if r.nil()? {
        None
    } else {
        Some(read_backoff(r)?)
    };
    let timeout_ms = if len >= 3 {
        r.opt_uint("timeout_ms")?
    } else {
        None
    };
    for _ in 3..len {
        r.skip("retry override (extra element)", 0)?;
    }
    Ok(RetryOverride {
        max_attempts,
        backoff,
        timeout_ms,
    })
}

fn read_backoff(r: &mut Reader<'_>) -> std::result::Result<Backoff, DecodeError> {
    const WHAT: &str = "backoff";
    let len = r.array_len(WHAT)?;
    if len < 5 {
        return Err(DecodeError::WrongLength {
            what: WHAT,
            expected: "5 or more",
            found: len,
        });
    }
    let kind = match r.str("backoff.kind")? {
        "fixed" => BackoffKind::Fixed,
        "exponential" => BackoffKind::Exponential,
        other => {
            return Err(DecodeError::UnknownVariant {
                what: "backoff.kind",
                found: other.to_owned(),
            })
        }
    };
    let delay_ms = r.uint("backoff.delay_ms")?;
    let max_delay_ms = r.opt_uint("backoff.max_delay_ms")?;
    let multiplier = if r.nil()? {
        None
    } else {
        Some(r.f64("backoff.multiplier")?)
    };
    let jitter_ms = r.opt_uint("backoff.jitter_ms")?;
    for _ in 5..len {
        r.skip("backoff (extra element)", 0)?;
    }
    Ok(Backoff {
        kind,
        delay_ms,
        max_delay_ms,
        multiplier,
        jitter_ms,
    })
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
            timeout_ms: None,
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
    fn timeout_rides_a_third_override_slot_only_when_set() {
        let mut r = RetryOverride {
            timeout_ms: Some(5_000),
            ..Default::default()
        };
        let mut out = Vec::new();
        encode_retry(&mut out, &r);
        assert_eq!(out, [0x93, 0xc0, 0xc0, 0xcd, 0x13, 0x88]);
        let env = Envelope {
            id: "x".into(),
            payload: vec![0xc0],
            created_at_ms: 1,
            attempt: 0,
            retry: Some(r.clone()),
        };
        assert_eq!(Envelope::decode(&env.encode()).unwrap(), env);
        // Without a time limit the override keeps the two 1.x slots.
        r.timeout_ms = None;
        r.max_attempts = Some(3);
        out.clear();
        encode_retry(&mut out, &r);
        assert_eq!(out, [0x92, 0x03, 0xc0]);
        // A later fourth slot is skipped.
        let four = [0x94, 0x03, 0xc0, 0x0a, 0xa1, b'z'];
        let mut rd = Reader::new(&four);
        let got = read_retry(&mut rd, "retry").unwrap();
        assert_eq!((got.max_attempts, got.timeout_ms), (Some(3), Some(10)));
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
                timeout_ms: Some(1_500),
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
