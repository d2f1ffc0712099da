//! The msgpack values stored in a `repeat:spec:<key>` hash.
//!
//! [`StoredSpec`] is byte-exact with 1.x (hash field `spec`); [`SpecOptions`]
//! is the ChasquiMQ 2 field `opts` (see the [parent module](super)).
//!
//! Decoding reads untrusted bytes: it never panics, never allocates from a
//! length prefix (lengths are checked against the bytes actually present
//! before anything is sliced, and element counts are compared with the
//! expected shape), and reports what it expected where, as a [`DecodeError`].

use rmp::Marker;

use super::missed::MissedFires;
use super::pattern::Pattern;
use super::RepeatError;
use crate::msgpack::{DecodeError, Reader, Writer};

/// The hash field holding [`SpecOptions`].
pub const OPTS_FIELD: &str = "opts";

/// A repeatable spec as 1.x stores it (hash field `spec`).
///
/// Wire: a msgpack array of 8 elements, or 9 when `missed_fires` is not
/// `Skip`: `[key, job_name, pattern, payload, limit|nil, start_after_ms|nil,
/// end_before_ms|nil, fired, missed_fires?]`, with
///
/// - `pattern` = `{"Cron": [expression, tz|nil]}` or `{"Every": [interval_ms]}`;
/// - `payload` = a bin holding the msgpack encoding of a bin holding the
///   user's msgpack bytes (`{"c": 1}` is `c4 06 c4 04 81 a1 63 01`);
/// - `fired` = always written as 0; the live counter is the hash's `fired`
///   field, so it is not part of this struct (decoding checks it is a uint);
/// - `missed_fires` = `"FireOnce"` or `{"FireAll": [max_catchup]}`.
///
/// Integers use their shortest encoding and strings are msgpack str.
/// Decoding checks the shape only: a cron expression that no longer parses
/// still decodes, so it can be listed and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSpec {
    pub key: String,
    pub job_name: String,
    pub pattern: Pattern,
    /// The user's msgpack bytes: what a fire puts in its envelope's payload.
    pub payload: Vec<u8>,
    pub limit: Option<u64>,
    pub start_after_ms: Option<u64>,
    pub end_before_ms: Option<u64>,
    pub missed_fires: MissedFires,
}

/// Retry settings applied to every fire of a spec (hash field `opts`, a
/// ChasquiMQ 2 extension): the job envelope's retry override, same type and
/// same bytes, so a fire copies it into the envelope's fifth element.
pub type SpecOptions = crate::envelope::RetryOverride;
pub use crate::envelope::{Backoff, BackoffKind};

impl StoredSpec {
    /// Encodes the 1.x bytes (see the type docs).
    pub fn encode(&self) -> Result<Vec<u8>, RepeatError> {
        let mut w = Writer::default();
        let with_policy = self.missed_fires != MissedFires::Skip;
        w.array_len(if with_policy { 9 } else { 8 });
        w.str("key", &self.key)?;
        w.str("job_name", &self.job_name)?;
        w.map_len(1);
        match &self.pattern {
            Pattern::Cron { expression, tz } => {
                w.str("repeat", "Cron")?;
                w.array_len(2);
                w.str("repeat.expression", expression)?;
                match tz {
                    Some(tz) => w.str("repeat.tz", tz)?,
                    None => w.nil(),
                }
            }
            Pattern::Every { interval_ms } => {
                w.str("repeat", "Every")?;
                w.array_len(1);
                w.uint(*interval_ms);
            }
        }
        let mut inner = Writer::default();
        inner.bin("data", &self.payload)?;
        w.bin("data", &inner.into_bytes())?;
        w.opt_uint(self.limit);
        w.opt_uint(self.start_after_ms);
        w.opt_uint(self.end_before_ms);
        w.uint(0);
        match self.missed_fires {
            MissedFires::Skip => {}
            MissedFires::FireOnce => w.str("missed_fires", "FireOnce")?,
            MissedFires::FireAll { max_catchup } => {
                w.map_len(1);
                w.str("missed_fires", "FireAll")?;
                w.array_len(1);
                w.uint(u64::from(max_catchup));
            }
        }
        Ok(w.into_bytes())
    }

    /// Decodes 1.x (or our) bytes; see the type docs for what is checked.
    ///
    /// Lenient where 1.x bytes could differ harmlessly: any msgpack integer
    /// width, a 9th element `"Skip"`, and `{"FireAll": [0]}` (which 1.x
    /// treats as skip) all decode, the last two as `MissedFires::Skip`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let len = r.array_len("spec")?;
        if len != 8 && len != 9 {
            return Err(DecodeError::WrongLength {
                what: "spec",
                expected: "8 or 9",
                found: len,
            });
        }
        let key = r.str("spec.key")?.to_owned();
        let job_name = r.str("spec.job_name")?.to_owned();
        let pattern = decode_pattern(&mut r)?;
        let payload = {
            let outer = r.bin("spec.payload")?;
            let mut inner = Reader::new(outer);
            let payload = inner.bin("spec.payload (inner bin)")?.to_vec();
            inner.finish("spec.payload (inner bin)")?;
            payload
        };
        let limit = r.opt_uint("spec.limit")?;
        let start_after_ms = r.opt_uint("spec.start_after_ms")?;
        let end_before_ms = r.opt_uint("spec.end_before_ms")?;
        r.uint("spec.fired")?;
        let missed_fires = if len == 9 {
            decode_missed_fires(&mut r)?
        } else {
            MissedFires::Skip
        };
        r.finish("spec")?;
        Ok(StoredSpec {
            key,
            job_name,
            pattern,
            payload,
            limit,
            start_after_ms,
            end_before_ms,
            missed_fires,
        })
    }
}

fn decode_pattern(r: &mut Reader<'_>) -> Result<Pattern, DecodeError> {
    const WHAT: &str = "spec.pattern";
    let len = r.map_len(WHAT)?;
    if len != 1 {
        return Err(DecodeError::WrongLength {
            what: WHAT,
            expected: "1 (map)",
            found: len,
        });
    }
    match r.str(WHAT)? {
        "Cron" => {
            r.expect_array("spec.pattern.Cron", 2)?;
            let expression = r.str("spec.pattern.Cron.expression")?.to_owned();
            let tz = if r.nil()? {
                None
            } else {
                Some(r.str("spec.pattern.Cron.tz")?.to_owned())
            };
            Ok(Pattern::Cron { expression, tz })
        }
        "Every" => {
            r.expect_array("spec.pattern.Every", 1)?;
            let interval_ms = r.uint("spec.pattern.Every.interval_ms")?;
            Ok(Pattern::Every { interval_ms })
        }
        other => Err(DecodeError::UnknownVariant {
            what: WHAT,
            found: other.to_owned(),
        }),
    }
}

fn decode_missed_fires(r: &mut Reader<'_>) -> Result<MissedFires, DecodeError> {
    const WHAT: &str = "spec.missed_fires";
    let unknown = |found: &str| DecodeError::UnknownVariant {
        what: WHAT,
        found: found.to_owned(),
    };
    match r.peek(WHAT)? {
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            let len = r.map_len(WHAT)?;
            if len != 1 {
                return Err(DecodeError::WrongLength {
                    what: WHAT,
                    expected: "1 (map)",
                    found: len,
                });
            }
            match r.str(WHAT)? {
                "FireAll" => {
                    r.expect_array("spec.missed_fires.FireAll", 1)?;
                    let n = r.uint("spec.missed_fires.FireAll.max_catchup")?;
                    match u32::try_from(n) {
                        Ok(0) => Ok(MissedFires::Skip),
                        Ok(max_catchup) => Ok(MissedFires::FireAll { max_catchup }),
                        Err(_) => Err(DecodeError::OutOfRange {
                            what: "spec.missed_fires.FireAll.max_catchup",
                        }),
                    }
                }
                other => Err(unknown(other)),
            }
        }
        _ => match r.str(WHAT)? {
            "FireOnce" => Ok(MissedFires::FireOnce),
            "Skip" => Ok(MissedFires::Skip),
            other => Err(unknown(other)),
        },
    }
}

impl SpecOptions {
    /// Whether there is nothing to store (the `opts` field is then deleted).
    pub fn is_empty(&self) -> bool {
        self.max_attempts.is_none() && self.backoff.is_none()
    }

    /// Checks the values a caller supplied.
    pub fn validate(&self) -> Result<(), RepeatError> {
        if self.max_attempts == Some(0) {
            return Err(RepeatError::InvalidOption {
                field: "attempts",
                reason: "must be at least 1 (got 0)".into(),
            });
        }
        if let Some(multiplier) = self.backoff.as_ref().and_then(|b| b.multiplier) {
            if !multiplier.is_finite() || multiplier <= 0.0 {
                return Err(RepeatError::InvalidOption {
                    field: "backoff.multiplier",
                    reason: format!("must be a finite number above 0 (got {multiplier})"),
                });
            }
        }
        Ok(())
    }

    /// `[max_attempts|nil, backoff|nil]`, the envelope's override bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        crate::envelope::encode_retry(&mut out, self);
        out
    }

    /// Decodes `opts`. Arrays longer than 2 (and backoffs longer than 5) are
    /// accepted and their extra elements skipped, for later extensions;
    /// integers of any width and float32/float64 multipliers are accepted.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let o = crate::envelope::read_retry(&mut r, "opts")?;
        r.finish("opts")?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::MAX_SKIP_DEPTH;

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Parses "c4 06 'key' ..." into bytes: hex pairs, and quoted ASCII
    /// strings for readability.
    fn bytes(spec: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = spec.trim();
        while !rest.is_empty() {
            if let Some(quoted) = rest.strip_prefix('\'') {
                let end = quoted.find('\'').expect("closing quote");
                out.extend_from_slice(&quoted.as_bytes()[..end]);
                rest = quoted[end + 1..].trim_start();
            } else {
                let (tok, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push(u8::from_str_radix(tok, 16).unwrap_or_else(|_| panic!("{tok}")));
                rest = tail.trim_start();
            }
        }
        out
    }

    fn spec(pattern: Pattern) -> StoredSpec {
        StoredSpec {
            key: "k".into(),
            job_name: "job".into(),
            pattern,
            payload: vec![0x81, 0xa1, 0x63, 0x01],
            limit: None,
            start_after_ms: None,
            end_before_ms: None,
            missed_fires: MissedFires::Skip,
        }
    }

    fn cron(expression: &str, tz: Option<&str>) -> Pattern {
        Pattern::Cron {
            expression: expression.into(),
            tz: tz.map(str::to_owned),
        }
    }

    fn assert_golden(spec: &StoredSpec, expected: &str) {
        let encoded = spec.encode().unwrap();
        assert_eq!(hex(&encoded), hex(&bytes(expected)));
        assert_eq!(&StoredSpec::decode(&encoded).unwrap(), spec);
    }

    #[test]
    fn golden_cron_without_tz() {
        // {"c": 1} double-wrapped: c4 06 c4 04 81 a1 63 01.
        assert_golden(
            &spec(cron("*/5 * * * *", None)),
            "98 a1 'k' a3 'job' 81 a4 'Cron' 92 ab '*/5 * * * *' c0 \
             c4 06 c4 04 81 a1 63 01 c0 c0 c0 00",
        );
    }

    #[test]
    fn golden_cron_with_tz_and_bounds() {
        let mut s = spec(cron("0 2 * * *", Some("America/New_York")));
        s.key = "report::cron:0 2 * * *:America/New_York".into();
        s.limit = Some(10);
        s.start_after_ms = Some(1_735_689_600_000);
        s.end_before_ms = Some(300);
        assert_golden(
            &s,
            "98 d9 27 'report::cron:0 2 * * *:America/New_York' a3 'job' \
             81 a4 'Cron' 92 a9 '0 2 * * *' b0 'America/New_York' \
             c4 06 c4 04 81 a1 63 01 0a cf 00 00 01 94 1f 29 7c 00 cd 01 2c 00",
        );
    }

    #[test]
    fn golden_every() {
        let mut s = spec(Pattern::Every {
            interval_ms: 60_000,
        });
        s.key = "tick::every:60000".into();
        s.job_name = "tick".into();
        s.payload = vec![0xc0]; // None
        assert_golden(
            &s,
            "98 b1 'tick::every:60000' a4 'tick' 81 a5 'Every' 91 cd ea 60 \
             c4 03 c4 01 c0 c0 c0 c0 00",
        );
    }

    #[test]
    fn golden_fire_once() {
        let mut s = spec(Pattern::Every { interval_ms: 5 });
        s.missed_fires = MissedFires::FireOnce;
        assert_golden(
            &s,
            "99 a1 'k' a3 'job' 81 a5 'Every' 91 05 c4 06 c4 04 81 a1 63 01 \
             c0 c0 c0 00 a8 'FireOnce'",
        );
    }

    #[test]
    fn golden_fire_all() {
        let mut s = spec(Pattern::Every { interval_ms: 5 });
        s.missed_fires = MissedFires::FireAll { max_catchup: 3 };
        assert_golden(
            &s,
            "99 a1 'k' a3 'job' 81 a5 'Every' 91 05 c4 06 c4 04 81 a1 63 01 \
             c0 c0 c0 00 81 a7 'FireAll' 91 03",
        );
    }

    #[test]
    fn integers_use_the_shortest_form() {
        for (v, enc) in [
            (0_u64, "00"),
            (127, "7f"),
            (128, "cc 80"),
            (255, "cc ff"),
            (256, "cd 01 00"),
            (65_535, "cd ff ff"),
            (65_536, "ce 00 01 00 00"),
            (u64::from(u32::MAX), "ce ff ff ff ff"),
            (u64::from(u32::MAX) + 1, "cf 00 00 00 01 00 00 00 00"),
        ] {
            let mut s = spec(Pattern::Every { interval_ms: 1 });
            s.limit = Some(v);
            let encoded = s.encode().unwrap();
            let prefix = bytes("98 a1 'k' a3 'job' 81 a5 'Every' 91 01 c4 06 c4 04 81 a1 63 01");
            let expected: Vec<u8> = [prefix, bytes(enc), bytes("c0 c0 00")].concat();
            assert_eq!(hex(&encoded), hex(&expected), "{v}");
            assert_eq!(StoredSpec::decode(&encoded).unwrap(), s);
        }
    }

    #[test]
    fn long_strings_and_payloads_use_wider_headers() {
        let mut s = spec(cron("* * * * *", None));
        s.key = "x".repeat(300);
        s.payload = vec![0xc4, 0xff]
            .into_iter()
            .chain(std::iter::repeat_n(7, 255))
            .collect(); // a 257-byte user msgpack
        let encoded = s.encode().unwrap();
        assert_eq!(&encoded[..4], &[0x98, 0xda, 0x01, 0x2c]);
        let payload_at = 4 + 300 + 4 + 1 + 5 + 1 + 10 + 1;
        // outer bin16 of 260 bytes, holding a bin16 of 257 bytes
        assert_eq!(
            &encoded[payload_at..payload_at + 6],
            &[0xc5, 0x01, 0x04, 0xc5, 0x01, 0x01]
        );
        assert_eq!(StoredSpec::decode(&encoded).unwrap(), s);
    }

    #[test]
    fn round_trips() {
        let patterns = [
            cron("*/5 * * * * *", None),
            cron("0 9 * * MON-FRI", Some("+05:30")),
            cron("", Some("")),
            Pattern::Every { interval_ms: 1 },
            Pattern::Every {
                interval_ms: u64::MAX,
            },
        ];
        let policies = [
            MissedFires::Skip,
            MissedFires::FireOnce,
            MissedFires::FireAll { max_catchup: 1 },
            MissedFires::FireAll {
                max_catchup: u32::MAX,
            },
        ];
        for pattern in &patterns {
            for policy in policies {
                for bounds in [None, Some(0), Some(1 << 40), Some(u64::MAX)] {
                    let s = StoredSpec {
                        key: "ключ 🔑".into(),
                        job_name: String::new(),
                        pattern: pattern.clone(),
                        payload: Vec::new(),
                        limit: bounds,
                        start_after_ms: bounds,
                        end_before_ms: bounds.map(|b| b / 2),
                        missed_fires: policy,
                    };
                    let encoded = s.encode().unwrap();
                    assert_eq!(StoredSpec::decode(&encoded).unwrap(), s);
                }
            }
        }
    }

    #[test]
    fn decode_accepts_harmless_variations() {
        // Wider-than-needed and signed integers, fired != 0, array16 headers.
        let b = bytes(
            "dc 00 08 a1 'k' a3 'job' 81 a4 'Cron' dc 00 02 a9 '0 2 * * *' c0 \
             c4 06 c4 04 81 a1 63 01 cf 00 00 00 00 00 00 00 05 d0 07 c0 cd 01 00",
        );
        let s = StoredSpec::decode(&b).unwrap();
        assert_eq!(s.limit, Some(5));
        assert_eq!(s.start_after_ms, Some(7));
        assert_eq!(s.pattern, cron("0 2 * * *", None));
        // A 9th element "Skip", and FireAll(0), decode as Skip.
        let base = "99 a1 'k' a3 'job' 81 a5 'Every' 91 05 c4 03 c4 01 c0 c0 c0 c0 00";
        let s = StoredSpec::decode(&bytes(&format!("{base} a4 'Skip'"))).unwrap();
        assert_eq!(s.missed_fires, MissedFires::Skip);
        let s = StoredSpec::decode(&bytes(&format!("{base} 81 a7 'FireAll' 91 00"))).unwrap();
        assert_eq!(s.missed_fires, MissedFires::Skip);
        // A float32 multiplier in opts.
        let o = SpecOptions::decode(&bytes("92 c0 95 a5 'fixed' 0a c0 ca 3f c0 00 00 c0")).unwrap();
        assert_eq!(o.backoff.unwrap().multiplier, Some(1.5));
    }

    #[test]
    fn decode_rejects_bad_shapes() {
        let ok = "a1 'k' a3 'job' 81 a5 'Every' 91 05 c4 03 c4 01 c0 c0 c0 c0 00";
        let cases: &[(&str, DecodeError)] = &[
            (
                "",
                DecodeError::Truncated {
                    what: "spec",
                    offset: 0,
                },
            ),
            (
                "90",
                DecodeError::WrongLength {
                    what: "spec",
                    expected: "8 or 9",
                    found: 0,
                },
            ),
            (
                "97 a1 'k'",
                DecodeError::WrongLength {
                    what: "spec",
                    expected: "8 or 9",
                    found: 7,
                },
            ),
            (
                "9a a1 'k'",
                DecodeError::WrongLength {
                    what: "spec",
                    expected: "8 or 9",
                    found: 10,
                },
            ),
            (
                "dd ff ff ff ff",
                DecodeError::WrongLength {
                    what: "spec",
                    expected: "8 or 9",
                    found: u32::MAX,
                },
            ),
            (
                "81 a1 'k' 00",
                DecodeError::UnexpectedMarker {
                    what: "spec",
                    marker: 0x81,
                    offset: 0,
                },
            ),
            (
                "98 c4 01 'k'",
                DecodeError::UnexpectedMarker {
                    what: "spec.key",
                    marker: 0xc4,
                    offset: 1,
                },
            ),
            ("98 a2 ff fe", DecodeError::InvalidUtf8 { what: "spec.key" }),
            (
                "98 db ff ff ff ff 'k'",
                DecodeError::Truncated {
                    what: "spec.key",
                    offset: 7,
                },
            ),
            (
                "98 a1 'k' a3 'job' 81 a6 'Hourly' 91 05",
                DecodeError::UnknownVariant {
                    what: "spec.pattern",
                    found: "Hourly".into(),
                },
            ),
            (
                "98 a1 'k' a3 'job' 82 a5 'Every' 91 05",
                DecodeError::WrongLength {
                    what: "spec.pattern",
                    expected: "1 (map)",
                    found: 2,
                },
            ),
            (
                "98 a1 'k' a3 'job' 81 a5 'Every' 92 05 05",
                DecodeError::WrongLength {
                    what: "spec.pattern.Every",
                    expected: "1",
                    found: 2,
                },
            ),
            (
                "98 a1 'k' a3 'job' 81 a5 'Every' 91 ff",
                DecodeError::OutOfRange {
                    what: "spec.pattern.Every.interval_ms",
                },
            ),
            (
                "98 a1 'k' a3 'job' 81 a5 'Every' 91 d0 fe",
                DecodeError::OutOfRange {
                    what: "spec.pattern.Every.interval_ms",
                },
            ),
            (
                // payload as a single bin (not double-wrapped)
                "98 a1 'k' a3 'job' 81 a5 'Every' 91 05 c4 01 c0 c0 c0 c0 00",
                DecodeError::UnexpectedMarker {
                    what: "spec.payload (inner bin)",
                    marker: 0xc0,
                    offset: 0,
                },
            ),
            (
                "98 a1 'k' a3 'job' 81 a5 'Every' 91 05 c4 04 c4 01 c0 c0 c0 c0 c0 00",
                DecodeError::TrailingBytes {
                    what: "spec.payload (inner bin)",
                    found: 1,
                },
            ),
            (
                "98 a1 'k' a3 'job' 81 a5 'Every' 91 05 c6 ff ff ff f0 c4",
                DecodeError::Truncated {
                    what: "spec.payload",
                    offset: 22,
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                &StoredSpec::decode(&bytes(input)).unwrap_err(),
                expected,
                "{input}"
            );
        }
        let ok8 = format!("98 {ok}");
        assert!(StoredSpec::decode(&bytes(&ok8)).is_ok());
        assert_eq!(
            StoredSpec::decode(&bytes(&format!("{ok8} c0"))).unwrap_err(),
            DecodeError::TrailingBytes {
                what: "spec",
                found: 1
            }
        );
        assert_eq!(
            StoredSpec::decode(&bytes(&format!("99 {ok} a4 'Fire'"))).unwrap_err(),
            DecodeError::UnknownVariant {
                what: "spec.missed_fires",
                found: "Fire".into()
            }
        );
        assert_eq!(
            StoredSpec::decode(&bytes(&format!(
                "99 {ok} 81 a7 'FireAll' 91 cf 00 00 00 01 00 00 00 00"
            )))
            .unwrap_err(),
            DecodeError::OutOfRange {
                what: "spec.missed_fires.FireAll.max_catchup"
            }
        );
        assert!(StoredSpec::decode(&bytes(&format!("99 {ok} c0"))).is_err());
        assert!(StoredSpec::decode(&bytes(&format!("99 {ok} 00"))).is_err());
        assert!(StoredSpec::decode(&bytes(&format!("99 {ok} 81 a8 'FireOnce' 90"))).is_err());
    }

    /// Every prefix of every golden encoding is an error, never a panic, and
    /// so is every single-byte corruption.
    #[test]
    fn decoder_survives_truncation_and_corruption() {
        let mut samples = Vec::new();
        for policy in [
            MissedFires::Skip,
            MissedFires::FireOnce,
            MissedFires::FireAll { max_catchup: 300 },
        ] {
            for pattern in [
                cron("0 2 * * *", Some("Europe/Berlin")),
                cron("* * * * *", None),
                Pattern::Every {
                    interval_ms: 70_000,
                },
            ] {
                let mut s = spec(pattern);
                s.missed_fires = policy;
                s.limit = Some(3);
                s.end_before_ms = Some(1 << 41);
                samples.push(s.encode().unwrap());
            }
        }
        for encoded in &samples {
            for cut in 0..encoded.len() {
                assert!(
                    StoredSpec::decode(&encoded[..cut]).is_err(),
                    "prefix {cut} of {}",
                    hex(encoded)
                );
            }
            for i in 0..encoded.len() {
                for b in [
                    0x00, 0x7f, 0x80, 0x90, 0xa0, 0xc0, 0xc1, 0xc4, 0xc6, 0xcf, 0xd3, 0xdb, 0xdd,
                    0xdf, 0xff,
                ] {
                    let mut corrupt = encoded.clone();
                    corrupt[i] = b;
                    let _ = StoredSpec::decode(&corrupt); // must return, Ok or Err
                    let _ = SpecOptions::decode(&corrupt);
                }
            }
        }
    }

    #[test]
    fn decoder_survives_random_bytes() {
        // xorshift64*: deterministic, no dev-dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let valid = spec(cron("0 2 * * *", None)).encode().unwrap();
        for round in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                // Start like a spec so the decoder gets past the header.
                buf = [&valid[..(next() as usize) % valid.len()], &buf[..]].concat();
            }
            let _ = StoredSpec::decode(&buf);
            let _ = SpecOptions::decode(&buf);
        }
    }

    #[test]
    fn opts_golden_bytes() {
        // docs/wire-format.md's retry override: attempts=5, exponential(250,
        // multiplier 3, max 10000, jitter 50).
        let o = SpecOptions {
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
        let expected = "92 05 95 ab 'exponential' cc fa cd 27 10 cb 40 08 00 00 00 00 00 00 32";
        assert_eq!(hex(&o.encode()), hex(&bytes(expected)));
        assert_eq!(SpecOptions::decode(&o.encode()).unwrap(), o);

        let o = SpecOptions {
            max_attempts: None,
            backoff: Some(Backoff {
                kind: BackoffKind::Fixed,
                delay_ms: 1_000,
                max_delay_ms: None,
                multiplier: None,
                jitter_ms: None,
            }),
            timeout_ms: None,
        };
        assert_eq!(
            hex(&o.encode()),
            hex(&bytes("92 c0 95 a5 'fixed' cd 03 e8 c0 c0 c0"))
        );
        assert_eq!(SpecOptions::decode(&o.encode()).unwrap(), o);

        let o = SpecOptions {
            max_attempts: Some(3),
            backoff: None,
            timeout_ms: None,
        };
        assert_eq!(hex(&o.encode()), "92 03 c0");
        assert_eq!(SpecOptions::decode(&o.encode()).unwrap(), o);
        assert!(SpecOptions::default().is_empty());
        assert_eq!(hex(&SpecOptions::default().encode()), "92 c0 c0");
    }

    #[test]
    fn opts_forward_compatible_and_strict() {
        // Extra slots (a later version's, past the third, `timeout_ms`) are
        // skipped, nested ones included.
        let o = SpecOptions::decode(&bytes(
            "95 03 c0 c0 92 81 a1 'x' 90 c4 01 00 d7 01 00 00 00 00 00 00 00 00",
        ))
        .unwrap();
        assert_eq!(
            o,
            SpecOptions {
                max_attempts: Some(3),
                backoff: None,
                timeout_ms: None,
            }
        );
        let o = SpecOptions::decode(&bytes("92 c0 96 a5 'fixed' 01 c0 c0 c0 a3 'new'")).unwrap();
        assert_eq!(o.backoff.unwrap().delay_ms, 1);
        for (input, expected) in [
            (
                "91 03",
                DecodeError::WrongLength {
                    what: "opts",
                    expected: "2 or more",
                    found: 1,
                },
            ),
            (
                "92 03",
                DecodeError::Truncated {
                    what: "value",
                    offset: 2,
                },
            ),
            (
                "92 cf 00 00 00 01 ff ff ff ff c0",
                DecodeError::OutOfRange {
                    what: "max_attempts",
                },
            ),
            (
                "92 c0 95 a6 'linear' 01 c0 c0 c0",
                DecodeError::UnknownVariant {
                    what: "backoff.kind",
                    found: "linear".into(),
                },
            ),
            (
                "92 c0 94 a5 'fixed' 01 c0 c0",
                DecodeError::WrongLength {
                    what: "backoff",
                    expected: "5 or more",
                    found: 4,
                },
            ),
            (
                "92 c0 95 a5 'fixed' 01 c0 01 c0",
                DecodeError::UnexpectedMarker {
                    what: "backoff.multiplier",
                    marker: 0x01,
                    offset: 11,
                },
            ),
            (
                "92 c0 c0 c0",
                DecodeError::TrailingBytes {
                    what: "opts",
                    found: 1,
                },
            ),
            (
                "94 c0 c0 c0 dd ff ff ff ff",
                DecodeError::Truncated {
                    what: "retry override (extra element)",
                    offset: 9,
                },
            ),
        ] {
            assert_eq!(
                SpecOptions::decode(&bytes(input)).unwrap_err(),
                expected,
                "{input}"
            );
        }
        // Deep nesting is refused, not recursed into without bound.
        let deep = [vec![0x94, 0xc0, 0xc0, 0xc0], vec![0x91; 10_000], vec![0xc0]].concat();
        assert_eq!(
            SpecOptions::decode(&deep).unwrap_err(),
            DecodeError::TooDeep {
                what: "retry override (extra element)",
                max: MAX_SKIP_DEPTH
            }
        );
    }

    #[test]
    fn opts_validate() {
        assert_eq!(SpecOptions::default().validate(), Ok(()));
        let zero = SpecOptions {
            max_attempts: Some(0),
            backoff: None,
            timeout_ms: None,
        };
        assert_eq!(zero.validate().unwrap_err().field(), "attempts");
        for m in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let o = SpecOptions {
                max_attempts: None,
                backoff: Some(Backoff {
                    kind: BackoffKind::Exponential,
                    delay_ms: 1,
                    max_delay_ms: None,
                    multiplier: Some(m),
                    jitter_ms: None,
                }),
                timeout_ms: None,
            };
            assert_eq!(o.validate().unwrap_err().field(), "backoff.multiplier");
        }
    }
}
