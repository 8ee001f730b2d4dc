//! Attaching the XDP program to interfaces through pinned bpf links, and detaching.
//!
//! A link is pinned at `<pin dir>/links/<interface>`, so the program keeps dropping after the
//! process that attached it exits. Attaching where a link is already pinned swaps the program
//! inside the link (`bpf_link_update`): the interface is never without a program, which is how a
//! restarted or upgraded daemon takes over with no gap. Removing the pin detaches.
use std::{
    ffi::CString,
    fs,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use aya::programs::{XdpMode, links::FdLink};

use super::{EnforceError, Result, object::Loaded, sys};

/// Requested attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Driver (native) mode, falling back to generic (skb) mode.
    Auto,
    /// Driver mode only.
    Driver,
    /// Generic mode only (slower: runs after the kernel allocated an skb).
    Skb,
}

/// How an attach went.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Attached {
    /// Interface name.
    pub iface: String,
    /// `driver`, `skb`, or `kept` when an existing link had its program replaced in place.
    pub mode: &'static str,
    /// True when an existing pinned link was updated (takeover without a gap).
    pub replaced: bool,
}

/// The interface index of `iface`.
///
/// # Errors
/// [`EnforceError::UnknownInterface`].
pub fn ifindex(iface: &str) -> Result<u32> {
    let c = CString::new(iface).map_err(|_| EnforceError::UnknownInterface(iface.to_owned()))?;
    // SAFETY: NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(EnforceError::UnknownInterface(iface.to_owned())),
        i => Ok(i),
    }
}

/// Where the link for `iface` is pinned.
#[must_use]
pub fn link_pin(pin_dir: &Path, iface: &str) -> PathBuf {
    pin_dir.join("links").join(iface)
}

/// Attaches (or takes over) the enforcing program on `iface`.
///
/// # Errors
/// Unknown interface, every mode refused by the kernel, or a pinning failure.
pub fn attach(loaded: &mut Loaded, pin_dir: &Path, iface: &str, mode: Mode) -> Result<Attached> {
    let index = ifindex(iface)?;
    let pin = link_pin(pin_dir, iface);
    if pin.exists() {
        let link =
            sys::obj_get(&pin).map_err(|e| EnforceError::io(format!("opening link pin `{}`", pin.display()), e))?;
        let info = sys::link_info(link.as_fd()).map_err(|e| EnforceError::io("reading link info", e))?;
        if info.link_type == sys::BPF_LINK_TYPE_XDP && info.ifindex == index {
            let prog = loaded.program();
            let prog_fd = prog.fd()?;
            sys::link_update(link.as_fd(), prog_fd.as_fd())
                .map_err(|e| EnforceError::io(format!("replacing the program on `{iface}`"), e))?;
            return Ok(Attached { iface: iface.to_owned(), mode: "kept", replaced: true });
        }
        tracing::warn!(iface, pin = %pin.display(), "stale link pin (interface gone or recreated): attaching afresh");
        fs::remove_file(&pin).map_err(|e| EnforceError::io(format!("removing stale pin `{}`", pin.display()), e))?;
    }
    let tries: &[(XdpMode, &'static str)] = match mode {
        Mode::Auto => &[(XdpMode::Driver, "driver"), (XdpMode::Skb, "skb")],
        Mode::Driver => &[(XdpMode::Driver, "driver")],
        Mode::Skb => &[(XdpMode::Skb, "skb")],
    };
    let prog = loaded.program();
    let mut last = None;
    for &(m, name) in tries {
        match prog.attach_to_if_index(index, m) {
            Ok(id) => {
                let link = prog.take_link(id)?;
                match FdLink::try_from(link) {
                    Ok(fd_link) => {
                        // Dropping the PinnedLink closes our fd; the pin keeps the link alive.
                        drop(fd_link.pin(&pin)?);
                    }
                    Err(_) => {
                        // Old kernels attach through netlink: such a link cannot be pinned, but
                        // the program stays on the interface when we forget the handle.
                        tracing::warn!(
                            iface,
                            "attached through netlink: not pinnable; detach with `ip link set dev IF xdp off`"
                        );
                    }
                }
                return Ok(Attached { iface: iface.to_owned(), mode: name, replaced: false });
            }
            Err(e) => {
                tracing::debug!(iface, mode = name, error = %e, "attach refused");
                last = Some(e);
            }
        }
    }
    Err(last.expect("at least one mode tried").into())
}

/// Detaches from `iface` by removing its link pin.
///
/// # Errors
/// [`EnforceError::NotAttached`] when no link is pinned for it.
pub fn detach(pin_dir: &Path, iface: &str) -> Result<()> {
    let pin = link_pin(pin_dir, iface);
    match fs::remove_file(&pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(EnforceError::NotAttached(iface.to_owned())),
        Err(e) => Err(EnforceError::io(format!("removing `{}`", pin.display()), e)),
    }
}

/// Interfaces with a pinned link, and whether the link is still live on an interface.
#[must_use]
pub fn attached(pin_dir: &Path) -> Vec<(String, Option<sys::LinkInfo>)> {
    let Ok(rd) = fs::read_dir(pin_dir.join("links")) else { return Vec::new() };
    let mut out: Vec<_> = rd
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let info = sys::obj_get(&e.path()).ok().and_then(|fd| sys::link_info(fd.as_fd()).ok());
            (name, info)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The interface of the default route (IPv4, else IPv6), from `/proc/net`.
#[must_use]
pub fn default_route_iface() -> Option<String> {
    if let Ok(s) = fs::read_to_string("/proc/net/route") {
        for l in s.lines().skip(1) {
            let f: Vec<_> = l.split_whitespace().collect();
            if f.len() > 2 && f[1] == "00000000" && f[7] == "00000000" {
                return Some(f[0].to_owned());
            }
        }
    }
    let s = fs::read_to_string("/proc/net/ipv6_route").ok()?;
    s.lines().find_map(|l| {
        let f: Vec<_> = l.split_whitespace().collect();
        (f.len() == 10 && f[0] == "00000000000000000000000000000000" && f[1] == "00" && f[9] != "lo")
            .then(|| f[9].to_owned())
    })
}
