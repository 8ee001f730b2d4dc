//! Raw `bpf(2)` calls that aya 0.14 does not offer: batch map updates, opening and pinning objects
//! by fd, creating and updating XDP links, reading a link's interface, and live-frames test runs
//! (the benchmark's traffic generator, which runs on a thread that only holds the program's fd).
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

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_LINK_UPDATE: libc::c_long = 29;

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, correctly laid out bpf_attr prefix of the given size.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr).cast::<u8>(), size_of::<T>()) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// The `bpf_attr` of `BPF_OBJ_GET` and `BPF_OBJ_PIN`.
#[repr(C)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel returned a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a pinned BPF object (map, program or link); the pin is left as it is.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    let mut attr = ObjAttr { pathname: c.as_ptr() as u64, bpf_fd: 0, file_flags: 0, path_fd: 0, _pad: 0 };
    owned(bpf(BPF_OBJ_GET, &mut attr)?)
}

/// Pins a BPF object (map, program or link) at `path`.
pub fn obj_pin(obj: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = c_path(path)?;
    let mut attr =
        ObjAttr { pathname: c.as_ptr() as u64, bpf_fd: obj.as_raw_fd() as u32, file_flags: 0, path_fd: 0, _pad: 0 };
    bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

/// Creates an XDP link for a program on an interface, in driver mode.
pub fn xdp_link_create_driver(prog: BorrowedFd<'_>, ifindex: u32) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        prog_fd: u32,
        target_ifindex: u32,
        attach_type: u32,
        flags: u32,
        _rest: [u64; 4],
    }
    const BPF_XDP: u32 = 37;
    const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
    let mut attr = Attr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: XDP_FLAGS_DRV_MODE,
        _rest: [0; 4],
    };
    owned(bpf(BPF_LINK_CREATE, &mut attr)?)
}

/// Runs an XDP program on `repeat` copies of `data` in the kernel's live-frames mode
/// (`BPF_F_TEST_XDP_LIVE_FRAMES`, kernel >= 5.18): the verdicts are acted on, so `XDP_TX` sends
/// the frames out of the interface named by `ctx` (a `struct xdp_md`).
pub fn test_run_live_frames(prog: BorrowedFd<'_>, data: &[u8], ctx: &[u8], repeat: u32, batch: u32) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        _pad: u32,
    }
    const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
    let len = |b: &[u8]| u32::try_from(b.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let mut attr = Attr {
        prog_fd: prog.as_raw_fd() as u32,
        retval: 0,
        data_size_in: len(data)?,
        data_size_out: 0,
        data_in: data.as_ptr() as u64,
        data_out: 0,
        repeat,
        duration: 0,
        ctx_size_in: len(ctx)?,
        ctx_size_out: 0,
        ctx_in: ctx.as_ptr() as u64,
        ctx_out: 0,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        cpu: 0,
        batch_size: batch,
        _pad: 0,
    };
    bpf(BPF_PROG_TEST_RUN, &mut attr).map(drop)
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
