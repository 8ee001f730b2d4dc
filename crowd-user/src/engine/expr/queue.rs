//! What bucket expressions (`condition`, `overflow_filter`) see: `queue.Queue` (the bucket's
//! events), `leaky`, `signal` and `evt`. The queue is converted at every evaluation, so it is
//! made cheap: only the fields the expressions name (`.Meta.x`, `.Parsed.y`, `.Enriched.z`,
//! `.Time`) are converted, unless they name other parts of the event; and `queue.Queue` is
//! rewritten to a call (`CrowdQueue()`), so that closures over it do not copy the whole queue
//! for every element (the interpreter copies the variables per element).
use std::sync::Arc;

use expr::Value;
use indexmap::IndexMap;

use super::EvtContext;
use crate::engine::event::{Event, Fields};

/// The fields bucket expressions read, found in their source.
#[derive(Clone, Debug, Default)]
pub struct QueueFields {
    meta: Vec<String>,
    parsed: Vec<String>,
    enriched: Vec<String>,
    /// Some expression reads more than these maps and `Time`: events are converted whole.
    whole: bool,
}

impl QueueFields {
    /// What `sources` read.
    #[must_use]
    pub fn of(sources: &[&str]) -> QueueFields {
        static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let re =
            RE.get_or_init(|| regex::Regex::new(r"\.(Meta|Parsed|Enriched)\.([A-Za-z_][A-Za-z0-9_]*)").expect("valid"));
        let mut s = QueueFields::default();
        for src in sources {
            for c in re.captures_iter(src) {
                let list = match &c[1] {
                    "Meta" => &mut s.meta,
                    "Parsed" => &mut s.parsed,
                    _ => &mut s.enriched,
                };
                if !list.iter().any(|k| k == &c[2]) {
                    list.push(c[2].to_owned());
                }
            }
            let bare = re.replace_all(src, "");
            s.whole |= [
                "Line",
                "Unmarshaled",
                "StrTime",
                "Overflow",
                "GetMeta",
                "Whitelisted",
                "Stage",
                "Meta",
                "Parsed",
                "Enriched",
            ]
            .iter()
            .any(|w| bare.contains(w));
        }
        s
    }

    fn value(&self, e: &Event) -> Value {
        if self.whole {
            return e.to_value();
        }
        let pick = |m: &Fields, keys: &[String]| {
            Value::Map(
                keys.iter()
                    .filter_map(|k| m.get(k.as_str()).map(|v| (k.clone(), Value::String(v.to_string()))))
                    .collect(),
            )
        };
        Value::Map(IndexMap::from([
            ("Meta".to_owned(), pick(&e.meta, &self.meta)),
            ("Parsed".to_owned(), pick(&e.parsed, &self.parsed)),
            ("Enriched".to_owned(), pick(&e.enriched, &self.enriched)),
            ("Time".to_owned(), Value::Float(e.time)),
        ]))
    }
}

/// Rewrites `queue.Queue` to `CrowdQueue()` outside string literals.
#[must_use]
pub fn rewrite(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut in_str: Option<char> = None;
    let mut i = 0;
    let b = src.as_bytes();
    while i < src.len() {
        let c = src[i..].chars().next().expect("in bounds");
        match in_str {
            Some(q) if c == q && (i == 0 || b[i - 1] != b'\\') => in_str = None,
            Some(_) => {}
            None if matches!(c, '"' | '\'' | '`') => in_str = Some(c),
            None if src[i..].starts_with("queue.Queue")
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'.'))
                && !src[i + 11..].starts_with(|n: char| n.is_ascii_alphanumeric() || n == '_') =>
            {
                out.push_str("CrowdQueue()");
                i += 11;
                continue;
            }
            None => {}
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// The context of a bucket expression over `events`, with `queue.Queue` set for this thread.
pub fn context<'a>(
    queue_fields: &QueueFields,
    evt: &Event,
    events: impl Iterator<Item = &'a Arc<Event>>,
    leaky: Value,
) -> EvtContext {
    super::set_bucket_queue(Value::Array(events.map(|e| queue_fields.value(e)).collect()));
    EvtContext::from_value(queue_fields.value(evt)).with("leaky", leaky)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_references_become_calls_outside_strings() {
        assert_eq!(
            rewrite(r#"any(queue.Queue, {.Meta.x == "queue.Queue"}) && len(queue.Queue) > 2 && myqueue.Queue2"#),
            r#"any(CrowdQueue(), {.Meta.x == "queue.Queue"}) && len(CrowdQueue()) > 2 && myqueue.Queue2"#
        );
    }

    #[test]
    fn only_named_fields_are_converted() {
        let s = QueueFields::of(&[
            "any(queue.Queue, {.Meta.http_path == '/'}) && MedianInterval(map(queue.Queue, {#.Time})) > 1",
        ]);
        assert!(!s.whole);
        assert_eq!(s.meta, ["http_path"]);
        assert!(QueueFields::of(&["any(queue.Queue, {.Line.Raw contains 'x'})"]).whole);
        assert!(QueueFields::of(&["len(queue.Queue[0].Meta) > 1"]).whole);
    }
}
