//! Pinned maps: what each must look like, and what to do with one that does not.
//!
//! aya reuses a pinned map by name without comparing it to the program's definition. crowd checks
//! type, key size, value size and capacity first. A pin that differs is moved aside (its pin is
//! removed while this process holds the map open; bpffs has no rename), the loader creates a
//! fresh map in its place, and entries whose layout still fits are copied over before the old map
//! is released; if loading fails, the old maps are pinned back.
use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::maps::{MapData, MapType};
use crowd_common::{Allow, Ban, Config, Note, Stats, map_names as names};

use super::{EnforceError, Result, Settings};

/// What a pinned map must be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapSpec {
    /// Map (and pin file) name.
    pub name: &'static str,
    /// Kernel map type.
    pub map_type: MapType,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
}

fn size<T>() -> u32 {
    u32::try_from(size_of::<T>()).expect("small type")
}

/// The specification of every crowd map for these settings.
#[must_use]
pub fn specs(s: &Settings) -> [MapSpec; 11] {
    let m = |name, map_type, key_size, value_size, max_entries| MapSpec {
        name,
        map_type,
        key_size,
        value_size,
        max_entries,
    };
    [
        m(names::BANS_V4, MapType::Hash, 4, size::<Ban>(), s.exact_capacity),
        m(names::BANS_V6, MapType::Hash, 16, size::<Ban>(), s.exact_capacity),
        m(names::RANGES_V4, MapType::LpmTrie, 8, size::<Ban>(), s.range_capacity),
        m(names::RANGES_V6, MapType::LpmTrie, 20, size::<Ban>(), s.range_capacity),
        m(names::ALLOW_V4, MapType::LpmTrie, 8, size::<Allow>(), s.allow_capacity),
        m(names::ALLOW_V6, MapType::LpmTrie, 20, size::<Allow>(), s.allow_capacity),
        m(names::STATS, MapType::PerCpuArray, 4, size::<Stats>(), 1),
        m(names::CONFIG, MapType::Array, 4, size::<Config>(), 1),
        m(names::NOTES, MapType::Hash, 8, size::<Note>(), crowd_common::capacity::NOTES),
        m(names::FILTER_V4, MapType::Array, 4, 8, crowd_common::filter::WORDS),
        m(names::FILTER_V6, MapType::Array, 4, 8, crowd_common::filter::WORDS),
    ]
}

/// The state of one pin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinState {
    /// No pin: the loader will create the map.
    Missing,
    /// Pinned and matching the spec: reused as it is.
    Compatible,
    /// Pinned but different; the text says how.
    Incompatible(String),
}

/// Compares what the kernel reports for a pinned map with the spec.
#[must_use]
pub fn compare(spec: &MapSpec, map_type: Option<MapType>, key: u32, value: u32, max: u32) -> PinState {
    let mut diffs = Vec::new();
    if map_type != Some(spec.map_type) {
        diffs.push(format!("type {map_type:?}, expected {:?}", spec.map_type));
    }
    if key != spec.key_size {
        diffs.push(format!("key size {key}, expected {}", spec.key_size));
    }
    if value != spec.value_size {
        diffs.push(format!("value size {value}, expected {}", spec.value_size));
    }
    if max != spec.max_entries {
        diffs.push(format!("capacity {max}, expected {}", spec.max_entries));
    }
    if diffs.is_empty() { PinState::Compatible } else { PinState::Incompatible(diffs.join(", ")) }
}

/// Reads a pin and compares it with its spec.
///
/// # Errors
/// When the pin exists but cannot be opened as a map.
pub fn check(pin_dir: &Path, spec: &MapSpec) -> Result<PinState> {
    let path = pin_dir.join(spec.name);
    if !path.exists() {
        return Ok(PinState::Missing);
    }
    let bad = |reason: String| EnforceError::BadPin { path: path.clone(), reason };
    let data = MapData::from_pin(&path).map_err(|e| bad(e.to_string()))?;
    let info = data.info().map_err(|e| bad(e.to_string()))?;
    Ok(compare(spec, info.map_type().ok(), info.key_size(), info.value_size(), info.max_entries()))
}

/// Maps moved aside before a load (unpinned, held open), to be copied from and released, or
/// pinned back on failure.
#[derive(Debug, Default)]
pub struct Moved {
    /// (spec, the old map, whether its layout still fits the spec).
    pub maps: Vec<(MapSpec, MapData, bool)>,
    /// The pin directory.
    pub pin_dir: PathBuf,
}

/// Moves every incompatible pin aside so the loader creates a fresh map in its place.
///
/// # Errors
/// When a pin cannot be read or renamed (nothing is left half-moved: earlier moves are undone).
pub fn move_incompatible(s: &Settings) -> Result<Moved> {
    let mut moved = Moved { maps: Vec::new(), pin_dir: s.pin_dir.clone() };
    for spec in specs(s) {
        match check(&s.pin_dir, &spec) {
            Ok(PinState::Missing | PinState::Compatible) => {}
            Ok(PinState::Incompatible(why)) => {
                let path = s.pin_dir.join(spec.name);
                let data = MapData::from_pin(&path)
                    .map_err(|e| EnforceError::BadPin { path: path.clone(), reason: e.to_string() })?;
                let info = data.info()?;
                let fits = info.key_size() == spec.key_size
                    && info.value_size() == spec.value_size
                    && info.map_type().ok() == Some(spec.map_type);
                tracing::warn!(map = spec.name, %why, migrate = fits, "pinned map differs from this crowd's; recreating it");
                if let Err(e) = fs::remove_file(&path) {
                    restore(&moved);
                    return Err(EnforceError::io(format!("moving `{}` aside", path.display()), e));
                }
                moved.maps.push((spec, data, fits));
            }
            Err(e) => {
                restore(&moved);
                return Err(e);
            }
        }
    }
    Ok(moved)
}

/// Pins moved maps back in place of whatever the failed load created.
pub fn restore(moved: &Moved) {
    for (spec, old, _) in &moved.maps {
        let path = moved.pin_dir.join(spec.name);
        let _ = fs::remove_file(&path);
        if let Err(e) = old.pin(&path) {
            tracing::error!(pin = %path.display(), error = %e, "could not restore a pinned map");
        }
    }
}

/// Removes every crowd pin (maps and links) and the directory itself, if empty afterwards.
///
/// # Errors
/// I/O errors other than "not found".
pub fn purge(pin_dir: &Path) -> Result<()> {
    let rm = |p: PathBuf| match fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(EnforceError::io(format!("removing `{}`", p.display()), e))
        }
        _ => Ok(()),
    };
    for name in names::ALL {
        rm(pin_dir.join(name))?;
    }
    if let Ok(rd) = fs::read_dir(pin_dir.join("links")) {
        for e in rd.flatten() {
            rm(e.path())?;
        }
    }
    let _ = fs::remove_dir(pin_dir.join("links"));
    let _ = fs::remove_dir(pin_dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_names_each_difference() {
        let s = Settings::new("/x");
        let spec = specs(&s)[0];
        assert_eq!(compare(&spec, Some(MapType::Hash), 4, 32, s.exact_capacity), PinState::Compatible);
        let PinState::Incompatible(why) = compare(&spec, Some(MapType::LruHash), 4, 24, 10) else { panic!() };
        assert!(why.contains("type"), "{why}");
        assert!(why.contains("value size 24, expected 32"), "{why}");
        assert!(why.contains("capacity 10"), "{why}");
        assert!(!why.contains("key size"), "{why}");
    }

    #[test]
    fn specs_follow_settings() {
        let mut s = Settings::new("/x");
        s.exact_capacity = 1000;
        s.range_capacity = 10;
        let sp = specs(&s);
        assert_eq!(sp[0].max_entries, 1000);
        assert_eq!(sp[1].max_entries, 1000);
        assert_eq!(sp[2].max_entries, 10);
        assert_eq!(sp[3].key_size, 20);
    }
}
