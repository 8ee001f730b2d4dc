//! The community server (`crowd community serve`): a self-hostable central API that CrowdSec's
//! agents (1.4.x on `/v2`, 1.5+ on `/v3`) and crowd's members join unchanged. Members send
//! signals; an open, explainable consensus decides what the community list holds; each
//! organisation also gets its own list of its members' reports at once.
//!
//! Files: `config.rs` (the server's YAML), `wire.rs` (the JSON, checked both ways),
//! `consensus/` (the pure consensus: quorum, trust, canaries; its tests in `tests.rs`), `engine.rs` (the task that owns
//! it and publishes into the store), `server.rs` (routes), `simulate.rs` (a seeded simulator of
//! members and attackers for tests).
pub mod config;
pub mod consensus;
pub mod engine;
pub mod member;
pub mod server;
pub mod simulate;
pub mod wire;
