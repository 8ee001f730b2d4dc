//! The data files expressions read (`File`, `RegexpInFile`, `any(File(..), ..)`), by name, as
//! the config loader hands them in: their lines, their lines as regexes (compiled on first use),
//! and the MaxMind databases of the enrichers.
use std::{collections::HashMap, sync::Arc};

use regex::Regex;

/// Contents of data files by file name (`dest_file`): their lines, and their lines as regexes
/// for the helpers that read a file as regexes (compiled on first use: most files never are).
#[derive(Clone, Debug, Default)]
pub struct DataFiles {
    /// Lines of each file.
    pub lines: HashMap<String, Vec<String>>,
    /// Regexes of the files read as regexes so far.
    regexes: Arc<std::sync::Mutex<HashMap<String, Arc<Vec<Regex>>>>>,
    /// MaxMind databases for the GeoIP methods (none loaded by default).
    pub geoip: Arc<crate::engine::geoip::GeoIp>,
    /// The IPv6 prefix length `IpPrefix` groups sources by (`--ipv6-prefix`).
    pub ipv6_prefix: Ipv6Prefix,
}

/// The IPv6 prefix length sources are counted under (64 unless configured; 128 counts each
/// address alone). Shared, so it can be set once the configuration is loaded.
#[derive(Clone, Debug)]
pub struct Ipv6Prefix(Arc<std::sync::atomic::AtomicU8>);

impl Default for Ipv6Prefix {
    fn default() -> Self {
        Ipv6Prefix(Arc::new(std::sync::atomic::AtomicU8::new(64)))
    }
}

impl Ipv6Prefix {
    /// The length.
    #[must_use]
    pub fn get(&self) -> u8 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the length (at most 128).
    pub fn set(&self, bits: u8) {
        self.0.store(bits.min(128), std::sync::atomic::Ordering::Relaxed);
    }
}

impl DataFiles {
    /// The lines of file `name` that compile as regexes (compiled at the first call).
    #[must_use]
    pub fn regexes(&self, name: &str) -> Option<Arc<Vec<Regex>>> {
        let lines = self.lines.get(name)?;
        let mut cache = self.regexes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let compiled = cache
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(lines.iter().filter_map(|l| Regex::new(l).ok()).collect()));
        Some(Arc::clone(compiled))
    }
}
