//! `Fields`: the string map behind an event's `Parsed`, `Meta` and `Enriched`.
//!
//! An event carries a dozen or two fields, written and read by name at every parser node and
//! scenario filter. Each entry keeps a tag of its name (length, first and last eight bytes:
//! computed in a few instructions, no hash of the whole name), and a small open-addressed table
//! of 64 one-byte slots, inline in the map, finds an entry from its tag; names are compared only
//! on a tag match. Names and short values are [`Str`]s kept inline, so a new field costs no
//! allocation. A map that grows past [`SMALL_MAX`] entries (a JSON or key=value log line names
//! its own keys, so the attacker chooses how many) moves to a hash index with a random seed, so
//! look-ups stay constant-time whatever the line holds. Entries keep their insertion order.
use std::{collections::HashMap, fmt};

use serde::{Serialize, Serializer, ser::SerializeMap};

/// A field name or value: short strings (field names, IPs, user names, ports) are kept inline,
/// without an allocation.
pub type Str = compact_str::CompactString;

/// Beyond this many entries, look-ups go through a hash index.
pub const SMALL_MAX: usize = 32;

/// Slots of the small table (twice `SMALL_MAX`: probe chains stay short).
const SLOTS: usize = 64;

/// An insertion-ordered map of field names to values.
#[derive(Clone)]
pub struct Fields {
    entries: Vec<(Str, Str)>,
    /// `tag(name)` of each entry, in the same order.
    tags: Vec<u64>,
    /// While there are at most `SMALL_MAX` entries: an open-addressed table from a tag's slot
    /// to 1 + the entry's position (0: empty).
    slots: [u8; SLOTS],
    /// Name → position in `entries`, once there are more than `SMALL_MAX` entries.
    index: Option<HashMap<Str, usize>>,
}

impl Fields {
    /// An empty map with room for `n` fields.
    #[must_use]
    pub fn with_capacity(n: usize) -> Fields {
        Fields { entries: Vec::with_capacity(n), tags: Vec::with_capacity(n), slots: [0; SLOTS], index: None }
    }

    /// The entry named `k`, else (small maps) the empty slot where it would go and the tag.
    #[inline]
    fn find(&self, k: &str) -> Result<usize, (usize, u64)> {
        if self.index.is_some() {
            return self.find_indexed(k);
        }
        let t = tag(k.as_bytes());
        let mut i = slot(t);
        loop {
            match self.slots[i] {
                0 => return Err((i, t)),
                s => {
                    let e = usize::from(s - 1);
                    // A tag holds all the bytes of a name of up to eight: equal lengths suffice.
                    if self.tags[e] == t && {
                        let n = &self.entries[e].0;
                        n.len() == k.len() && (k.len() <= 8 || n.as_bytes() == k.as_bytes())
                    } {
                        return Ok(e);
                    }
                }
            }
            i = (i + 1) % SLOTS;
        }
    }

    /// [`Fields::find`] in a large map.
    #[cold]
    #[inline(never)]
    fn find_indexed(&self, k: &str) -> Result<usize, (usize, u64)> {
        self.index.as_ref().and_then(|ix| ix.get(k).copied()).ok_or_else(|| (usize::MAX, tag(k.as_bytes())))
    }

    fn position(&self, k: &str) -> Option<usize> {
        self.find(k).ok()
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
        let (free, t) = match self.find(&k) {
            Ok(i) => return Some(std::mem::replace(&mut self.entries[i].1, v)),
            Err(free) => free,
        };
        let at = self.entries.len();
        match &mut self.index {
            Some(ix) => {
                ix.insert(k.clone(), at);
            }
            None if at == SMALL_MAX => {
                let mut ix: HashMap<Str, usize> = HashMap::with_capacity(2 * SMALL_MAX);
                ix.extend(self.entries.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)));
                ix.insert(k.clone(), at);
                self.index = Some(ix);
            }
            // `at` < SMALL_MAX < 255: fits the slot byte.
            None => self.slots[free] = u8::try_from(at + 1).unwrap_or(u8::MAX),
        }
        if self.entries.capacity() == 0 {
            // A map made empty takes room for a parsed event's fields at once.
            self.entries.reserve(12);
            self.tags.reserve(12);
        }
        self.tags.push(t);
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

impl Default for Fields {
    fn default() -> Fields {
        Fields { entries: Vec::new(), tags: Vec::new(), slots: [0; SLOTS], index: None }
    }
}

/// The small table's first slot for a tag.
fn slot(t: u64) -> usize {
    // The top six bits of a multiplicative hash.
    usize::try_from(t.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58).unwrap_or(0)
}

/// A summary of a name: equal names have equal tags; names of different lengths, or differing
/// in their first or last eight bytes, have different tags.
#[inline]
fn tag(b: &[u8]) -> u64 {
    #[inline(always)]
    fn u32_at(b: &[u8], i: usize) -> u64 {
        b.get(i..i + 4).and_then(|s| s.try_into().ok()).map_or(0, |a| u64::from(u32::from_le_bytes(a)))
    }
    #[inline(always)]
    fn u64_at(b: &[u8], i: usize) -> u64 {
        b.get(i..i + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
    }
    let n = b.len();
    // Fixed-size reads (overlapping for short names) that together cover the first and last
    // eight bytes.
    let bits = match n {
        0 => 0,
        1..=3 => u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16,
        4..=8 => u32_at(b, 0) | u32_at(b, n - 4) << 32,
        _ => u64_at(b, 0) ^ u64_at(b, n - 8).rotate_left(31),
    };
    bits.wrapping_add((n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
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
        // Same length, same first and last eight bytes: same tag, told apart by the bytes.
        let (x, y) = ("aaaaaaaaXaaaaaaaa", "aaaaaaaaYaaaaaaaa");
        assert_eq!(tag(x.as_bytes()), tag(y.as_bytes()));
        m.insert(x.into(), "1".into());
        assert_eq!(m.get(y), None);
        m.insert(y.into(), "2".into());
        assert_eq!((m.get(x).map(Str::as_str), m.get(y).map(Str::as_str)), (Some("1"), Some("2")));
    }

    #[test]
    fn many_keys_go_through_the_index_and_agree_with_a_hash_map() {
        let mut m = Fields::default();
        let mut want = HashMap::new();
        for i in 0..500u32 {
            let k = format!("k{}", i % 300);
            let v = format!("v{i}");
            assert_eq!(m.insert(k.as_str().into(), v.as_str().into()).map(String::from), want.insert(k, v));
            assert_eq!(m.index.is_some(), m.len() > SMALL_MAX);
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
