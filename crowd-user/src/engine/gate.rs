//! `Gate`: which of an ordered list of filters an event can pass, from one read of one field.
//!
//! Most filters start with an equality on one field (`evt.Meta.log_type == 'ssh_failed-auth'`,
//! `evt.Parsed.program in ['sshd', 'sshd-session']`): an event whose value is not among those can
//! skip the filter without running it. The gate maps each value to the ascending list of the
//! items that need it or need nothing, so an event costs one look-up whatever the number of
//! scenarios or parsers. Order is kept: the items an event is tested against are the ones it
//! would have passed, in their order.
use hashbrown::HashMap;

use super::event::{Event, FieldRef};

/// The items to test, by the value of one field.
#[derive(Clone, Debug)]
pub struct Gate {
    field: FieldRef,
    by_value: HashMap<String, Vec<usize>>,
    /// Items any value may pass (ungated), ascending.
    always: Vec<usize>,
}

impl Gate {
    /// The gate over `field` for items whose `required[i]` values of the field (`None`: any
    /// value may pass); `None` when no item is gated.
    #[must_use]
    pub fn new(field: FieldRef, required: &[Option<Vec<String>>]) -> Option<Gate> {
        if required.iter().all(Option::is_none) {
            return None;
        }
        let always: Vec<usize> = (0..required.len()).filter(|i| required[*i].is_none()).collect();
        let mut by_value: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in required.iter().enumerate() {
            for v in r.iter().flatten() {
                by_value.entry(v.clone()).or_insert_with(|| always.clone()).push(i);
            }
        }
        for list in by_value.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        Some(Gate { field, by_value, always })
    }

    /// How many items the gate can skip for some value.
    #[must_use]
    pub fn gated(&self) -> usize {
        self.by_value.values().flatten().filter(|i| !self.always.contains(i)).count()
    }

    /// The items `evt` may pass, ascending.
    #[must_use]
    pub fn candidates(&self, evt: &Event) -> &[usize] {
        let v = evt.field(&self.field).unwrap_or("");
        self.by_value.get(v).map_or(&self.always, Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_tested_only_against_what_it_may_pass_in_order() {
        let field = FieldRef::Meta("log_type".into());
        let req = [Some(vec!["a".to_owned()]), None, Some(vec!["b".to_owned(), "a".to_owned()]), Some(vec![])];
        let g = Gate::new(field, &req).unwrap();
        let mut e = Event::default();
        assert_eq!(g.candidates(&e), [1], "no value: the ungated only");
        e.meta.insert("log_type".into(), "a".into());
        assert_eq!(g.candidates(&e), [0, 1, 2]);
        e.meta.insert("log_type".into(), "b".into());
        assert_eq!(g.candidates(&e), [1, 2]);
        assert!(Gate::new(FieldRef::Raw, &[None, None]).is_none());
    }
}
