//! `crowd enforce`: parses nothing of its own (its flags are `crate::daemon::puller::Options`)
//! and runs the edge's puller and enforcer until SIGINT or SIGTERM.
use anyhow::Result;

use crate::enforce::{Settings, attach::Mode};

/// `crowd enforce`.
///
/// # Errors
/// Start-up failures (named), as the puller reports them.
pub fn run(settings: &Settings, ifaces: &[String], mode: Mode, opts: &crate::daemon::puller::Options) -> Result<()> {
    crate::daemon::puller::run(settings, ifaces, mode, opts)
}
