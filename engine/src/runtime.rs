//! The process-wide tokio runtime, owned by the engine. Bindings run every
//! engine future on it; after `fork()` it refuses with `Error::Forked`
//! instead of hanging on threads that do not exist in the child.

use crate::errors::{Error, Result};
use std::sync::OnceLock;
use tokio::runtime::Runtime;

static RUNTIME: OnceLock<(u32, Runtime)> = OnceLock::new();

/// The engine runtime, created on first use.
pub fn runtime() -> Result<&'static Runtime> {
    let (pid, rt) = RUNTIME.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("chasquimq")
            .enable_all()
            .build()
            .expect("the tokio runtime must start");
        (std::process::id(), rt)
    });
    check_pid(*pid)?;
    Ok(rt)
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
