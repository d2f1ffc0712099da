//! Engine futures to JavaScript promises. Every future runs on the engine's
//! one tokio runtime (`chasquimq::runtime::runtime()`); napi's own runtime is
//! not compiled in. The promise settles on the JavaScript thread through a
//! napi deferred (a threadsafe function), where `convert` builds the value.
//!
//! Dropping the promise in JavaScript does not cancel the engine call: it
//! runs to its end, so no job is lost halfway.

use crate::errors::to_napi;
use napi::bindgen_prelude::{Object, ToNapiValue};
use napi::Env;
use std::future::Future;

type Resolver<V> = Box<dyn FnOnce(Env) -> napi::Result<V> + Send>;

/// Spawns `fut` on the engine runtime and returns a promise of its output,
/// converted on the JavaScript thread by `convert`.
pub fn promise<'env, T, V, F, C>(env: &'env Env, fut: F, convert: C) -> napi::Result<Object<'env>>
where
    T: Send + 'static,
    V: ToNapiValue + 'static,
    F: Future<Output = chasquimq::Result<T>> + Send + 'static,
    C: FnOnce(Env, T) -> napi::Result<V> + Send + 'static,
{
    let rt = chasquimq::runtime::runtime().map_err(to_napi)?;
    let (deferred, promise) = env.create_deferred::<V, Resolver<V>>()?;
    let task = rt.spawn(fut);
    // A second task watches the first, so that a panic in the engine
    // rejects the promise instead of leaving it pending forever.
    rt.spawn(async move {
        match task.await {
            Ok(Ok(value)) => deferred.resolve(Box::new(move |env| convert(env, value))),
            Ok(Err(e)) => deferred.reject(to_napi(e)),
            Err(join) => deferred.reject(to_napi(chasquimq::Error::Internal(format!(
                "an engine task failed: {join}"
            )))),
        }
    });
    Ok(promise)
}

/// `promise` for outputs that convert to JavaScript as they are.
pub fn promise_value<'env, T, F>(env: &'env Env, fut: F) -> napi::Result<Object<'env>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = chasquimq::Result<T>> + Send + 'static,
{
    promise(env, fut, |_, v| Ok(v))
}

/// Milliseconds and counts arrive as JavaScript numbers: a whole,
/// non-negative, safe integer or an `invalid_argument` naming `field`.
pub fn to_u64(field: &str, v: f64) -> napi::Result<u64> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if !v.is_finite() || !(0.0..=MAX_SAFE).contains(&v) {
        return Err(crate::errors::bad(
            field,
            format!("must be a non-negative safe integer (got {v})"),
        ));
    }
    Ok(v.trunc() as u64)
}

pub fn to_u32(field: &str, v: f64) -> napi::Result<u32> {
    let n = to_u64(field, v)?;
    u32::try_from(n).map_err(|_| crate::errors::bad(field, format!("must be at most {}", u32::MAX)))
}

pub fn opt_u64(field: &str, v: Option<f64>) -> napi::Result<Option<u64>> {
    v.map(|v| to_u64(field, v)).transpose()
}

pub fn opt_u32(field: &str, v: Option<f64>) -> napi::Result<Option<u32>> {
    v.map(|v| to_u32(field, v)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_must_be_safe_non_negative_integers() {
        assert_eq!(to_u64("x", 5.9).unwrap(), 5);
        assert!(to_u64("x", -1.0).is_err());
        assert!(to_u64("x", f64::NAN).is_err());
        assert!(to_u64("x", 1e300).is_err());
        assert!(to_u32("x", 5e9).is_err());
        assert_eq!(opt_u32("x", None).unwrap(), None);
    }
}
