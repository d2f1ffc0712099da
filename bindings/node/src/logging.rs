//! The engine's log records to JavaScript (`ts/log.ts`), which publishes
//! them on the `chasquimq` diagnostics channel.
//!
//! The sink is a weak threadsafe function called non-blocking: the engine
//! thread that logged only queues the record and goes on, and the function
//! never keeps the Node process alive.

use chasquimq::logging::LogRecord;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;

/// Private: installs `sink([level, logger, message])` as the receiver of the
/// engine's records. The first call in a process wins; later ones (another
/// worker thread's copy of the module) return false.
#[napi(js_name = "_setLogSink")]
#[allow(clippy::type_complexity)]
pub fn set_log_sink(
    sink: ThreadsafeFunction<(u32, String, String), (), (u32, String, String), Status, false, true>,
) -> bool {
    chasquimq::logging::bridge(move |r: LogRecord| {
        let _ = sink.call(
            (r.level, r.logger, r.message),
            ThreadsafeFunctionCallMode::NonBlocking,
        );
    })
}
