//! Results of engine calls handed to an asyncio loop without any engine
//! thread touching Python.
//!
//! `pyo3_async_runtimes::future_into_py` resolves each awaitable from an
//! engine thread that must take the GIL and call `call_soon_threadsafe`:
//! a blocking-pool hop and a GIL wait per call. For the hot producer calls
//! the Python side instead creates an asyncio future, submits the call with
//! a request id, and watches this object's socket with `loop.add_reader`;
//! the engine pushes `(id, outcome)` here and writes one byte when the queue
//! was empty; the loop drains the outcomes (converting them on its own
//! thread) and resolves its futures. One per event loop.

use crate::errors::to_py_with;
use chasquimq::Error;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

/// What a submitted call produced.
pub enum Outcome {
    Added(String, u64),
    AddedMany(Vec<(String, u64)>),
    Failed(Error),
}

struct Shared {
    queue: Mutex<Vec<(u64, Outcome)>>,
    engine_end: UnixStream,
}

#[pyclass(frozen, module = "chasquimq._native")]
pub struct Completions {
    shared: Arc<Shared>,
    python_fd: i32,
}

/// The engine side of a `Completions`: cheap to clone into tasks.
#[derive(Clone)]
pub struct Sender(Arc<Shared>);

impl Sender {
    pub fn send(&self, id: u64, outcome: Outcome) {
        let was_empty = {
            let mut q = self.0.queue.lock().unwrap();
            q.push((id, outcome));
            q.len() == 1
        };
        if was_empty {
            poke(&self.0.engine_end);
        }
    }
}

/// A non-blocking socket pair: the engine end, and the Python end's raw
/// descriptor (the caller owns it). Also the worker's wake-up socket.
pub fn wake_pair() -> std::io::Result<(UnixStream, i32)> {
    let (engine_end, python_end) = UnixStream::pair()?;
    engine_end.set_nonblocking(true)?;
    python_end.set_nonblocking(true)?;
    Ok((engine_end, python_end.into_raw_fd()))
}

/// Writes one wake-up byte; WouldBlock means one is already pending: enough.
pub fn poke(engine_end: &UnixStream) {
    let _ = (&*engine_end).write(&[1u8]);
}

impl Completions {
    pub fn sender(&self) -> Sender {
        Sender(self.shared.clone())
    }
}

#[pymethods]
impl Completions {
    #[new]
    fn new() -> PyResult<Self> {
        let (engine_end, python_fd) = wake_pair()?;
        Ok(Completions {
            shared: Arc::new(Shared {
                queue: Mutex::new(Vec::new()),
                engine_end,
            }),
            python_fd,
        })
    }

    /// The socket to watch (owned by the caller: wrap it in socket.socket).
    fn fileno(&self) -> i32 {
        self.python_fd
    }

    /// Every outcome so far: (id, True, value) or (id, False, exception).
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = std::mem::take(&mut *self.shared.queue.lock().unwrap());
        let out = PyList::empty(py);
        for (id, outcome) in items {
            let t = match outcome {
                Outcome::Added(job_id, created) => PyTuple::new(
                    py,
                    [
                        id.into_pyobject(py)?.into_any(),
                        true.into_pyobject(py)?.to_owned().into_any(),
                        (job_id, created).into_pyobject(py)?.into_any(),
                    ],
                )?,
                Outcome::AddedMany(v) => PyTuple::new(
                    py,
                    [
                        id.into_pyobject(py)?.into_any(),
                        true.into_pyobject(py)?.to_owned().into_any(),
                        v.into_pyobject(py)?.into_any(),
                    ],
                )?,
                Outcome::Failed(e) => {
                    let exc = to_py_with(py, &e).into_value(py).into_bound(py).into_any();
                    PyTuple::new(
                        py,
                        [
                            id.into_pyobject(py)?.into_any(),
                            false.into_pyobject(py)?.to_owned().into_any(),
                            exc,
                        ],
                    )?
                }
            };
            out.append(t)?;
        }
        Ok(out)
    }
}
