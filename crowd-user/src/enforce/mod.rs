//! Kernel enforcement: the only module that knows aya and the XDP program.
//!
//! - [`object`] loads the embedded XDP object against the pinned maps;
//! - [`pins`] checks the bpffs pin directory and each pinned map before reuse;
//! - [`filter`] keeps the prefilter bitmaps that let legitimate traffic skip the ban maps;
//! - [`maps`] reads and edits the pinned maps (bans, ranges, allowlist, counters);
//! - [`attach`] attaches to interfaces through pinned links and detaches;
//! - [`preflight`] turns missing privileges, an old kernel or no bpffs into clear errors;
//! - [`sys`] holds the few raw `bpf(2)` calls aya lacks.
//!
//! Enforcement outlives the process: maps and links are pinned under the pin directory
//! (default `/sys/fs/bpf/crowd`), so the program keeps dropping after `crowd` exits, and a
//! restarted daemon swaps in its program atomically through the pinned link.
pub mod attach;
pub mod filter;
pub mod maps;
pub mod object;
pub mod pins;
pub mod preflight;
pub mod sys;

use std::path::PathBuf;

use crowd_common::capacity;

/// The default pin directory.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/crowd";

/// Where the maps live and how large they are.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Pin directory on a bpffs.
    pub pin_dir: PathBuf,
    /// Exact bans per family.
    pub exact_capacity: u32,
    /// Range bans per family.
    pub range_capacity: u32,
    /// Allowlist entries per family.
    pub allow_capacity: u32,
}

impl Settings {
    /// Default capacities under `pin_dir`.
    #[must_use]
    pub fn new(pin_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            pin_dir: pin_dir.into(),
            exact_capacity: capacity::EXACT,
            range_capacity: capacity::RANGES,
            allow_capacity: capacity::ALLOW,
        }
    }
}

/// Everything that can go wrong talking to the kernel, worded for the admin.
#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    /// Neither root nor the capabilities needed.
    #[error("crowd needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON) to {0}")]
    NotPrivileged(&'static str),
    /// No bpffs where pins go.
    #[error(
        "`{0}` is not on a bpf filesystem: mount it with `mount -t bpf bpf /sys/fs/bpf` (or run `cargo xtask setup`)"
    )]
    BpffsNotMounted(PathBuf),
    /// Kernel older than what the program needs.
    #[error("kernel {found} is too old: crowd needs Linux {need} or newer (bpf links, coarse clock in XDP)")]
    KernelTooOld {
        /// `uname -r`.
        found: String,
        /// Minimum version.
        need: &'static str,
    },
    /// No kernel BTF.
    #[error(
        "this kernel has no BTF (`/sys/kernel/btf/vmlinux` is missing): crowd needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf,
    /// The binary was built without the XDP object.
    #[error(
        "this crowd binary was built without its XDP program (CROWD_SKIP_EBPF=1): rebuild it with `cargo xtask build`"
    )]
    NoObject,
    /// No pinned maps yet.
    #[error("no crowd maps are pinned under `{0}`: run `crowd attach --iface IF` or `crowd run` first")]
    NotInitialised(PathBuf),
    /// Interface does not exist.
    #[error("unknown interface `{0}` (see `ip link`)")]
    UnknownInterface(String),
    /// A map is full: the entry was not added, nothing else changed.
    #[error(
        "map `{map}` is full ({capacity} entries): entry `{entry}` was not added; raise the capacity or remove entries"
    )]
    MapFull {
        /// Map name.
        map: &'static str,
        /// Its capacity.
        capacity: u32,
        /// What was refused.
        entry: String,
    },
    /// Nothing attached on that interface.
    #[error("crowd is not attached to `{0}` (no link pinned under the pin directory)")]
    NotAttached(String),
    /// A pinned map that cannot be used.
    #[error("pinned map `{path}` is not usable: {reason}")]
    BadPin {
        /// Pin path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An aya load error.
    #[error("loading the XDP program: {0}")]
    Load(#[from] aya::EbpfError),
    /// An aya map error.
    #[error("map operation failed: {0}")]
    Map(#[from] aya::maps::MapError),
    /// An aya program error.
    #[error("program operation failed: {0}")]
    Program(#[from] aya::programs::ProgramError),
    /// Pinning failed.
    #[error("pinning failed: {0}")]
    Pin(#[from] aya::pin::PinError),
    /// A file or syscall error with its context.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl EnforceError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> EnforceError {
        EnforceError::Io { what: what.into(), source }
    }
}

/// Result alias for this module.
pub type Result<T, E = EnforceError> = std::result::Result<T, E>;
