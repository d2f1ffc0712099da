//! `future_into_py` on the engine runtime, with an exit barrier.
//!
//! pyo3-async-runtimes resolves each asyncio future from a tokio
//! blocking-pool thread that attaches to Python and calls
//! `loop.call_soon_threadsafe`, which releases the GIL while it writes to
//! the loop's self-pipe. If the interpreter starts finalizing before that
//! thread gets the GIL back, CPython ends the thread (`pthread_exit`), and
//! the unwind aborts the whole process ("PyGILState_Release: thread state
//! must be current when releasing"), even in a program that closed every
//! Queue and Worker. An `atexit` hook, registered at import, stops new
//! completions and waits (GIL released) for the running ones to finish.

use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{self, ContextExt, Runtime};
use pyo3_async_runtimes::TaskLocals;
use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

static EXITING: AtomicBool = AtomicBool::new(false);
static COMPLETING: AtomicUsize = AtomicUsize::new(0);

tokio::task_local! {
    static LOCALS: OnceCell<TaskLocals>;
}

/// True once the interpreter is exiting: nothing may attach to Python from
/// an engine thread any more.
pub fn exiting() -> bool {
    EXITING.load(SeqCst)
}

pub struct EngineRuntime;

/// Counts one engine thread as attached to Python, for the exit barrier.
pub struct Completing;

/// Counts the caller as attached to Python until the guard drops, or
/// `None` once the interpreter is exiting (do not attach then). Counted
/// before the check, so the exit hook either sees this thread attached or
/// this thread sees the exit.
pub fn attaching() -> Option<Completing> {
    COMPLETING.fetch_add(1, SeqCst);
    let guard = Completing;
    if exiting() {
        None
    } else {
        Some(guard)
    }
}

impl Drop for Completing {
    fn drop(&mut self) {
        COMPLETING.fetch_sub(1, SeqCst);
    }
}

impl Runtime for EngineRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        pyo3_async_runtimes::tokio::get_runtime().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        pyo3_async_runtimes::tokio::get_runtime().spawn_blocking(move || {
            if let Some(_attached) = attaching() {
                f();
            }
            // Else `f` is dropped: its Python references go to pyo3's
            // deferred-decref pool; the process is ending anyway.
        })
    }
}

impl ContextExt for EngineRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        LOCALS.try_with(|c| c.get().cloned()).unwrap_or_default()
    }
}

/// `pyo3_async_runtimes::tokio::future_into_py`, through the exit barrier.
pub fn future_into_py<F, T>(py: Python<'_>, fut: F) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    generic::future_into_py::<EngineRuntime, F, T>(py, fut)
}

/// The atexit hook: no new completions; waits up to 2 s for running ones.
#[pyfunction]
pub fn _exit_barrier(py: Python<'_>) {
    EXITING.store(true, SeqCst);
    py.detach(|| {
        let deadline = Instant::now() + Duration::from_secs(2);
        while COMPLETING.load(SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}
