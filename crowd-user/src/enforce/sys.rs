//! Raw `bpf(2)` calls that aya 0.14 does not offer: batch map updates, opening a pinned object
//! without touching its pin, updating a pinned link in place, and reading a link's interface.
//!
//! Everything else goes through aya. Each call here is a thin wrapper over one command with the
//! `bpf_attr` layout from `include/uapi/linux/bpf.h`.
use std::{
    ffi::CString,
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::Path,
};

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_LINK_UPDATE: libc::c_long = 29;

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, correctly laid out bpf_attr prefix of the given size.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr).cast::<u8>(), size_of::<T>()) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// Opens a pinned BPF object (map, program or link); the pin is left as it is.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        _pad: u32,
    }
    let c =
        CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = Attr { pathname: c.as_ptr() as u64, bpf_fd: 0, file_flags: 0, path_fd: 0, _pad: 0 };
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: the kernel returned a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?) })
}

/// Atomically replaces the program behind an XDP link (`bpf_link_update`): no packet is left
/// unfiltered while crowd upgrades or restarts.
pub fn link_update(link: BorrowedFd<'_>, new_prog: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        link_fd: u32,
        new_prog_fd: u32,
        flags: u32,
        old_prog_fd: u32,
    }
    let mut attr =
        Attr { link_fd: link.as_raw_fd() as u32, new_prog_fd: new_prog.as_raw_fd() as u32, flags: 0, old_prog_fd: 0 };
    bpf(BPF_LINK_UPDATE, &mut attr).map(drop)
}

/// What the kernel says of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// `BPF_LINK_TYPE_*` (6 is XDP).
    pub link_type: u32,
    /// The program currently attached through the link.
    pub prog_id: u32,
    /// For XDP links, the interface; 0 once the interface is gone.
    pub ifindex: u32,
}

/// The XDP link type in `bpf_link_info`.
pub const BPF_LINK_TYPE_XDP: u32 = 6;

/// Reads `bpf_link_info` for a link fd.
pub fn link_info(link: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // struct bpf_link_info: type, id, prog_id, then an 8-aligned union whose XDP member starts
    // with ifindex (offset 16).
    let mut buf = [0u64; 16];
    let mut attr = Attr {
        bpf_fd: link.as_raw_fd() as u32,
        info_len: u32::try_from(size_of::<[u64; 16]>()).expect("small"),
        info: buf.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let words: [u32; 32] = bytemuck_u32(&buf);
    Ok(LinkInfo { link_type: words[0], prog_id: words[2], ifindex: words[4] })
}

fn bytemuck_u32(buf: &[u64; 16]) -> [u32; 32] {
    let mut out = [0u32; 32];
    for (i, w) in buf.iter().enumerate() {
        let b = w.to_ne_bytes();
        out[2 * i] = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        out[2 * i + 1] = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
    }
    out
}

/// Writes many entries in one `BPF_MAP_UPDATE_BATCH` call. Returns how many were written; on
/// error the count written before it is returned with the error (so nothing is silently lost).
/// `keys` and `values` are the packed bytes of `count` keys and `count` values.
pub fn update_batch(
    map: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: usize,
) -> Result<usize, (usize, io::Error)> {
    #[repr(C)]
    struct Attr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    assert!(count == 0 || (keys.len().is_multiple_of(count) && values.len().is_multiple_of(count)));
    let mut attr = Attr {
        in_batch: 0,
        out_batch: 0,
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: u32::try_from(count).expect("batch fits u32"),
        map_fd: map.as_raw_fd() as u32,
        elem_flags: 0,
        flags: 0,
    };
    match bpf(BPF_MAP_UPDATE_BATCH, &mut attr) {
        Ok(_) => Ok(attr.count as usize),
        Err(e) => Err((attr.count as usize, e)),
    }
}
