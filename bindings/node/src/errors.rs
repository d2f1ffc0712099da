//! The one conversion from engine errors to Node errors. The native side
//! rejects with a plain `Error` whose message starts with `[<code>] `; the
//! TypeScript side (`ts/native.ts`, `fromNative`) turns that into the
//! generated class of the code (`err.code`), so the class table lives in
//! exactly one place: `ts/_generated/errors.ts`, generated from the spec.

use chasquimq::Error;
use napi::Status;
use napi_derive::napi;

/// Converts an engine error into the native error carrying its code.
pub fn to_napi(e: Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("[{}] {}", e.code(), e))
}

/// An `invalid_argument` error naming `field`.
pub fn bad(field: &str, msg: impl Into<String>) -> napi::Error {
    to_napi(Error::invalid_argument(field, msg))
}

/// Throws the sample error of `code` (tests of the conversion, per code).
#[napi(js_name = "_throwEngineError")]
pub fn throw_engine_error(code: String) -> napi::Result<()> {
    match Error::sample(&code) {
        Some(e) => Err(to_napi(e)),
        None => Err(bad("code", format!("unknown code {code:?}"))),
    }
}

/// Every engine error code.
#[napi(js_name = "_engineErrorCodes")]
pub fn engine_error_codes() -> Vec<&'static str> {
    Error::CODES.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_the_message_prefix() {
        for code in Error::CODES {
            let e = to_napi(Error::sample(code).unwrap());
            assert!(e.reason.starts_with(&format!("[{code}] ")), "{}", e.reason);
        }
    }
}
