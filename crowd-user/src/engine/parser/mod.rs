//! Parsers: CrowdSec's node format, run stage by stage (`s00-raw`, `s01-parse`, `s02-enrich`).
//!
//! An event enters the first stage; within a stage the top-level parsers run in load order until
//! one with `onsuccess: next_stage` succeeds. An event that no parser of a stage succeeded on is
//! not parsed; one that some parser succeeded on goes on to the next stage, as in CrowdSec.
//! [`Dump`] records, per stage and parser, each event's state after that parser ran (hub tests,
//! `crowd explain`).
pub mod enrich;
pub mod node;
pub mod spec;

use indexmap::IndexMap;

pub use node::{CompileError, Ctx, Node};

use super::event::Event;

/// A loaded parser: its stage and compiled top-level node.
#[derive(Clone, Debug)]
pub struct Parser {
    /// Stage name (`s00-raw`, ...).
    pub stage: String,
    /// The node.
    pub node: Node,
}

/// The parsers of every stage, in order.
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    stages: Vec<(String, Vec<Node>)>,
    /// Per stage, the nodes a line may pass by the value of one field (see `engine/gate.rs`).
    gates: Vec<Option<crate::engine::gate::Gate>>,
}

/// One record of [`Dump`].
#[derive(Clone, Debug)]
pub struct DumpEntry {
    /// Whether the parser succeeded on the event.
    pub success: bool,
    /// The event after the parser ran.
    pub event: Event,
}

/// Per stage, per parser: the events that reached it, in order.
#[derive(Clone, Debug, Default)]
pub struct Dump {
    /// stage → parser name → entries.
    pub stages: IndexMap<String, IndexMap<String, Vec<DumpEntry>>>,
}

impl Pipeline {
    /// Builds the pipeline; stages run in name order, parsers within a stage in the given order.
    #[must_use]
    pub fn new(parsers: Vec<Parser>) -> Pipeline {
        let mut stages: Vec<(String, Vec<Node>)> = Vec::new();
        for p in parsers {
            match stages.iter_mut().find(|(s, _)| *s == p.stage) {
                Some((_, nodes)) => nodes.push(p.node),
                None => stages.push((p.stage, vec![p.node])),
            }
        }
        stages.sort_by(|a, b| a.0.cmp(&b.0));
        let gates = stages.iter().map(|(_, nodes)| stage_gate(nodes)).collect();
        Pipeline { stages, gates }
    }

    /// Stage names.
    pub fn stage_names(&self) -> impl Iterator<Item = &str> {
        self.stages.iter().map(|(s, _)| s.as_str())
    }

    /// Number of top-level parsers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.stages.iter().map(|(_, n)| n.len()).sum()
    }

    /// True without parsers.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs an overflow through the postoverflow stages, as CrowdSec does: until a stage it
    /// cannot leave (the overflow then goes on as it is), a whitelist marking it `whitelisted`
    /// (dropped by the caller), statics rewriting its alert's source.
    #[must_use]
    pub fn process_overflow(&self, mut evt: Event, ctx: &Ctx<'_>) -> Event {
        for (stage, nodes) in &self.stages {
            evt.stage.clone_from(stage);
            let mut ok = false;
            for node in nodes {
                if node.process(&mut evt, ctx) {
                    ok = true;
                    if node.next_stage {
                        break;
                    }
                }
            }
            if !ok {
                break;
            }
        }
        evt
    }

    /// Runs the event through every stage. `None` when it is not parsed (a stage it could not
    /// leave). With `dump`, records every parser's result.
    pub fn process(&self, mut evt: Event, ctx: &Ctx<'_>, mut dump: Option<&mut Dump>) -> Option<Event> {
        for ((stage, nodes), gate) in self.stages.iter().zip(&self.gates) {
            evt.stage.clone_from(stage);
            // The stash's clock is the events' (the log's own time once the date is parsed).
            ctx.env.stash().advance(evt.time);
            let mut ok = false;
            // A dump records every parser: the gate only serves plain runs.
            let gate = gate.as_ref().filter(|_| dump.is_none());
            let mut order: smallvec::SmallVec<[usize; 64]> = match gate {
                Some(g) => g.candidates(&evt).iter().copied().collect(),
                None => (0..nodes.len()).collect(),
            };
            let mut at = 0;
            while let Some(&i) = order.get(at) {
                at += 1;
                let node = &nodes[i];
                let success = node.process(&mut evt, ctx);
                if let Some(d) = dump.as_deref_mut() {
                    d.stages
                        .entry(stage.clone())
                        .or_default()
                        .entry(node.name.clone())
                        .or_default()
                        .push(DumpEntry { success, event: evt.clone() });
                }
                if success {
                    ok = true;
                    if node.next_stage {
                        break;
                    }
                    // The node may have changed the gate's field: the rest is chosen again.
                    if let Some(g) = gate {
                        order = g.candidates(&evt).iter().copied().filter(|j| *j > i).collect();
                        at = 0;
                    }
                }
            }
            if !ok {
                return None;
            }
        }
        Some(evt)
    }
}

/// The gate of a stage: over the field (of `program`, the log type label, `log_type`) whose
/// value lets the most of its nodes be skipped.
fn stage_gate(nodes: &[Node]) -> Option<crate::engine::gate::Gate> {
    use crate::engine::event::FieldRef;
    [FieldRef::Parsed("program".into()), FieldRef::Label("type".into()), FieldRef::Meta("log_type".into())]
        .into_iter()
        .filter_map(|f| {
            let required: Vec<Option<Vec<String>>> = nodes.iter().map(|n| n.gate_values(&f)).collect();
            crate::engine::gate::Gate::new(f, &required)
        })
        .max_by_key(crate::engine::gate::Gate::gated)
}
