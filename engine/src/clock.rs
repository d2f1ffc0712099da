//! The producer-side clock (`created_at_ms`) and job-id source (ULIDs), with
//! a process-wide override for the conformance suite.
//!
//! `conformance/` compares envelopes byte for byte across languages, so it
//! pins both: `set_test_clock_ms(Some(ms))` freezes `now_ms()`, and
//! `set_test_id_seed(Some(seed))` makes `new_id()` return
//! `Ulid::from_parts(now_ms(), seed << 64 | n)` for n = 0, 1, 2, ... The
//! override is reachable only through the bindings' private, explicitly
//! named `_testing_*` functions; no environment variable or configuration
//! is read, so nothing outside a test can switch it on by accident. Off, it
//! costs one relaxed atomic load per call. Times the engine takes from the
//! Redis server (`TIME` in scripts: delayed scores, event `ts`, fire times)
//! are not affected.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// 0 = the system clock.
static TEST_NOW_MS: AtomicU64 = AtomicU64::new(0);
static TEST_IDS: AtomicBool = AtomicBool::new(false);
static TEST_ID_SEED: AtomicU64 = AtomicU64::new(0);
static TEST_ID_NEXT: AtomicU64 = AtomicU64::new(0);

/// Epoch milliseconds: the system clock, or the frozen test clock.
pub fn now_ms() -> u64 {
    let fixed = TEST_NOW_MS.load(Ordering::Relaxed);
    if fixed != 0 {
        return fixed;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh job id: a random ULID, or the next id of the seeded test sequence.
pub fn new_id() -> String {
    if TEST_IDS.load(Ordering::Relaxed) {
        let seed = TEST_ID_SEED.load(Ordering::Relaxed) & 0xFFFF;
        let n = TEST_ID_NEXT.fetch_add(1, Ordering::Relaxed);
        return ulid::Ulid::from_parts(now_ms(), (u128::from(seed) << 64) | u128::from(n))
            .to_string();
    }
    ulid::Ulid::new().to_string()
}

/// TESTS ONLY. Freezes `now_ms()` at `ms` (`None` or 0: the system clock again).
pub fn set_test_clock_ms(ms: Option<u64>) {
    TEST_NOW_MS.store(ms.unwrap_or(0), Ordering::Relaxed);
}

/// TESTS ONLY. Makes `new_id()` deterministic from `seed` (its low 16 bits)
/// and restarts the sequence; `None`: random ULIDs again.
pub fn set_test_id_seed(seed: Option<u64>) {
    TEST_ID_SEED.store(seed.unwrap_or(0), Ordering::Relaxed);
    TEST_ID_NEXT.store(0, Ordering::Relaxed);
    TEST_IDS.store(seed.is_some(), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_follow_the_frozen_clock() {
        set_test_clock_ms(Some(1_700_000_000_000));
        set_test_id_seed(Some(7));
        assert_eq!(now_ms(), 1_700_000_000_000);
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        let u = ulid::Ulid::from_string(&a).unwrap();
        assert_eq!(u.timestamp_ms(), 1_700_000_000_000);
        assert_eq!(u.random(), 7u128 << 64);
        set_test_id_seed(Some(7));
        assert_eq!(new_id(), a, "reseeding restarts the sequence");
        set_test_id_seed(None);
        set_test_clock_ms(None);
        assert_ne!(now_ms(), 1_700_000_000_000);
        assert_ne!(new_id(), a);
    }
}
