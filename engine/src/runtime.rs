//! The process-wide tokio runtime, owned by the engine. Bindings run every
//! engine future on it; after `fork()` it refuses with `Error::Forked`
//! instead of hanging on threads that do not exist in the child.

use crate::errors::{Error, Result};
use std::sync::{Mutex, OnceLock};
use tokio::runtime::Runtime;

static RUNTIME: OnceLock<(u32, Runtime)> = OnceLock::new();

/// The environment variable that sets the runtime's worker threads.
pub const THREADS_VAR: &str = "CHASQUIMQ_ENGINE_THREADS";

/// Worker threads when `CHASQUIMQ_ENGINE_THREADS` is unset. One: every
/// engine task is I/O that takes a few µs per job (one thread carries
/// ~250,000 jobs/s), and a second thread only added cross-thread wake-ups
/// (futex, context switches) on the cores the event loop and Redis need:
/// measured on 2 cores, the worker ran 10–40% faster on one thread and
/// adds were no slower (docs/benchmarks.md).
pub const DEFAULT_THREADS: usize = 1;

/// The worker threads asked for by `value` (the variable's value, if set).
pub fn threads_from(value: Option<&str>) -> Result<usize> {
    let Some(v) = value else {
        return Ok(DEFAULT_THREADS);
    };
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(Error::invalid_argument(
            THREADS_VAR,
            format!(
                "must be a whole number of threads from 1 to 1024 (got {v:?}); unset it for the default, {DEFAULT_THREADS}"
            ),
        )),
    }
}

/// The engine runtime, created on first use with `CHASQUIMQ_ENGINE_THREADS`
/// worker threads (default 1).
pub fn runtime() -> Result<&'static Runtime> {
    if RUNTIME.get().is_none() {
        static INIT: Mutex<()> = Mutex::new(());
        let _once = INIT.lock().unwrap_or_else(|e| e.into_inner());
        if RUNTIME.get().is_none() {
            let threads = threads_from(std::env::var(THREADS_VAR).ok().as_deref())?;
            let _ = RUNTIME.set((std::process::id(), build(threads)));
        }
    }
    let (pid, rt) = RUNTIME.get().expect("set above");
    check_pid(*pid)?;
    Ok(rt)
}

fn build(threads: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("chasquimq")
        .enable_all()
        .build()
        .expect("the tokio runtime must start")
}

/// Fails with `Error::Forked` when called in a forked child of the process
/// that started the runtime.
pub fn ensure_not_forked() -> Result<()> {
    match RUNTIME.get() {
        Some((pid, _)) => check_pid(*pid),
        None => Ok(()),
    }
}

fn check_pid(pid: u32) -> Result<()> {
    if pid == std::process::id() {
        Ok(())
    } else {
        Err(Error::Forked)
    }
}

/// Spawns a detached task on the current runtime, or on the engine runtime
/// when called outside one (sync binding methods).
pub fn spawn_detached<F>(fut: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(fut);
        }
        Err(_) => {
            if let Ok(rt) = runtime() {
                rt.spawn(fut);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_default_and_bounds() {
        assert_eq!(threads_from(None).unwrap(), 1);
        assert_eq!(threads_from(Some("4")).unwrap(), 4);
        assert_eq!(threads_from(Some(" 2 ")).unwrap(), 2);
        for bad in ["0", "-1", "two", "", "1025", "1.5"] {
            let e = threads_from(Some(bad)).unwrap_err();
            assert_eq!(e.code(), "invalid_argument", "{bad}");
            let m = e.to_string();
            assert!(
                m.contains("CHASQUIMQ_ENGINE_THREADS") && m.contains("unset it"),
                "{m}"
            );
        }
    }
}
