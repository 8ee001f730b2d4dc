//! A member's credentials for a central API, in CrowdSec's `online_api_credentials.yaml`
//! format (`url` ending with `/`, `login`, `password`), so the same file works for crowd and
//! for CrowdSec 1.4.x (which reads it strictly: no other key). Kept `0600` in the state
//! directory.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in a state directory.
pub const FILE: &str = "online_api_credentials.yaml";

/// A member's credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The central API's base URL, ending with `/`.
    pub url: String,
    /// The machine id.
    pub login: String,
    /// Its password.
    pub password: String,
}

/// Where the credentials of a state directory live.
#[must_use]
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

impl Credentials {
    /// Reads the credentials of `state_dir`; `None` when there are none (not a member).
    ///
    /// # Errors
    /// A file that does not read, named, with the line and field.
    pub fn load(state_dir: &Path) -> Result<Option<Credentials>, String> {
        let p = path(state_dir);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", p.display())),
        };
        // CrowdSec's installer writes a comment alone to stop registration: not a member.
        if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            return Ok(None);
        }
        let c: Credentials = serde_yaml::from_str(&text).map_err(|e| match e.location() {
            Some(l) => format!("{}: line {}: {e}", p.display(), l.line()),
            None => format!("{}: {e}", p.display()),
        })?;
        if !c.url.ends_with('/') {
            return Err(format!("{}: url `{}` must end with `/`", p.display(), c.url));
        }
        Ok(Some(c))
    }

    /// Writes them into `state_dir` (`0600`).
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let text = serde_yaml::to_string(self).map_err(std::io::Error::other)?;
        crate::private::write(&path(state_dir), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_comment_only_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Credentials::load(dir.path()), Ok(None));
        std::fs::write(path(dir.path()), "# no registration\n").unwrap();
        assert_eq!(Credentials::load(dir.path()), Ok(None), "a comment alone is CrowdSec's opt-out");
        let c = Credentials { url: "http://127.0.0.1:8090/".into(), login: "m1".into(), password: "pw".into() };
        c.save(dir.path()).unwrap();
        assert_eq!(Credentials::load(dir.path()), Ok(Some(c)));
        assert_eq!(crate::private::mode(&path(dir.path())), Some(0o600));
        std::fs::write(path(dir.path()), "url: http://x\nlogin: a\npassword: b\n").unwrap();
        assert!(Credentials::load(dir.path()).unwrap_err().contains("must end with"));
        std::fs::write(path(dir.path()), "url: http://x/\nlogin: a\npassword: b\npapi_url: y\n").unwrap();
        assert!(Credentials::load(dir.path()).unwrap_err().contains("papi_url"));
    }
}
