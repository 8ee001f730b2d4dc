//! `Fields`: the string map behind an event's `Parsed`, `Meta` and `Enriched`.
//!
//! An event carries a dozen or two fields, written and read by name at every parser node and
//! scenario filter. For maps this small a scan of the entries, comparing lengths first, beats
//! hashing every key: each entry keeps a tag of its name (length and first and last bytes), so a
//! look-up compares one integer per entry and the bytes only on a tag match. Names and short
//! values are [`Str`]s kept inline, so a new field costs no allocation. A map that grows past [`SCAN_MAX`] entries (a JSON or key=value log line names
//! its own keys, so the attacker chooses how many) gets a hash index with a random seed, so
//! look-ups stay constant-time whatever the line holds. Entries keep their insertion order.
use std::{collections::HashMap, fmt};

use serde::{Serialize, Serializer, ser::SerializeMap};

/// A field name or value: short strings (field names, IPs, user names, ports) are kept inline,
/// without an allocation.
pub type Str = compact_str::CompactString;

/// Beyond this many entries, look-ups go through a hash index.
pub const SCAN_MAX: usize = 32;

/// An insertion-ordered map of field names to values.
#[derive(Clone, Default)]
pub struct Fields {
    entries: Vec<(Str, Str)>,
    /// `tag(name)` of each entry, in the same order.
    tags: Vec<u64>,
    /// Name → position in `entries`, once there are more than `SCAN_MAX` entries.
    index: Option<HashMap<Str, usize>>,
}

impl Fields {
    /// An empty map with room for `n` fields.
    #[must_use]
    pub fn with_capacity(n: usize) -> Fields {
        Fields { entries: Vec::with_capacity(n), tags: Vec::with_capacity(n), index: None }
    }

    fn position(&self, k: &str) -> Option<usize> {
        if let Some(ix) = &self.index {
            return ix.get(k).copied();
        }
        let t = tag(k.as_bytes());
        let mut from = 0;
        while let Some(i) = self.tags[from..].iter().position(|&x| x == t) {
            let i = from + i;
            if self.entries[i].0.as_bytes() == k.as_bytes() {
                return Some(i);
            }
            from = i + 1;
        }
        None
    }

    /// The value of `k`.
    #[must_use]
    pub fn get(&self, k: &str) -> Option<&Str> {
        self.position(k).map(|i| &self.entries[i].1)
    }

    /// The value of `k`, to change in place.
    pub fn get_mut(&mut self, k: &str) -> Option<&mut Str> {
        self.position(k).map(|i| &mut self.entries[i].1)
    }

    /// Whether `k` is set.
    #[must_use]
    pub fn contains_key(&self, k: &str) -> bool {
        self.position(k).is_some()
    }

    /// Sets `k` to `v` (in place if set, else at the end); returns the value it replaced.
    pub fn insert(&mut self, k: Str, v: Str) -> Option<Str> {
        if let Some(i) = self.position(&k) {
            return Some(std::mem::replace(&mut self.entries[i].1, v));
        }
        let at = self.entries.len();
        match &mut self.index {
            Some(ix) => {
                ix.insert(k.clone(), at);
            }
            None if at == SCAN_MAX => {
                let mut ix: HashMap<Str, usize> = HashMap::with_capacity(2 * SCAN_MAX);
                ix.extend(self.entries.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)));
                ix.insert(k.clone(), at);
                self.index = Some(ix);
            }
            None => {}
        }
        self.tags.push(tag(k.as_bytes()));
        self.entries.push((k, v));
        None
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Str, &Str)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The names in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = &Str> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// How many fields are set.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no field is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A summary of a name: equal names have equal tags; names of different lengths, or differing
/// in their first or last eight bytes, have different tags.
fn tag(b: &[u8]) -> u64 {
    let load = |s: &[u8]| {
        let mut w = [0u8; 8];
        w[..s.len()].copy_from_slice(s);
        u64::from_le_bytes(w)
    };
    let n = b.len();
    let (head, tail) = if n <= 8 { (load(b), 0) } else { (load(&b[..8]), load(&b[n - 8..])) };
    (head ^ tail.rotate_left(31)).wrapping_add((n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Equal when they hold the same names and values, in any order (as maps compare).
impl PartialEq for Fields {
    fn eq(&self, other: &Fields) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for Fields {}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k.as_str(), v.as_str())?;
        }
        m.end()
    }
}

impl<K: Into<Str>, V: Into<Str>> FromIterator<(K, V)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(it: I) -> Fields {
        let mut m = Fields::default();
        for (k, v) in it {
            m.insert(k.into(), v.into());
        }
        m
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a Str, &'a Str);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (Str, Str)>, fn(&'a (Str, Str)) -> (&'a Str, &'a Str)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_replace_keep_order() {
        let mut m = Fields::with_capacity(4);
        assert_eq!(m.insert("b".into(), "1".into()), None);
        assert_eq!(m.insert("a".into(), "2".into()), None);
        assert_eq!(m.insert("b".into(), "3".into()).as_deref(), Some("1"));
        assert_eq!(m.get("b").map(Str::as_str), Some("3"));
        assert_eq!(m.get("c"), None);
        // "ab" and "ba" share a length: the bytes decide.
        m.insert("ab".into(), "x".into());
        assert_eq!(m.get("ba"), None);
        assert_eq!(m.keys().map(Str::as_str).collect::<Vec<_>>(), ["b", "a", "ab"]);
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"b":"3","a":"2","ab":"x"}"#);
    }

    #[test]
    fn many_keys_go_through_the_index_and_agree_with_a_hash_map() {
        let mut m = Fields::default();
        let mut want = HashMap::new();
        for i in 0..500u32 {
            let k = format!("k{}", i % 300);
            let v = format!("v{i}");
            assert_eq!(m.insert(k.as_str().into(), v.as_str().into()).map(String::from), want.insert(k, v));
            assert_eq!(m.index.is_some(), m.len() > SCAN_MAX);
        }
        assert_eq!(m.len(), want.len());
        for (k, v) in &want {
            assert_eq!(m.get(k).map(Str::as_str), Some(v.as_str()));
        }
        assert_eq!(m.get("k300"), None);
        // Order is insertion order, through the index too.
        assert!(m.keys().map(|k| k[1..].parse::<u32>().unwrap()).eq(0..300));
    }

    #[test]
    fn maps_compare_regardless_of_order() {
        let a: Fields = [("x", "1"), ("y", "2")].into_iter().collect();
        let b: Fields = [("y", "2"), ("x", "1")].into_iter().collect();
        let c: Fields = [("y", "2"), ("x", "3")].into_iter().collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
