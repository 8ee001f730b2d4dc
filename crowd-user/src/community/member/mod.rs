//! crowd as a member of a community (crowd's server or any CrowdSec-compatible central API):
//! `credentials.rs` (CrowdSec's `online_api_credentials.yaml`), `client.rs` (the HTTP client),
//! `share.rs` (alerts out as signals, the alerts table as a persistent outbox), `pull.rs`
//! (community and organisation lists in, as `CAPI` and `lists` decisions).
pub mod client;
pub mod credentials;
pub mod pull;
pub mod runner;
pub mod share;
