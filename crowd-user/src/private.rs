//! What crowd keeps on disk is crowd's alone: the state directory is `0700` and every file crowd
//! writes there is `0600` (the store and its WAL and SHM files, read positions, journal cursors,
//! `simulation.yaml`, credentials), whatever the umask. The store holds the key that signs agents'
//! tokens: a readable store would let any local user forge one. Installs made before this rule
//! are tightened at start, with a note in the log. Pin directories on bpffs get the same `0700`.
use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// A directory only its owner may enter.
pub const DIR_MODE: u32 = 0o700;
/// A file only its owner may read or write.
pub const FILE_MODE: u32 = 0o600;

/// The permission bits of `path` (`None` if it does not exist).
#[must_use]
pub fn mode(path: &Path) -> Option<u32> {
    fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
}

/// Sets `path` to `want` if its group or others have any bit; true when it changed something.
fn tighten_to(path: &Path, want: u32) -> io::Result<bool> {
    match mode(path) {
        Some(m) if m & 0o077 != 0 => {
            fs::set_permissions(path, fs::Permissions::from_mode(want))?;
            tracing::warn!(
                path = %path.display(),
                was = format!("{m:04o}"),
                now = format!("{want:04o}"),
                "tightened permissions: crowd's state is readable by its owner only"
            );
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Makes `dir` (and missing parents, each `0700`) if it does not exist; tightens it to `0700`
/// if it does. For crowd's own directories only (the state directory, pin directories): never a
/// shared parent such as `/var/lib` or `/tmp`.
///
/// # Errors
/// The directory cannot be made or its mode set.
pub fn dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    if dir.is_dir() {
        tighten_to(dir, DIR_MODE)?;
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    // The umask may have taken more than group and other bits.
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
}

/// Makes sure `dir` exists without touching its mode if it does (the folder of a store named by
/// `--db`, which may be shared); a new one is `0700`.
///
/// # Errors
/// The directory cannot be made.
pub fn parent_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Makes sure the file `path` exists and is `0600` (created empty if missing, tightened if
/// not), before another library opens it with its own modes (SQLite creates its WAL and SHM
/// files with the database file's mode).
///
/// # Errors
/// The file cannot be made or its mode set.
pub fn file(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path) {
        Ok(_) => fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten_to(path, FILE_MODE).map(|_| ()),
        Err(e) => Err(e),
    }
}

/// Tightens `path` to `0600` if it exists (files another program made for crowd).
///
/// # Errors
/// The mode cannot be set.
pub fn tighten_file(path: &Path) -> io::Result<()> {
    tighten_to(path, FILE_MODE).map(|_| ())
}

/// Writes `bytes` to `path` through a `0600` temporary file beside it, renamed over `path`: a
/// crash leaves the old content or the new, never half of one, and the content is never
/// readable by others, not even while it is written.
///
/// # Errors
/// The file cannot be written or renamed.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = Path::new(&tmp);
    // A temporary file left by a crash may have another mode: start afresh.
    let _ = fs::remove_file(tmp);
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    drop(f);
    fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` under a permissive umask (what a careless service manager may give).
    fn with_umask<T>(mask: libc::mode_t, f: impl FnOnce() -> T) -> T {
        // SAFETY: umask only swaps the process's mask.
        let old = unsafe { libc::umask(mask) };
        let out = f();
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        out
    }

    #[test]
    fn every_kind_is_owner_only_whatever_the_umask() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("a/state");
        with_umask(0, || {
            dir(&state).unwrap();
            file(&state.join("crowd.db")).unwrap();
            write(&state.join("positions.json"), b"{}").unwrap();
            write(&state.join("simulation.yaml"), b"simulation: false\n").unwrap();
        });
        assert_eq!(mode(&state), Some(0o700));
        assert_eq!(mode(&t.path().join("a")), Some(0o700), "a parent crowd made is its own too");
        assert_eq!(mode(&state.join("crowd.db")), Some(0o600));
        assert_eq!(mode(&state.join("positions.json")), Some(0o600));
        assert_eq!(fs::read(state.join("simulation.yaml")).unwrap(), b"simulation: false\n");
        assert_eq!(mode(&state.join("simulation.yaml")), Some(0o600));
        assert!(!state.join("simulation.yaml.tmp").exists());
    }

    #[test]
    fn existing_installs_are_tightened() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        fs::create_dir(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
        let db = state.join("crowd.db");
        fs::write(&db, b"data").unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        let wal = state.join("crowd.db-wal");
        fs::write(&wal, b"").unwrap();
        fs::set_permissions(&wal, fs::Permissions::from_mode(0o664)).unwrap();
        dir(&state).unwrap();
        file(&db).unwrap();
        tighten_file(&wal).unwrap();
        tighten_file(&state.join("missing")).unwrap();
        assert_eq!(mode(&state), Some(0o700));
        assert_eq!(mode(&db), Some(0o600));
        assert_eq!(fs::read(&db).unwrap(), b"data", "tightening keeps the content");
        assert_eq!(mode(&wal), Some(0o600));
    }

    #[test]
    fn a_shared_parent_keeps_its_mode() {
        let t = tempfile::tempdir().unwrap();
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        parent_dir(t.path()).unwrap();
        assert_eq!(mode(t.path()), Some(0o755));
        let new = t.path().join("db");
        with_umask(0, || parent_dir(&new).unwrap());
        assert_eq!(mode(&new).map(|m| m & 0o077), Some(0), "a new one is private");
    }
}
