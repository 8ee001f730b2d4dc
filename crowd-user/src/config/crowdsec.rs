//! An installed CrowdSec configuration directory (`/etc/crowdsec` as Debian's 1.4.6 lays it out),
//! read as it is: `config.yaml` says where the data files, simulation, acquisition, profiles
//! and notifications are; the installed parsers (`parsers/<stage>/*.yaml`), postoverflows
//! (`postoverflows/<stage>/*.yaml`) and scenarios (`scenarios/*.yaml`) are symlinks into the hub
//! (`/var/lib/crowdsec/hub`) or local files; grok patterns are in `<config_dir>/patterns`.
//! Only the keys crowd uses are read; CrowdSec's others are ignored.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{LoadError, hub::Hub};

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config_paths: Option<ConfigPaths>,
    #[serde(default)]
    crowdsec_service: Option<Service>,
    #[serde(default)]
    api: Option<Api>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigPaths {
    config_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    simulation_path: Option<PathBuf>,
    notification_dir: Option<PathBuf>,
    hub_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct Service {
    acquisition_path: Option<PathBuf>,
    acquisition_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct Api {
    server: Option<Server>,
}

#[derive(Debug, Default, Deserialize)]
struct Server {
    profiles_path: Option<PathBuf>,
}

/// Where an installed CrowdSec keeps each part of its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrowdsecConfig {
    /// `config.yaml` itself.
    pub file: PathBuf,
    /// `config_paths.config_dir`: installed parsers, postoverflows, scenarios, patterns.
    pub config_dir: PathBuf,
    /// `config_paths.data_dir`: data files and MaxMind databases.
    pub data_dir: PathBuf,
    /// `config_paths.hub_dir`: the hub the installed files link into (hub tests name files there).
    pub hub_dir: Option<PathBuf>,
    /// `config_paths.simulation_path`.
    pub simulation: PathBuf,
    /// `config_paths.notification_dir`.
    pub notifications: PathBuf,
    /// `crowdsec_service.acquisition_path`, if set.
    pub acquisition: Option<PathBuf>,
    /// `crowdsec_service.acquisition_dir`, if set (its `*.yaml`).
    pub acquisition_dir: Option<PathBuf>,
    /// `api.server.profiles_path`.
    pub profiles: PathBuf,
}

impl CrowdsecConfig {
    /// Reads `<dir>/config.yaml` if `dir` is a CrowdSec configuration directory (its
    /// `config.yaml` has `config_paths`); `Ok(None)` if it is not one.
    ///
    /// # Errors
    /// A `config.yaml` that is not YAML (named with its line).
    pub fn detect(dir: &Path) -> Result<Option<CrowdsecConfig>, LoadError> {
        let file = dir.join("config.yaml");
        let Ok(text) = std::fs::read_to_string(&file) else { return Ok(None) };
        let yaml = |path: &Path, text: &str| {
            serde_yaml::from_str::<serde_yaml::Value>(text).map_err(|e| LoadError::Invalid {
                path: path.to_owned(),
                line: e.location().map_or(0, |l| l.line()),
                field: "config.yaml".into(),
                message: e.to_string(),
            })
        };
        let mut v = yaml(&file, &text)?;
        // As CrowdSec: `config.yaml.local` overrides `config.yaml`, key by key.
        let local = dir.join("config.yaml.local");
        if let Ok(t) = std::fs::read_to_string(&local) {
            merge(&mut v, yaml(&local, &t)?);
        }
        let c: ConfigFile = serde_yaml::from_value(v).map_err(|e| LoadError::Invalid {
            path: file.clone(),
            line: 0,
            field: "config_paths".into(),
            message: e.to_string(),
        })?;
        let Some(paths) = c.config_paths else { return Ok(None) };
        // Paths are the installed ones; a copied directory keeps working where they do not exist.
        let config_dir = paths.config_dir.filter(|d| d.is_dir()).unwrap_or_else(|| dir.to_owned());
        let data_dir = paths.data_dir.unwrap_or_else(|| config_dir.join("data"));
        let service = c.crowdsec_service.unwrap_or_default();
        let or_here = |p: Option<PathBuf>, name: &str| match p {
            Some(p) if p.exists() => p,
            _ => dir.join(name),
        };
        Ok(Some(CrowdsecConfig {
            hub_dir: paths.hub_dir.filter(|d| d.is_dir()),
            simulation: or_here(paths.simulation_path, "simulation.yaml"),
            notifications: or_here(paths.notification_dir, "notifications"),
            acquisition: service.acquisition_path.map(|p| or_here(Some(p), "acquis.yaml")),
            acquisition_dir: service.acquisition_dir.map(|p| or_here(Some(p), "acquis.d")),
            profiles: or_here(c.api.and_then(|a| a.server).and_then(|s| s.profiles_path), "profiles.yaml"),
            file,
            config_dir,
            data_dir,
        }))
    }

    /// The installed parsers, postoverflows and scenarios as a hub.
    #[must_use]
    pub fn hub(&self) -> Hub {
        Hub::with_dirs(&self.config_dir, self.config_dir.join("patterns"), &self.data_dir)
    }

    /// The whole hub the installation links into (every parser and scenario by hub name), with
    /// the installation's patterns and data; the installed files when there is no hub.
    #[must_use]
    pub fn full_hub(&self) -> Hub {
        match &self.hub_dir {
            Some(h) => Hub::with_dirs(h, self.config_dir.join("patterns"), &self.data_dir),
            None => self.hub(),
        }
    }

    /// The acquisition files: `acquisition_path`, then `acquisition_dir/*.yaml` by name.
    #[must_use]
    pub fn acquisition_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.acquisition.iter().filter(|p| p.is_file()).cloned().collect();
        if let Some(d) = &self.acquisition_dir {
            let mut more: Vec<PathBuf> = std::fs::read_dir(d)
                .map(|rd| {
                    rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yaml")).collect()
                })
                .unwrap_or_default();
            more.sort();
            out.extend(more);
        }
        out
    }
}

/// `over` merged into `base`: mappings key by key, anything else replaced.
fn merge(base: &mut serde_yaml::Value, over: serde_yaml::Value) {
    match (base, over) {
        (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) if !o.is_null() => *b = o,
        _ => {}
    }
}

/// A `--config` directory: crowd's hub layout (`parsers/<stage>/<author>/*.yaml`, `scenarios/`,
/// `patterns/`, `data/`, `profiles.yaml`, `notifications/`), or an installed CrowdSec's.
#[derive(Clone, Debug)]
pub struct ConfigDir {
    /// Where parsers and scenarios are read.
    pub hub: Hub,
    /// The CrowdSec configuration, when the directory is one.
    pub crowdsec: Option<CrowdsecConfig>,
    dir: PathBuf,
}

impl ConfigDir {
    /// Opens `dir`, telling the two layouts apart by CrowdSec's `config.yaml`.
    ///
    /// # Errors
    /// A CrowdSec `config.yaml` that is not YAML.
    pub fn open(dir: &Path) -> Result<ConfigDir, LoadError> {
        let crowdsec = CrowdsecConfig::detect(dir)?;
        let hub = crowdsec.as_ref().map_or_else(|| Hub::new(dir), CrowdsecConfig::hub);
        Ok(ConfigDir { hub, crowdsec, dir: dir.to_owned() })
    }

    /// `profiles.yaml`, if there is one.
    #[must_use]
    pub fn profiles(&self) -> Option<PathBuf> {
        let p = self.crowdsec.as_ref().map_or_else(|| self.dir.join("profiles.yaml"), |c| c.profiles.clone());
        p.is_file().then_some(p)
    }

    /// The notifications folder, if there is one.
    #[must_use]
    pub fn notifications(&self) -> Option<PathBuf> {
        let p = self.crowdsec.as_ref().map_or_else(|| self.dir.join("notifications"), |c| c.notifications.clone());
        p.is_dir().then_some(p)
    }

    /// CrowdSec's `simulation.yaml`, if the directory is CrowdSec's and has one.
    #[must_use]
    pub fn simulation(&self) -> Option<PathBuf> {
        self.crowdsec.as_ref().map(|c| c.simulation.clone()).filter(|p| p.is_file())
    }

    /// What was searched, for errors that say where crowd looked.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.crowdsec {
            Some(c) => format!(
                "CrowdSec configuration `{}`: parsers in {}/<stage>/, scenarios in {}/, data in {}",
                c.file.display(),
                c.config_dir.join("parsers").display(),
                c.config_dir.join("scenarios").display(),
                c.data_dir.display()
            ),
            None => format!(
                "hub folder `{}`: parsers in parsers/<stage>/<author>/, scenarios in scenarios/<author>/ (or a \
                 CrowdSec configuration directory with its config.yaml)",
                self.dir.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debian_layout_is_read_where_config_yaml_says() {
        let t = tempfile::tempdir().unwrap();
        let etc = t.path().join("etc");
        let data = t.path().join("var-lib-data");
        std::fs::create_dir_all(etc.join("acquis.d")).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(etc.join("acquis.yaml"), "filenames: [/var/log/auth.log]\nlabels: {type: syslog}\n").unwrap();
        std::fs::write(etc.join("acquis.d/b.yaml"), "").unwrap();
        std::fs::write(etc.join("acquis.d/a.yaml"), "").unwrap();
        std::fs::write(etc.join("profiles.yaml"), "").unwrap();
        std::fs::write(
            etc.join("config.yaml"),
            format!(
                "common: {{daemonize: true}}\nconfig_paths:\n  config_dir: {e}/\n  data_dir: /nowhere/\n  \
                 simulation_path: {e}/simulation.yaml\n  hub_dir: /var/lib/crowdsec/hub/\n\
                 crowdsec_service:\n  acquisition_path: {e}/acquis.yaml\n  acquisition_dir: {e}/acquis.d\n  \
                 parser_routines: 1\napi:\n  server:\n    profiles_path: {e}/profiles.yaml\n",
                e = etc.display(),
            ),
        )
        .unwrap();
        std::fs::write(etc.join("config.yaml.local"), format!("config_paths:\n  data_dir: {}/\n", data.display()))
            .unwrap();
        let c = ConfigDir::open(&etc).unwrap();
        let cs = c.crowdsec.as_ref().expect("a CrowdSec directory");
        assert_eq!(cs.data_dir, data.join(""));
        assert_eq!(
            cs.acquisition_files(),
            [etc.join("acquis.yaml"), etc.join("acquis.d/a.yaml"), etc.join("acquis.d/b.yaml")]
        );
        assert_eq!(c.profiles(), Some(etc.join("profiles.yaml")));
        assert_eq!(c.simulation(), None, "no simulation.yaml there");
        assert!(c.describe().contains("CrowdSec configuration"));
        // A hub folder has no config.yaml with config_paths.
        let hub = ConfigDir::open(t.path()).unwrap();
        assert!(hub.crowdsec.is_none());
    }
}
