//! The private native module of the `chasquimq` npm package. Thin: type and
//! error conversion over the engine, nothing else. The public TypeScript
//! surface (`ts/`) wraps napi's generated `native/index.js`.

pub mod bridge;
pub mod consumer;
pub mod errors;
pub mod logging;
pub mod producer;
pub mod repeat;
pub mod testing;

use napi_derive::napi;

/// The version of the binding crate.
#[napi]
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
