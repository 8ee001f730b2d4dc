//! Helpers for crowd's privileged tests and benchmarks: unique pin directories that clean up,
//! packet builders, and network namespaces joined by veth (documentation addresses only).
pub mod browser;
pub mod lapi;
pub mod netns;
pub mod packet;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

use crowd::enforce::Settings;

/// Fails the calling test with a clear message unless running as root: privileged tests run as
/// root here and in CI, and a silently skipped test would prove nothing.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "privileged test: run as root (cargo xtask test does)");
}

/// Whether the pinned maps of `settings` hold an exact ban on `addr`.
#[must_use]
pub fn banned(settings: &Settings, addr: std::net::IpAddr) -> bool {
    crowd::enforce::maps::BanMaps::open(settings).is_ok_and(|m| m.lookup(addr).exact.is_some())
}

/// A unique pin directory under /sys/fs/bpf, purged (maps and links) on drop.
pub struct PinDir {
    /// The settings pointing at it.
    pub settings: Settings,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A short unique tag for names (pin dirs, namespaces, interfaces): pid and a counter.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}x{}", std::process::id() % 100_000, SEQ.fetch_add(1, Ordering::Relaxed))
}

impl PinDir {
    /// A new pin directory with small map capacities (fast to create).
    pub fn new() -> PinDir {
        require_root();
        let mut settings = Settings::new(format!("/sys/fs/bpf/{}", unique("crowd-test-")));
        settings.exact_capacity = 4096;
        settings.range_capacity = 1024;
        settings.allow_capacity = 1024;
        PinDir { settings }
    }

    /// The directory.
    pub fn path(&self) -> &PathBuf {
        &self.settings.pin_dir
    }
}

impl Default for PinDir {
    fn default() -> Self {
        PinDir::new()
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = crowd::enforce::pins::purge(&self.settings.pin_dir);
    }
}

/// The `crowd` binary built for this test run (`cargo xtask test` builds it first).
pub fn crowd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CROWD_BIN") {
        return p.into();
    }
    // target/<profile>/deps/<test-binary> → target/<profile>/crowd
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe.parent().and_then(|d| d.parent()).expect("target dir").join("crowd");
    assert!(bin.exists(), "{} is missing: run `cargo build --bins` first (cargo xtask test does)", bin.display());
    bin
}

/// Runs the crowd CLI on a store (`--state-dir`) with a pin directory that is never created, so
/// no kernel map is touched; returns stdout (asserts success).
pub fn crowd_on_store(state: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(crowd_bin())
        .args(["--pin-dir", "/sys/fs/bpf/crowd-test-no-maps"])
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("run crowd");
    assert!(out.status.success(), "crowd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A child process, killed and reaped when dropped (so a failing test leaves nothing running).
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` every `every` until it holds, failing the test after `limit`; returns how long it
/// took.
pub fn wait_for(
    what: &str,
    limit: std::time::Duration,
    every: std::time::Duration,
    mut f: impl FnMut() -> bool,
) -> std::time::Duration {
    let t = std::time::Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(every);
    }
    t.elapsed()
}

/// `n` sshd failed-password lines for `ip` from host `host`, stamped `stamp`.
fn sshd_failures(stamp: &str, host: &str, ip: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!("{stamp} {host} sshd[{}]: Failed password for root from {ip} port {} ssh2\n", 1000 + i, 40000 + i)
        })
        .collect()
}

fn append_text(path: &std::path::Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).expect("open the followed log");
    f.write_all(text.as_bytes()).expect("append");
}

/// Appends `n` sshd failed-password lines for `ip` to the log a crowd daemon follows, stamped
/// now in UTC.
pub fn append_sshd_failures(path: &std::path::Path, ip: &str, n: usize) {
    append_text(path, &sshd_failures(&chrono::Utc::now().format("%b %e %H:%M:%S").to_string(), "edge", ip, n));
}

/// Appends `n` sshd failed-password lines for `ip` to the log CrowdSec's agent reads, stamped
/// now in local time, as syslog writes them.
pub fn append_sshd_failures_local(path: &std::path::Path, ip: &str, n: usize) {
    append_text(path, &sshd_failures(&chrono::Local::now().format("%b %e %H:%M:%S").to_string(), "host", ip, n));
}

/// A `/proc/<pid>/status` memory figure (`VmHWM`, `VmRSS`), KiB (0 when unreadable).
#[must_use]
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|v| v.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
