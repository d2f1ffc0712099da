//! Property tests of the codecs the engine reads from Redis: the job
//! envelope, the delayed-set member, the repeatable `StoredSpec` and the
//! retry override (`RetryOverride`, stored alone as a spec's `opts`).
//!
//! Two properties per codec:
//! - round trip: `decode(encode(x)) == x` for generated values, and a value
//!   decoded from any bytes re-encodes to bytes that decode to it again;
//! - robustness: any bytes (pure noise, every prefix of a valid encoding,
//!   bit flips / insertions / deletions of one, 100,000-deep nesting,
//!   length prefixes claiming gigabytes) give `Ok` or `Err`, never a panic,
//!   a stack overflow or a huge allocation.
//!
//! A deterministic randomized loop over the `rand` crate the engine already
//! uses, rather than `proptest` (see docs/reliability.md for why): the seed
//! is fixed, so CI is reproducible; set `CHASQUI_PROP_SEED` (and
//! `CHASQUI_PROP_CASES`) to explore further. Every assertion message names
//! the seed and the case, so a failure can be replayed.

use chasquimq::envelope::{decode_member, encode_member, encode_retry};
use chasquimq::repeat::{MissedFires, Pattern, SpecOptions, StoredSpec};
use chasquimq::{Backoff, BackoffKind, Envelope, RetryOverride};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn seed() -> u64 {
    std::env::var("CHASQUI_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00C4_A5C1_2024)
}

fn cases() -> usize {
    std::env::var("CHASQUI_PROP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000)
}

/// A string mixing ASCII, multi-byte UTF-8 and the empty string.
fn string(rng: &mut StdRng, max: usize) -> String {
    const POOL: &[char] = &[
        'a',
        'Z',
        '0',
        ' ',
        ':',
        '*',
        '/',
        '\u{0}',
        'é',
        'ß',
        '€',
        '中',
        '🦙',
        '\u{10FFFF}',
    ];
    let n = rng.random_range(0..=max);
    (0..n)
        .map(|_| {
            if rng.random_bool(0.7) {
                char::from(rng.random_range(0x20u8..0x7f))
            } else {
                POOL[rng.random_range(0..POOL.len())]
            }
        })
        .collect()
}

fn bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let n = rng.random_range(0..=max);
    (0..n).map(|_| rng.random()).collect()
}

/// Integers that land on every msgpack width boundary, not just the middle.
fn uint(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..6) {
        0 => rng.random_range(0..128),
        1 => rng.random_range(128..=u64::from(u16::MAX)),
        2 => rng.random_range(65_536..=u64::from(u32::MAX)),
        3 => [
            0,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as u64,
            u64::MAX,
        ][rng.random_range(0..9)],
        _ => rng.random(),
    }
}

fn opt<T>(rng: &mut StdRng, f: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
    if rng.random_bool(0.5) {
        Some(f(rng))
    } else {
        None
    }
}

fn backoff(rng: &mut StdRng) -> Backoff {
    Backoff {
        kind: if rng.random_bool(0.5) {
            BackoffKind::Fixed
        } else {
            BackoffKind::Exponential
        },
        delay_ms: uint(rng),
        max_delay_ms: opt(rng, uint),
        // Any finite f64 (NaN would make `==` fail, not the codec).
        multiplier: opt(rng, |r| {
            let f = f64::from_bits(r.random());
            if f.is_finite() {
                f
            } else {
                r.random::<f64>() * 10.0
            }
        }),
        jitter_ms: opt(rng, uint),
    }
}

fn retry(rng: &mut StdRng) -> RetryOverride {
    RetryOverride {
        max_attempts: opt(rng, |r| uint(r).min(u64::from(u32::MAX)) as u32),
        backoff: opt(rng, backoff),
        timeout_ms: opt(rng, uint),
    }
}

fn envelope(rng: &mut StdRng) -> Envelope {
    let big = rng.random_bool(0.01);
    Envelope {
        id: string(rng, 40),
        // Now and then over 64 KiB, to cover bin32.
        payload: if big {
            vec![0xab; 70_000]
        } else {
            bytes(rng, 300)
        },
        created_at_ms: uint(rng),
        attempt: uint(rng).min(u64::from(u32::MAX)) as u32,
        retry: opt(rng, retry),
    }
}

fn spec(rng: &mut StdRng) -> StoredSpec {
    StoredSpec {
        key: string(rng, 60),
        job_name: string(rng, 30),
        pattern: if rng.random_bool(0.5) {
            Pattern::Cron {
                expression: string(rng, 30),
                tz: opt(rng, |r| string(r, 20)),
            }
        } else {
            Pattern::Every {
                interval_ms: uint(rng),
            }
        },
        payload: bytes(rng, 200),
        limit: opt(rng, uint),
        start_after_ms: opt(rng, uint),
        end_before_ms: opt(rng, uint),
        missed_fires: match rng.random_range(0..3) {
            0 => MissedFires::Skip,
            1 => MissedFires::FireOnce,
            // 0 decodes as Skip (1.x treats it so): generate 1.. only.
            _ => MissedFires::FireAll {
                max_catchup: (uint(rng) % u64::from(u32::MAX)) as u32 + 1,
            },
        },
    }
}

/// A few random edits of `b`: bit flips, insertions, deletions, a cut.
fn mutate(rng: &mut StdRng, b: &[u8]) -> Vec<u8> {
    let mut out = b.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let i = rng.random_range(0..=out.len());
        match rng.random_range(0..4) {
            0 if !out.is_empty() => {
                let j = i % out.len();
                out[j] ^= 1 << rng.random_range(0..8);
            }
            1 => out.insert(i, rng.random()),
            2 if !out.is_empty() => {
                out.remove(i % out.len());
            }
            _ => out.truncate(i),
        }
    }
    out
}

/// Inputs no valid value looks like: deep nesting and giant length prefixes.
fn hostile() -> Vec<Vec<u8>> {
    let mut deep_array = vec![0x91u8; 100_000];
    deep_array.push(0xc0);
    let mut deep_map = [0x81u8, 0xa1, b'k'].repeat(50_000);
    deep_map.push(0xc0);
    let mut v = vec![
        deep_array.clone(),
        deep_map.clone(),
        vec![0x94, 0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        vec![0x94, 0xa1, b'a', 0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2],
        vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0],
        vec![0xdf, 0xff, 0xff, 0xff, 0xff],
        vec![],
    ];
    // Valid heads with a deep tail where extra elements are skipped.
    let mut head = vec![
        0x95, 0xa2, b'i', b'd', 0xc4, 0x01, 0xc0, 0x01, 0x00, 0x93, 0xc0, 0xc0,
    ];
    head.extend_from_slice(&deep_array);
    v.push(head);
    let mut opts = vec![0x93, 0xc0, 0xc0];
    opts.extend_from_slice(&deep_map);
    v.push(opts);
    v
}

#[test]
fn envelope_round_trips_and_never_panics() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..cases() {
        let env = envelope(&mut rng);
        let b = env.encode();
        assert_eq!(
            Envelope::decode(&b).ok(),
            Some(env.clone()),
            "seed {seed} case {case}"
        );
        for cut in 0..b.len().min(64) {
            assert!(
                Envelope::decode(&b[..cut]).is_err(),
                "seed {seed} case {case}: prefix of {cut} bytes decoded"
            );
        }
        for _ in 0..10 {
            let m = mutate(&mut rng, &b);
            if let Ok(e) = Envelope::decode(&m) {
                // Compared as bytes: a mutation can make a NaN multiplier.
                let again = e.encode();
                assert_eq!(
                    Envelope::decode(&again).ok().map(|x| x.encode()),
                    Some(again.clone()),
                    "seed {seed} case {case}: re-encode of {m:02x?}"
                );
            }
        }
        let noise = bytes(&mut rng, 64);
        let _ = Envelope::decode(&noise);
    }
    for h in hostile() {
        assert!(Envelope::decode(&h).is_err());
    }
}

#[test]
fn member_round_trips_exactly_and_never_panics() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed ^ 1);
    for case in 0..cases() {
        let name = string(&mut rng, 80);
        let env = envelope(&mut rng).encode();
        let m = encode_member(&name, &env);
        assert_eq!(
            decode_member(&m).ok(),
            Some((name.as_str(), env.as_slice())),
            "seed {seed} case {case}"
        );
        for input in [mutate(&mut rng, &m), bytes(&mut rng, 16)] {
            if let Ok((n, e)) = decode_member(&input) {
                // A member that decodes is exactly its own encoding.
                assert_eq!(encode_member(n, e), input, "seed {seed} case {case}");
            }
        }
    }
    // A length prefix claiming 4 GiB of name.
    assert!(decode_member(&[0xff, 0xff, 0xff, 0xff, b'a']).is_err());
    for h in hostile() {
        let _ = decode_member(&h);
    }
}

#[test]
fn stored_spec_round_trips_and_never_panics() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed ^ 2);
    for case in 0..cases() {
        let s = spec(&mut rng);
        let b = s.encode().expect("every generated spec encodes");
        assert_eq!(
            StoredSpec::decode(&b).as_ref(),
            Ok(&s),
            "seed {seed} case {case}"
        );
        for cut in 0..b.len().min(64) {
            assert!(
                StoredSpec::decode(&b[..cut]).is_err(),
                "seed {seed} case {case}"
            );
        }
        for _ in 0..10 {
            let m = mutate(&mut rng, &b);
            if let Ok(d) = StoredSpec::decode(&m) {
                let again = d.encode().expect("a decoded spec encodes");
                assert_eq!(
                    StoredSpec::decode(&again).as_ref(),
                    Ok(&d),
                    "seed {seed} case {case}: re-encode of {m:02x?}"
                );
            }
        }
        let _ = StoredSpec::decode(&bytes(&mut rng, 64));
    }
    for h in hostile() {
        assert!(StoredSpec::decode(&h).is_err());
    }
}

#[test]
fn retry_override_round_trips_and_never_panics() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed ^ 3);
    for case in 0..cases() {
        let r = retry(&mut rng);
        let mut b = Vec::new();
        encode_retry(&mut b, &r);
        assert_eq!(
            SpecOptions::decode(&b).as_ref(),
            Ok(&r),
            "seed {seed} case {case}"
        );
        assert_eq!(r.encode(), b, "seed {seed} case {case}");
        for _ in 0..10 {
            let m = mutate(&mut rng, &b);
            if let Ok(d) = SpecOptions::decode(&m) {
                // NaN multipliers are valid bytes but never equal: compare bytes.
                let again = d.encode();
                assert_eq!(
                    SpecOptions::decode(&again).map(|x| x.encode()),
                    Ok(again.clone()),
                    "seed {seed} case {case}: re-encode of {m:02x?}"
                );
            }
        }
        let _ = SpecOptions::decode(&bytes(&mut rng, 48));
    }
    for h in hostile() {
        assert!(SpecOptions::decode(&h).is_err());
    }
}
