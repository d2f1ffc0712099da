//! The one conversion from engine errors to Python exceptions: each engine
//! code maps to the class registered under it in
//! `chasquimq._generated.errors.ERRORS_BY_CODE` (generated from the spec).

use chasquimq::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

static ERRORS_BY_CODE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn class_for<'py>(py: Python<'py>, code: &str) -> Option<Bound<'py, PyType>> {
    let dict = ERRORS_BY_CODE
        .get_or_try_init(py, || -> PyResult<Py<PyDict>> {
            let m = py.import("chasquimq._generated.errors")?;
            Ok(m.getattr("ERRORS_BY_CODE")?.cast_into::<PyDict>()?.unbind())
        })
        .ok()?
        .bind(py);
    dict.get_item(code)
        .ok()
        .flatten()?
        .cast_into::<PyType>()
        .ok()
}

/// Converts an engine error into the Python exception of its code.
pub fn to_py(e: Error) -> PyErr {
    if crate::aio::exiting() {
        // Attaching from an engine thread while the interpreter exits aborts it.
        return PyRuntimeError::new_err(format!("[{}] {}", e.code(), e));
    }
    Python::attach(|py| to_py_with(py, &e))
}

pub fn to_py_with(py: Python<'_>, e: &Error) -> PyErr {
    match class_for(py, e.code()) {
        Some(cls) => PyErr::from_type(cls, e.to_string()),
        None => PyRuntimeError::new_err(format!("[{}] {}", e.code(), e)),
    }
}

/// Raises the sample error of `code` (tests of the conversion, per code).
#[pyfunction]
pub fn _raise_engine_error(code: &str) -> PyResult<()> {
    match Error::sample(code) {
        Some(e) => Err(to_py(e)),
        None => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "unknown code {code:?}"
        ))),
    }
}

/// Every engine error code.
#[pyfunction]
pub fn _engine_error_codes() -> Vec<&'static str> {
    Error::CODES.to_vec()
}
