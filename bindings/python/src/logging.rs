//! The engine's log records to Python's `logging`, under `chasquimq`.
//!
//! Why not pyo3-log: it attaches to Python on the thread that logged, and
//! here that is an engine worker thread. Waiting there for the GIL stalls
//! the other tasks of that thread (a settle flush, a lease extension), and
//! attaching while the interpreter finalizes aborts the process (see
//! `aio.rs`). So the engine's sink only queues the record (never blocks);
//! one thread of ours delivers the queue to `logging`, in order, through
//! the same exit barrier as the futures.

use crate::aio;
use chasquimq::logging::LogRecord;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver};

/// Records waiting for the delivery thread; past this, new ones are counted
/// and reported as dropped rather than held or waited for.
const QUEUED: usize = 4096;

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Installs the bridge once per process (the first import).
pub fn install() {
    let (tx, rx) = sync_channel::<LogRecord>(QUEUED);
    let installed = chasquimq::logging::bridge(move |record| {
        if tx.try_send(record).is_err() {
            DROPPED.fetch_add(1, Relaxed);
        }
    });
    if installed {
        let _ = std::thread::Builder::new()
            .name("chasquimq-log".into())
            .spawn(move || deliver(&rx));
    }
}

fn deliver(rx: &Receiver<LogRecord>) {
    while let Ok(record) = rx.recv() {
        let Some(_attached) = aio::attaching() else {
            continue;
        };
        Python::attach(|py| {
            let dropped = DROPPED.swap(0, Relaxed);
            if dropped > 0 {
                let note = LogRecord {
                    level: 30,
                    logger: "chasquimq".into(),
                    message: format!(
                        "{dropped} engine log records were dropped: they came faster than \
                         Python's logging took them"
                    ),
                };
                emit(py, &note);
            }
            emit(py, &record);
        });
    }
}

fn emit(py: Python<'_>, record: &LogRecord) {
    let sent = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", (&record.logger,)))
        .and_then(|logger| logger.call_method1("log", (record.level, "%s", &record.message)));
    if let Err(e) = sent {
        // A handler of the user's raised: report it as logging itself does.
        e.print(py);
    }
}
