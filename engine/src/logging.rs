//! The engine's log records, handed to a binding's logger.
//!
//! The engine reports through `tracing` (warnings such as a settle flush
//! that failed and will be retried). With no tracing subscriber installed,
//! tracing's `log` feature turns each event into a `log` record, and the
//! Redis client (fred) logs through `log` directly. [`bridge`] installs the
//! one `log` logger of the process, which hands every record at `Info` or
//! above to a binding's sink: Python's `logging`, Node's diagnostics
//! channel. Records below `Info` are cut here, by one atomic compare, so
//! the hot path's debug events cost nothing across the language boundary.
//!
//! Logger names sit under `chasquimq`: the engine's module path with `.`
//! for `::` (`chasquimq.consumer`), and other crates below it
//! (`chasquimq.fred.router`).

use std::sync::OnceLock;

/// One record for a binding. `level` uses Python's numbers (10 debug,
/// 20 info, 30 warning, 40 error), which Node maps to names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub level: u32,
    pub logger: String,
    pub message: String,
}

type Sink = Box<dyn Fn(LogRecord) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

struct Bridge;

impl log::Log for Bridge {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if let Some(sink) = SINK.get() {
            sink(LogRecord {
                level: level_number(record.level()),
                logger: logger_name(record.target()),
                message: record.args().to_string(),
            });
        }
    }

    fn flush(&self) {}
}

static BRIDGE: Bridge = Bridge;

/// Installs `sink` as the receiver of the engine's records. The first call
/// wins; later calls (a second binding in one process, a reloaded module)
/// return false and change nothing. The sink runs on the thread that
/// logged, often an engine worker thread: it must not block.
pub fn bridge(sink: impl Fn(LogRecord) + Send + Sync + 'static) -> bool {
    if SINK.set(Box::new(sink)).is_err() {
        return false;
    }
    if log::set_logger(&BRIDGE).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    true
}

fn level_number(level: log::Level) -> u32 {
    match level {
        log::Level::Error => 40,
        log::Level::Warn => 30,
        log::Level::Info => 20,
        log::Level::Debug => 10,
        log::Level::Trace => 5,
    }
}

/// `chasquimq::consumer` → `chasquimq.consumer`; `fred::router` →
/// `chasquimq.fred.router`; an empty target → `chasquimq`.
pub fn logger_name(target: &str) -> String {
    let dotted = target.replace("::", ".");
    if dotted.is_empty() {
        "chasquimq".to_string()
    } else if dotted == "chasquimq" || dotted.starts_with("chasquimq.") {
        dotted
    } else {
        format!("chasquimq.{dotted}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sit_under_chasquimq() {
        assert_eq!(logger_name("chasquimq::consumer"), "chasquimq.consumer");
        assert_eq!(logger_name("chasquimq"), "chasquimq");
        assert_eq!(
            logger_name("fred::router::clustered"),
            "chasquimq.fred.router.clustered"
        );
        assert_eq!(logger_name(""), "chasquimq");
        assert_eq!(logger_name("chasquimqx"), "chasquimq.chasquimqx");
    }

    #[test]
    fn levels_use_python_numbers() {
        assert_eq!(level_number(log::Level::Error), 40);
        assert_eq!(level_number(log::Level::Warn), 30);
        assert_eq!(level_number(log::Level::Info), 20);
    }
}
