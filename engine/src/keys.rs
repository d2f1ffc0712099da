//! Redis key names of one queue. Every key starts with `{chasqui:<queue>}:`,
//! a Redis Cluster hash tag: one queue, one slot.

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    pub stream: String,
    pub dlq: String,
    pub delayed: String,
    pub events: String,
    pub promoter_lock: String,
    pub scheduler_lock: String,
    pub scheduler_tick: String,
    pub repeat: String,
}

impl Keys {
    pub fn new(queue: &str) -> Keys {
        let prefix = format!("{{chasqui:{queue}}}:");
        Keys {
            stream: format!("{prefix}stream"),
            dlq: format!("{prefix}dlq"),
            delayed: format!("{prefix}delayed"),
            events: format!("{prefix}events"),
            promoter_lock: format!("{prefix}promoter:lock"),
            scheduler_lock: format!("{prefix}scheduler:lock"),
            scheduler_tick: format!("{prefix}scheduler:tick"),
            repeat: format!("{prefix}repeat"),
            prefix,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Routes a custom command to this queue's Redis Cluster slot. fred 10
    /// honours only `ClusterHash::Custom` on custom commands (`Offset`,
    /// `Random` and the rest fall back to hashing the first string
    /// argument), so every custom command on a queue key takes this.
    pub fn cluster_hash(&self) -> fred::types::ClusterHash {
        fred::types::ClusterHash::Custom(fred::util::redis_keyslot(self.prefix.as_bytes()))
    }

    pub fn result(&self, job_id: &str) -> String {
        format!("{}result:{job_id}", self.prefix)
    }

    pub fn dedup(&self, job_id: &str) -> String {
        format!("{}dlid:{job_id}", self.prefix)
    }

    pub fn delayed_index(&self, job_id: &str) -> String {
        format!("{}didx:{job_id}", self.prefix)
    }

    pub fn repeat_spec(&self, spec_key: &str) -> String {
        format!("{}repeat:spec:{spec_key}", self.prefix)
    }

    /// The refusal marker of one multi-call `add_bulk` (set only when its
    /// first call found the stream too full; expires after a minute).
    pub fn bulk_gate(&self, token: &str) -> String {
        format!("{}bulkgate:{token}", self.prefix)
    }
}

/// Longest queue name, in UTF-8 bytes.
pub const MAX_QUEUE_NAME_BYTES: usize = 256;

/// Checks a queue name against the rules every binding shares (written out,
/// with the test table, in `spec/vectors/queue_names.json`): 1 to 256 bytes
/// of UTF-8; no hash-tag braces (they would break the `{chasqui:<queue>}`
/// tag); no control characters (Unicode Cc); no leading or trailing
/// whitespace (Unicode White_Space). Anything else, `:` included, is allowed.
pub fn validate_queue_name(field: &str, name: &str) -> crate::Result<()> {
    let bad = |why: &str| Err(crate::Error::invalid_argument(field, why.to_string()));
    if name.trim().is_empty() {
        return bad("must not be empty or whitespace-only; pass a name such as \"emails\"");
    }
    if name.len() > MAX_QUEUE_NAME_BYTES {
        return bad("must be at most 256 bytes of UTF-8; pass a shorter name");
    }
    if name.contains(['{', '}']) {
        return bad("must not contain '{' or '}' (the name sits inside a Redis Cluster hash tag); remove the braces");
    }
    // char::is_control is exactly Unicode Cc (U+0000-U+001F, U+007F-U+009F).
    if name.chars().any(char::is_control) {
        return bad("must not contain control characters; remove them");
    }
    // char::is_whitespace is exactly the Unicode White_Space property.
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return bad("must not start or end with whitespace; trim the name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_hash_tag() {
        let k = Keys::new("emails");
        assert_eq!(k.stream, "{chasqui:emails}:stream");
        assert_eq!(k.result("J1"), "{chasqui:emails}:result:J1");
        assert_eq!(k.dedup("a b"), "{chasqui:emails}:dlid:a b");
        assert_eq!(k.delayed_index("x"), "{chasqui:emails}:didx:x");
        assert_eq!(k.repeat_spec("s"), "{chasqui:emails}:repeat:spec:s");
        assert_eq!(k.promoter_lock, "{chasqui:emails}:promoter:lock");
    }

    #[test]
    fn every_key_of_a_queue_hashes_to_one_cluster_slot() {
        // Job ids and spec keys may hold braces: the queue's tag comes
        // first, so it still decides the slot.
        for queue in ["emails", "billing:emails", "a b", "\u{961f}\u{5217}"] {
            let k = Keys::new(queue);
            let slot = fred::util::redis_keyslot(k.stream.as_bytes());
            let mut all = vec![
                k.dlq.clone(),
                k.delayed.clone(),
                k.events.clone(),
                k.promoter_lock.clone(),
                k.scheduler_lock.clone(),
                k.repeat.clone(),
            ];
            for id in ["01J0000000000000000000000", "{x}", "a}b", "{"] {
                all.extend([
                    k.result(id),
                    k.dedup(id),
                    k.delayed_index(id),
                    k.repeat_spec(id),
                ]);
            }
            for key in all {
                assert_eq!(fred::util::redis_keyslot(key.as_bytes()), slot, "{key}");
            }
            assert_eq!(
                slot,
                fred::util::redis_keyslot(format!("chasqui:{queue}").as_bytes())
            );
            assert_eq!(k.cluster_hash(), fred::types::ClusterHash::Custom(slot));
        }
    }

    /// The shared table of valid and invalid names (the Python and Node
    /// suites read the same file).
    #[test]
    fn queue_names_follow_the_shared_table() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../spec/vectors/queue_names.json"
        );
        let text = std::fs::read_to_string(path).expect("spec/vectors/queue_names.json");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let cases = |kind: &str| -> Vec<(String, String)> {
            doc[kind]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let times = c.get("repeat").and_then(|r| r.as_u64()).unwrap_or(1);
                    let name = c["name"].as_str().unwrap().repeat(times as usize);
                    (name, c["why"].as_str().unwrap().to_string())
                })
                .collect()
        };
        let valid = cases("valid");
        let invalid = cases("invalid");
        assert!(valid.len() >= 10 && invalid.len() >= 10);
        for (name, why) in valid {
            assert!(
                validate_queue_name("name", &name).is_ok(),
                "{name:?} should be valid: {why}"
            );
        }
        for (name, why) in invalid {
            let e = validate_queue_name("name", &name)
                .expect_err(&format!("{name:?} should be invalid: {why}"));
            assert_eq!(e.code(), "invalid_argument", "{why}");
            assert!(e.to_string().starts_with("name:"), "{e}");
        }
    }
}
