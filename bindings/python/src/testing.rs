//! TESTS ONLY: the conformance suite's fixed clock and id seed
//! (`conformance/README.md`). Private, explicitly named functions of
//! `chasquimq._native`; nothing else can switch the override on.

use pyo3::prelude::*;

/// TESTS ONLY (conformance): freezes the producer clock (`created_at_ms`)
/// at `ms`; `None` restores the system clock. See `engine/src/clock.rs`.
#[pyfunction]
#[pyo3(signature = (ms))]
pub fn _testing_set_clock_ms(ms: Option<u64>) {
    chasquimq::clock::set_test_clock_ms(ms);
}

/// TESTS ONLY (conformance): makes minted job ids a deterministic sequence
/// from `seed`; `None` restores random ULIDs. See `engine/src/clock.rs`.
#[pyfunction]
#[pyo3(signature = (seed))]
pub fn _testing_set_id_seed(seed: Option<u64>) {
    chasquimq::clock::set_test_id_seed(seed);
}

/// The engine runtime's worker threads (`CHASQUIMQ_ENGINE_THREADS`,
/// default 1); starts the runtime if it is not running.
#[pyfunction]
pub fn _engine_worker_threads() -> PyResult<usize> {
    let rt = chasquimq::runtime::runtime().map_err(crate::errors::to_py)?;
    Ok(rt.metrics().num_workers())
}
