//! crowd: a collaborative intrusion prevention system with XDP enforcement.
//!
//! The library behind the `crowd` binary. Pipeline (see `docs/ARCHITECTURE.md`):
//! acquisition → parsers → scenarios → profiles → store → (XDP maps, local API, community).
//! What exists today: acquisition, the detection engine ([`engine`], [`detect`]) reading
//! CrowdSec's formats, the store, the Local API ([`lapi`]), the kernel data plane ([`enforce`])
//! and the CLI ([`cli`]); the community client and server are next.
pub mod acquisition;
pub mod addr;
pub mod cli;
pub mod clock;
pub mod community;
pub mod config;
pub mod console;
pub mod daemon;
pub mod detect;
pub mod enforce;
pub mod engine;
pub mod fuzzing;
pub mod gosort;
pub mod gotmpl;
pub mod lapi;
pub mod metrics;
pub mod notify;
pub mod private;
pub mod reconcile;
pub mod rules;
pub mod store;
