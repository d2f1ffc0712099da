//! ChasquiMQ engine: a job queue on Redis Streams.
//!
//! Knows nothing about Python or Node; bindings convert types and errors.
//! The Redis data layout is the ChasquiMQ 1.x layout (see `docs/wire-format.md`).

pub mod clock;
pub mod conn;
pub mod consumer;
pub mod envelope;
pub mod errors;
pub mod handoff;
pub mod keys;
pub mod logging;
pub mod msgpack;
mod outbox;
pub mod producer;
pub mod promoter;
pub mod repeat;
pub mod runtime;
pub mod scheduler;
pub mod scripts;
pub mod streams;
pub mod tls;

pub use consumer::{Consumer, ConsumerConfig, Delivery, FailKind, Outcome};
pub use envelope::{Backoff, BackoffKind, Envelope, RetryOverride};
pub use errors::{Error, Result};
pub use producer::{AddOptions, Added, DlqEntry, NewJob, Producer, ProducerConfig};
/// Ends a `Consumer::start_until` wait (the bindings' close before start).
pub use tokio_util::sync::CancellationToken;

/// The engine's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
