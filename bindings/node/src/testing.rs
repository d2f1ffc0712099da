//! TESTS ONLY: the conformance suite's fixed clock and id seed
//! (`conformance/README.md`). Private, explicitly named functions of the
//! native module (not re-exported by the package); nothing else can switch
//! the override on.

use crate::bridge::to_u64;
use napi_derive::napi;

/// TESTS ONLY (conformance): freezes the producer clock (`createdAtMs`) at
/// `ms`; `null` restores the system clock. See `engine/src/clock.rs`.
#[napi(js_name = "_testingSetClockMs")]
pub fn testing_set_clock_ms(ms: Option<f64>) -> napi::Result<()> {
    chasquimq::clock::set_test_clock_ms(ms.map(|v| to_u64("ms", v)).transpose()?);
    Ok(())
}

/// TESTS ONLY (conformance): makes minted job ids a deterministic sequence
/// from `seed`; `null` restores random ULIDs. See `engine/src/clock.rs`.
#[napi(js_name = "_testingSetIdSeed")]
pub fn testing_set_id_seed(seed: Option<f64>) -> napi::Result<()> {
    chasquimq::clock::set_test_id_seed(seed.map(|v| to_u64("seed", v)).transpose()?);
    Ok(())
}
