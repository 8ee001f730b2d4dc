//! The detection engine: events in, alerts and decisions out. Pure: no I/O, no clock reads;
//! files are read by `config/` and time comes in with each event.
//!
//! - [`event`]: the event every stage reads and writes (CrowdSec's `evt`);
//! - [`grok`]: grok patterns compiled to RE2-semantics regexes (the `regex` crate);
//! - [`expr`]: expr-lang expressions with the CrowdSec helper functions;
//! - [`parser`]: CrowdSec's parser node format, stage by stage.
pub mod event;
pub mod expr;
pub mod fields;
pub mod gate;
pub mod geoip;
pub mod grok;
pub mod parser;
pub mod profile;
pub mod scenario;
