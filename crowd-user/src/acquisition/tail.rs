//! Following one log file by name: new lines as they are appended, across rename rotation
//! (the old file is drained first, then the new one read from its start) and copy-truncate
//! rotation (the file shrinks: read again from its start). A partial last line is held until its
//! newline arrives; a line longer than the limit is cut and counted, never fatal; invalid UTF-8
//! is replaced and counted.
use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Where a followed file stands: its identity and the offset read up to (persisted so a restart
/// neither loses nor repeats lines).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Device and inode of the file read.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Bytes consumed (complete lines only).
    pub offset: u64,
}

/// Counters of a followed file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TailCounts {
    /// Lines read.
    pub lines: u64,
    /// Lines cut at the length limit.
    pub cut: u64,
    /// Lines with invalid UTF-8 (replaced).
    pub invalid_utf8: u64,
    /// Rotations seen.
    pub rotations: u64,
}

/// A followed file.
pub struct Tail {
    path: PathBuf,
    file: Option<File>,
    pos: Position,
    partial: Vec<u8>,
    skipping: bool,
    max_line: usize,
    /// Counters.
    pub counts: TailCounts,
}

impl Tail {
    /// Follows `path`. With a saved position for the same file, resumes there; otherwise starts
    /// at the end (`from_start` false: only new lines) or at the beginning.
    #[must_use]
    pub fn new(path: &Path, saved: Option<Position>, from_start: bool, max_line: usize) -> Tail {
        let mut t = Tail {
            path: path.to_owned(),
            file: None,
            pos: Position::default(),
            partial: Vec::new(),
            skipping: false,
            max_line,
            counts: TailCounts::default(),
        };
        if let Ok(f) = File::open(path)
            && let Ok(m) = f.metadata()
        {
            let offset = match saved {
                Some(p) if p.dev == m.dev() && p.ino == m.ino() && p.offset <= m.len() => p.offset,
                _ if from_start => 0,
                _ => m.len(),
            };
            t.pos = Position { dev: m.dev(), ino: m.ino(), offset };
            t.file = Some(f);
        }
        t
    }

    /// The path followed.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The position to persist.
    #[must_use]
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Reads every complete line now available, handling rotation; pushes them to `out`.
    ///
    /// # Errors
    /// Read errors other than the file being absent (between a rotation's rename and create).
    pub fn poll(&mut self, out: &mut Vec<String>) -> io::Result<()> {
        let current = std::fs::metadata(&self.path).ok();
        let rotated = match (&self.file, &current) {
            (None, Some(_)) => true,
            (Some(_), Some(m)) => m.dev() != self.pos.dev || m.ino() != self.pos.ino,
            _ => false,
        };
        if rotated {
            // Drain what the old file still holds, then switch to the new one from its start.
            if self.file.is_some() {
                self.read_available(out)?;
                self.flush_partial(out);
                self.counts.rotations += 1;
            }
            match File::open(&self.path) {
                Ok(f) => {
                    let m = f.metadata()?;
                    self.pos = Position { dev: m.dev(), ino: m.ino(), offset: 0 };
                    self.file = Some(f);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        if let (Some(_), Some(m)) = (&self.file, &current)
            && m.len() < self.pos.offset + self.partial.len() as u64
            && m.ino() == self.pos.ino
        {
            // Copy-truncate: the file was emptied in place.
            self.pos.offset = 0;
            self.partial.clear();
            self.skipping = false;
            self.counts.rotations += 1;
        }
        self.read_available(out)
    }

    fn read_available(&mut self, out: &mut Vec<String>) -> io::Result<()> {
        let start = self.pos.offset + self.partial.len() as u64;
        match self.file.as_mut() {
            None => return Ok(()),
            Some(f) => f.seek(SeekFrom::Start(start))?,
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match self.file.as_mut() {
                Some(f) => f.read(&mut buf)?,
                None => 0,
            };
            if n == 0 {
                return Ok(());
            }
            for &b in &buf[..n] {
                if b == b'\n' {
                    let consumed = self.partial.len() as u64 + 1;
                    if !self.skipping {
                        self.emit(out);
                    }
                    self.partial.clear();
                    self.skipping = false;
                    self.pos.offset += consumed;
                } else if self.skipping {
                    self.pos.offset += 1;
                } else {
                    self.partial.push(b);
                    if self.partial.len() >= self.max_line {
                        // A huge line: keep its head, drop the rest up to the newline.
                        self.counts.cut += 1;
                        let len = self.partial.len() as u64;
                        self.emit(out);
                        self.partial.clear();
                        self.pos.offset += len;
                        self.skipping = true;
                    }
                }
            }
        }
    }

    fn emit(&mut self, out: &mut Vec<String>) {
        let mut line = &self.partial[..];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let s = match std::str::from_utf8(line) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                self.counts.invalid_utf8 += 1;
                String::from_utf8_lossy(line).into_owned()
            }
        };
        self.counts.lines += 1;
        out.push(s);
    }

    /// At rotation, a last line without newline in the old file is complete.
    fn flush_partial(&mut self, out: &mut Vec<String>) {
        if !self.partial.is_empty() && !self.skipping {
            self.emit(out);
        }
        self.partial.clear();
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn append(p: &Path, s: &str) {
        std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap().write_all(s.as_bytes()).unwrap();
    }

    fn poll(t: &mut Tail) -> Vec<String> {
        let mut v = Vec::new();
        t.poll(&mut v).unwrap();
        v
    }

    #[test]
    fn follows_appends_and_holds_partial_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        append(&p, "old\n");
        let mut t = Tail::new(&p, None, false, 1024);
        assert!(poll(&mut t).is_empty(), "starts at the end");
        append(&p, "one\ntw");
        assert_eq!(poll(&mut t), ["one"]);
        append(&p, "o\r\nthree\n");
        assert_eq!(poll(&mut t), ["two", "three"]);
    }

    #[test]
    fn rename_rotation_drains_the_old_file_first() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        append(&p, "");
        let mut t = Tail::new(&p, None, false, 1024);
        append(&p, "a\nb\n");
        std::fs::rename(&p, d.path().join("a.log.1")).unwrap();
        append(&d.path().join("a.log.1"), "c\n");
        append(&p, "d\n");
        assert_eq!(poll(&mut t), ["a", "b", "c", "d"]);
        assert_eq!(t.counts.rotations, 1);
    }

    #[test]
    fn copy_truncate_starts_over() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        append(&p, "");
        let mut t = Tail::new(&p, None, false, 1024);
        append(&p, "a\nb\n");
        assert_eq!(poll(&mut t), ["a", "b"]);
        std::fs::OpenOptions::new().write(true).truncate(true).open(&p).unwrap();
        append(&p, "c\n");
        assert_eq!(poll(&mut t), ["c"]);
    }

    #[test]
    fn restart_resumes_without_loss_or_repeat() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        append(&p, "");
        let mut t = Tail::new(&p, None, false, 1024);
        append(&p, "a\nb\npart");
        assert_eq!(poll(&mut t), ["a", "b"]);
        let saved = t.position();
        drop(t);
        append(&p, "ial\nc\n");
        let mut t = Tail::new(&p, Some(saved), false, 1024);
        assert_eq!(poll(&mut t), ["partial", "c"]);
    }

    #[test]
    fn huge_lines_are_cut_and_garbage_is_survived() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        append(&p, "");
        let mut t = Tail::new(&p, None, false, 16);
        let big = "x".repeat(100);
        append(&p, &format!("{big}\nok\n"));
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"\xff\xfe\x00bin\n").unwrap();
        let got = poll(&mut t);
        assert_eq!(got[0].len(), 16);
        assert_eq!(got[1], "ok");
        assert_eq!(got.len(), 3);
        assert_eq!((t.counts.cut, t.counts.invalid_utf8), (1, 1));
    }

    #[test]
    fn a_file_that_appears_later_is_read_from_its_start() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("late.log");
        let mut t = Tail::new(&p, None, false, 1024);
        assert!(poll(&mut t).is_empty());
        append(&p, "first\n");
        assert_eq!(poll(&mut t), ["first"]);
    }
}
