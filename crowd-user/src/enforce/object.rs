//! Loading the embedded XDP object against the pinned maps.
//!
//! `load` is the one path into the kernel: preflight checks, pin compatibility (moving aside and
//! migrating what differs), then aya's loader with every map pinned by name under the pin
//! directory, so a second load (the CLI, a restarted daemon) shares the first one's maps.
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, LpmTrie, Map},
    programs::Xdp,
};
use crowd_common::{Allow, Ban, map_names as names};

use super::{EnforceError, Result, Settings, maps::BanMaps, pins, preflight};

/// The XDP object built by `build.rs` from `crowd-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/crowd.bpf.o"));

/// Name of the enforcing program in the object.
pub const PROGRAM: &str = "crowd";

/// A loaded object: the program and the maps, pinned.
pub struct Loaded {
    /// The aya handle; dropping it unloads what is not pinned or attached.
    pub ebpf: Ebpf,
}

impl Loaded {
    /// The enforcing program (loaded into the kernel).
    ///
    /// # Panics
    /// If the object lacks the program (a build error, caught by tests).
    pub fn program(&mut self) -> &mut Xdp {
        self.ebpf.program_mut(PROGRAM).expect("program in object").try_into().expect("an XDP program")
    }

    /// A reference program of the object by name (benchmarks: `bench_pass`, `bench_drop`, `bench_tx`),
    /// loaded on first use.
    ///
    /// # Errors
    /// Unknown name or verifier rejection.
    pub fn extra_program(&mut self, name: &str) -> Result<&mut Xdp> {
        let p: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| EnforceError::io(format!("program `{name}`"), std::io::ErrorKind::NotFound.into()))?
            .try_into()?;
        if p.fd().is_err() {
            p.load()?;
        }
        Ok(p)
    }
}

/// True when this binary carries the XDP object.
#[must_use]
pub fn has_object() -> bool {
    !OBJECT.is_empty()
}

/// Loads the object: checks privileges, kernel and bpffs, reconciles pins, loads the maps and the
/// enforcing program. Pinned maps are reused when compatible and recreated (with their entries
/// copied when the layout allows) when not.
///
/// # Errors
/// Every preflight failure, a load or verifier error (after which moved pins are put back).
pub fn load(settings: &Settings) -> Result<Loaded> {
    if !has_object() {
        return Err(EnforceError::NoObject);
    }
    preflight::require_privileges("load the XDP program")?;
    preflight::require_kernel()?;
    preflight::ensure_pin_dir(&settings.pin_dir)?;
    let moved = pins::move_incompatible(settings)?;
    let mut loader = EbpfLoader::new();
    loader
        .default_map_pin_directory(&settings.pin_dir)
        .map_max_entries(names::BANS_V4, settings.exact_capacity)
        .map_max_entries(names::BANS_V6, settings.exact_capacity)
        .map_max_entries(names::RANGES_V4, settings.range_capacity)
        .map_max_entries(names::RANGES_V6, settings.range_capacity)
        .map_max_entries(names::ALLOW_V4, settings.allow_capacity)
        .map_max_entries(names::ALLOW_V6, settings.allow_capacity);
    let loaded = loader.load(OBJECT).map_err(EnforceError::from).and_then(|ebpf| {
        let mut l = Loaded { ebpf };
        l.program().load()?;
        Ok(l)
    });
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            // Put the old maps back so that nothing is lost.
            pins::restore(&moved);
            return Err(e);
        }
    };
    migrate(settings, moved)?;
    let mut maps = BanMaps::open(settings)?;
    maps.refresh_config()?;
    // Every ban present gets its prefilter bits (fresh filters after an upgrade start empty).
    maps.reassert_filters()?;
    Ok(loaded)
}

/// Copies entries from moved-aside maps into their fresh replacements, then drops the old pins.
fn migrate(settings: &Settings, moved: pins::Moved) -> Result<()> {
    if moved.maps.is_empty() {
        return Ok(());
    }
    let mut maps = BanMaps::open(settings)?;
    for (spec, data, fits) in moved.maps {
        if fits {
            let map = Map::from_map_data(data)?;
            let mut copied = 0usize;
            let mut failed = None;
            let n = spec.name;
            let mut put = |r: Result<()>| match r {
                Ok(()) => copied += 1,
                Err(e) => failed = Some(e),
            };
            if n == names::BANS_V4 {
                let m: HashMap<_, [u8; 4], Ban> = HashMap::try_from(map)?;
                for (k, v) in m.iter().filter_map(std::result::Result::ok) {
                    put(maps.insert_ban(crate::addr::Target::Ip(k.into()), v));
                }
            } else if n == names::BANS_V6 {
                let m: HashMap<_, [u8; 16], Ban> = HashMap::try_from(map)?;
                for (k, v) in m.iter().filter_map(std::result::Result::ok) {
                    put(maps.insert_ban(crate::addr::Target::Ip(k.into()), v));
                }
            } else if n == names::RANGES_V4 || n == names::ALLOW_V4 {
                copy_trie::<4>(map, n == names::ALLOW_V4, &mut maps, &mut put)?;
            } else if n == names::RANGES_V6 || n == names::ALLOW_V6 {
                copy_trie::<16>(map, n == names::ALLOW_V6, &mut maps, &mut put)?;
            }
            tracing::info!(map = spec.name, copied, "migrated entries into the recreated map");
            if let Some(e) = failed {
                tracing::error!(map = spec.name, error = %e, "some entries could not be migrated (the store re-adds decisions)");
            }
        } else {
            tracing::warn!(
                map = spec.name,
                "old layout cannot be read by this crowd: its entries are dropped (the store re-adds decisions)"
            );
        }
    }
    Ok(())
}

fn copy_trie<const N: usize>(map: Map, allow: bool, maps: &mut BanMaps, put: &mut impl FnMut(Result<()>)) -> Result<()>
where
    [u8; N]: aya::Pod,
{
    use aya::maps::lpm_trie::Key;
    let to_target = |k: &Key<[u8; N]>| -> crate::addr::Target {
        let ip: std::net::IpAddr = if N == 4 {
            <[u8; 4]>::try_from(&k.data()[..4]).expect("4").into()
        } else {
            <[u8; 16]>::try_from(&k.data()[..16]).expect("16").into()
        };
        format!("{ip}/{}", k.prefix_len()).parse().expect("valid key")
    };
    if allow {
        let m: LpmTrie<_, [u8; N], Allow> = LpmTrie::try_from(map)?;
        for (k, _) in m.iter().filter_map(std::result::Result::ok) {
            put(maps.allow(to_target(&k)));
        }
    } else {
        let m: LpmTrie<_, [u8; N], Ban> = LpmTrie::try_from(map)?;
        for (k, v) in m.iter().filter_map(std::result::Result::ok) {
            put(maps.insert_ban(to_target(&k), v));
        }
    }
    Ok(())
}
