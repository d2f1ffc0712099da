//! Parsing of stream replies (XRANGE, XREADGROUP, XCLAIM) into entries.

use crate::errors::{Error, Result};
use bytes::Bytes;
use fred::prelude::Value;

/// The order of stream ids (`<ms>-<seq>`); anything else sorts last.
pub fn id_order(id: &str) -> (u64, u64) {
    id.split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .unwrap_or((u64::MAX, u64::MAX))
}

/// (entry id, field/value pairs in order)
pub type Entry = (String, Vec<(String, Bytes)>);

fn as_bytes(v: Value) -> Option<Bytes> {
    match v {
        Value::Bytes(b) => Some(b),
        Value::String(s) => Some(s.into_inner()),
        Value::Integer(i) => Some(Bytes::from(i.to_string())),
        Value::Double(f) => Some(Bytes::from(f.to_string())),
        _ => None,
    }
}

fn as_string(v: Value) -> Option<String> {
    as_bytes(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Parses an array of entries `[[id, [f, v, ...]], ...]`. Entries whose
/// fields are nil (deleted while pending) come back with no fields.
pub fn parse_entries(v: Value) -> Result<Vec<Entry>> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(Error::Decode(format!(
                "expected stream entries, got {:?}",
                other.kind()
            )))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut parts = match item {
            Value::Array(p) => p.into_iter(),
            Value::Null => continue,
            other => {
                return Err(Error::Decode(format!(
                    "expected a stream entry, got {:?}",
                    other.kind()
                )))
            }
        };
        let id = parts
            .next()
            .and_then(as_string)
            .ok_or_else(|| Error::Decode("stream entry without id".into()))?;
        let mut fields = Vec::new();
        match parts.next() {
            Some(Value::Array(fv)) => {
                let mut it = fv.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    if let (Some(k), Some(v)) = (as_string(k), as_bytes(v)) {
                        fields.push((k, v));
                    }
                }
            }
            Some(Value::Map(m)) => {
                for (k, v) in m.inner() {
                    if let Some(v) = as_bytes(v) {
                        fields.push((k.as_str_lossy().into_owned(), v));
                    }
                }
            }
            _ => {}
        }
        out.push((id, fields));
    }
    Ok(out)
}

/// Parses an XREADGROUP reply for a single stream.
pub fn parse_read(v: Value) -> Result<Vec<Entry>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                if let Value::Array(mut kv) = s {
                    if kv.len() == 2 {
                        let entries = kv.pop().unwrap_or(Value::Null);
                        out.extend(parse_entries(entries)?);
                    }
                }
            }
            Ok(out)
        }
        Value::Map(m) => {
            let mut out = Vec::new();
            for (_, entries) in m.inner() {
                out.extend(parse_entries(entries)?);
            }
            Ok(out)
        }
        other => Err(Error::Decode(format!(
            "unexpected XREADGROUP reply {:?}",
            other.kind()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::id_order;

    #[test]
    fn id_order_is_numeric_with_junk_last() {
        let mut ids = vec!["10-0", "9-5", "9-10", "junk", "1700000000000-3", "9-9"];
        ids.sort_by_key(|s| id_order(s));
        assert_eq!(
            ids,
            ["9-5", "9-9", "9-10", "10-0", "1700000000000-3", "junk"]
        );
        assert_eq!(id_order("5"), (u64::MAX, u64::MAX));
        assert_eq!(id_order("5-x"), (u64::MAX, u64::MAX));
    }
}
