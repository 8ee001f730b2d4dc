//! Checks run before touching the kernel, so that a missing privilege, an old kernel or an
//! unmounted bpffs is an error that says what to do, not an `EPERM` from deep inside a load.
use std::{fs, path::Path};

use super::{EnforceError, Result};

/// Oldest kernel crowd supports: bpf links for XDP (5.9), `bpf_ktime_get_coarse_ns` (5.11);
/// 5.15 is the oldest long-term kernel with both, and the one the verifier is held to.
pub const MIN_KERNEL: (u32, u32) = (5, 15);
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capabilities of this process, from `/proc/self/status`.
fn effective_caps() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Fails unless the process may load BPF programs and attach XDP (`what` says for which command).
///
/// # Errors
/// [`EnforceError::NotPrivileged`].
pub fn require_privileges(what: &'static str) -> Result<()> {
    let caps = effective_caps();
    let has = |c: u32| caps & (1 << c) != 0;
    let bpf = has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON));
    if bpf && has(CAP_NET_ADMIN) { Ok(()) } else { Err(EnforceError::NotPrivileged(what)) }
}

/// Parses `major.minor` from a kernel release string such as `6.18.44-fc-v657`.
#[must_use]
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Fails on kernels older than [`MIN_KERNEL`] or without BTF.
///
/// # Errors
/// [`EnforceError::KernelTooOld`], [`EnforceError::NoBtf`].
pub fn require_kernel() -> Result<()> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    if let Some(v) = parse_release(release)
        && v < MIN_KERNEL
    {
        return Err(EnforceError::KernelTooOld { found: release.to_owned(), need: "5.15" });
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(EnforceError::NoBtf);
    }
    Ok(())
}

/// True when `dir` is on a bpf filesystem.
#[must_use]
pub fn is_bpffs(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: zeroed statfs is a valid out-parameter; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statfs(c.as_ptr(), &raw mut st) };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libcs
    let ftype = st.f_type as i64;
    rc == 0 && ftype == BPF_FS_MAGIC
}

/// Makes sure `pin_dir` exists on a bpffs: the nearest existing ancestor must be on bpffs.
///
/// # Errors
/// [`EnforceError::BpffsNotMounted`] or an I/O error creating the directory.
pub fn ensure_pin_dir(pin_dir: &Path) -> Result<()> {
    let mut probe = pin_dir;
    while !probe.exists() {
        probe = probe.parent().unwrap_or(Path::new("/"));
    }
    if !is_bpffs(probe) {
        return Err(EnforceError::BpffsNotMounted(pin_dir.to_path_buf()));
    }
    // Pinned maps are `0600` already (bpffs); the directory keeps even their names to root.
    let made = |d: &Path| {
        crate::private::dir(d).map_err(|e| EnforceError::io(format!("creating pin directory `{}`", d.display()), e))
    };
    made(pin_dir)?;
    made(&pin_dir.join("links"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_release_parsing() {
        assert_eq!(parse_release("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_release("5.10.0-28-amd64"), Some((5, 10)));
        assert!(parse_release("5.10.0-28-amd64").unwrap() < MIN_KERNEL);
        assert!(parse_release("6.1.0-18-amd64").unwrap() >= MIN_KERNEL);
        assert_eq!(parse_release("garbage"), None);
        assert!(parse_release("4.19.0").unwrap() < MIN_KERNEL);
    }

    #[test]
    fn tmp_is_not_bpffs() {
        assert!(!is_bpffs(Path::new("/tmp")));
        assert!(matches!(ensure_pin_dir(Path::new("/tmp/crowd-not-bpffs/x")), Err(EnforceError::BpffsNotMounted(_))));
    }
}
