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
            repeat: format!("{prefix}repeat"),
            prefix,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
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
}

/// Checks a queue name: not empty or blank, at most 256 bytes, no hash-tag
/// braces (they would break the `{chasqui:<queue>}` tag), no control chars.
pub fn validate_queue_name(field: &str, name: &str) -> crate::Result<()> {
    let bad = |why: &str| Err(crate::Error::invalid_argument(field, why.to_string()));
    if name.trim().is_empty() {
        return bad("must not be empty or whitespace-only; pass a name such as \"emails\"");
    }
    if name.len() > 256 {
        return bad("must be at most 256 bytes of UTF-8; pass a shorter name");
    }
    if name.contains('{') || name.contains('}') {
        return bad("must not contain '{' or '}' (the name sits inside a Redis Cluster hash tag); remove the braces");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("must not contain control characters; remove them");
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
    fn queue_names_are_checked() {
        assert!(validate_queue_name("name", "emails").is_ok());
        assert!(validate_queue_name("name", "a:b-c_d.e").is_ok());
        for bad in ["", "   ", "a{b", "b}", "tab\tin", &"x".repeat(257)] {
            let e = validate_queue_name("name", bad).unwrap_err();
            assert_eq!(e.code(), "invalid_argument", "{bad:?}");
            assert!(e.to_string().starts_with("name:"));
        }
    }
}
