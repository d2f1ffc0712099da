//! `chasquimq._native`: the private PyO3 module. Thin: type and error
//! conversion over the engine, nothing else.

mod aio;
mod completions;
mod consumer;
mod errors;
mod logging;
mod producer;
mod repeat;
mod testing;

use pyo3::prelude::*;

/// The version of the binding crate.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let rt = chasquimq::runtime::runtime().map_err(errors::to_py)?;
    // The engine owns the one runtime; pyo3-async-runtimes borrows it.
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(rt);
    logging::install();
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(aio::_exit_barrier, m)?)?;
    // Engine threads must not be resolving futures while the interpreter finalizes.
    m.py()
        .import("atexit")?
        .call_method1("register", (m.getattr("_exit_barrier")?,))?;
    m.add_function(wrap_pyfunction!(errors::_raise_engine_error, m)?)?;
    m.add_function(wrap_pyfunction!(errors::_engine_error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(testing::_testing_set_clock_ms, m)?)?;
    m.add_function(wrap_pyfunction!(testing::_testing_set_id_seed, m)?)?;
    m.add_function(wrap_pyfunction!(testing::_engine_worker_threads, m)?)?;
    m.add_class::<producer::Producer>()?;
    m.add_class::<completions::Completions>()?;
    m.add_class::<consumer::Consumer>()?;
    m.add_class::<repeat::Scheduler>()?;
    Ok(())
}
