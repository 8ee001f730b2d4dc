//! A CrowdSec hub folder: resolving parser and scenario names to files, the grok pattern library
//! and data files.
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::load::{LoadError, parsers_from_file, scenarios_from_text};
use crate::engine::{
    expr::{DataFiles, Env},
    grok::Patterns,
    parser::{Parser, Pipeline},
    scenario::Scenario,
};

/// A hub folder (`parsers/<stage>/<author>/<name>.yaml`, `scenarios/<author>/<name>.yaml`,
/// `patterns/`, `data/`), or an installed CrowdSec's configuration directory (the same files
/// flat, `parsers/<stage>/<name>.yaml` and `scenarios/<name>.yaml`, with its patterns and data
/// elsewhere: `super::crowdsec`).
#[derive(Clone, Debug)]
pub struct Hub {
    /// Its root.
    pub dir: PathBuf,
    /// Grok pattern files.
    pub patterns_dir: PathBuf,
    /// Data files and MaxMind databases.
    pub data_dir: PathBuf,
}

const STAGES: [&str; 3] = ["s00-raw", "s01-parse", "s02-enrich"];

impl Hub {
    /// A hub at `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Hub {
        let dir = dir.into();
        Hub { patterns_dir: dir.join("patterns"), data_dir: dir.join("data"), dir }
    }

    /// Parsers and scenarios under `dir`, patterns and data elsewhere.
    #[must_use]
    pub fn with_dirs(dir: &Path, patterns_dir: PathBuf, data_dir: &Path) -> Hub {
        Hub { dir: dir.to_owned(), patterns_dir, data_dir: data_dir.to_owned() }
    }

    /// Finds a parser by hub name (`crowdsecurity/sshd-logs`) or path (`./parsers/s01-parse/x.yaml`,
    /// relative to the hub); returns (stage, file).
    ///
    /// # Errors
    /// [`LoadError::NotFound`].
    pub fn parser_file(&self, name: &str) -> Result<(String, PathBuf), LoadError> {
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            let mut p = if Path::new(name).is_absolute() { PathBuf::from(name) } else { self.dir.join(name) };
            // Hub tests name their own files under `.tests/<test>/`; a copied hub may call it `tests/`.
            if !p.exists() && name.contains(".tests/") {
                p = self.dir.join(name.replacen(".tests/", "tests/", 1));
            }
            // A path relative to the working directory (as `load_all` lists them).
            if !p.exists() && Path::new(name).exists() {
                p = PathBuf::from(name);
            }
            let stage = p
                .components()
                .filter_map(|c| c.as_os_str().to_str())
                .find(|c| c.starts_with('s') && c.len() > 3 && c[1..3].chars().all(|d| d.is_ascii_digit()))
                .unwrap_or("s01-parse")
                .to_owned();
            return if p.exists() {
                Ok((stage, p))
            } else {
                Err(LoadError::NotFound(name.to_owned(), p.display().to_string()))
            };
        }
        for stage in STAGES {
            for ext in ["yaml", "yml"] {
                let p = self.dir.join("parsers").join(stage).join(format!("{name}.{ext}"));
                if p.exists() {
                    return Ok((stage.to_owned(), p));
                }
            }
        }
        Err(LoadError::NotFound(name.to_owned(), format!("{}/parsers/<stage>/{name}.yaml", self.dir.display())))
    }

    /// Finds a scenario by hub name (`crowdsecurity/ssh-bf`) or path relative to the hub.
    ///
    /// # Errors
    /// [`LoadError::NotFound`].
    pub fn scenario_file(&self, name: &str) -> Result<PathBuf, LoadError> {
        let candidates = if name.ends_with(".yaml") || name.ends_with(".yml") {
            vec![self.dir.join(name), self.dir.join(name.replacen(".tests/", "tests/", 1)), PathBuf::from(name)]
        } else {
            vec![
                self.dir.join("scenarios").join(format!("{name}.yaml")),
                self.dir.join("scenarios").join(format!("{name}.yml")),
            ]
        };
        candidates
            .iter()
            .find(|p| p.exists())
            .cloned()
            .ok_or_else(|| LoadError::NotFound(name.to_owned(), candidates[0].display().to_string()))
    }

    /// Loads the named scenarios.
    ///
    /// # Errors
    /// The first file that fails, with file, line and field.
    pub fn scenarios(&self, names: &[String], env: &Env) -> Result<Vec<Scenario>, LoadError> {
        let mut out = Vec::new();
        for n in names.iter().filter(|n| !n.trim().is_empty()) {
            let path = self.scenario_file(n)?;
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io { path: path.clone(), source })?;
            out.extend(scenarios_from_text(&path, &text, env)?);
        }
        Ok(out)
    }

    /// Every parser (`parsers/<stage>/<author>/*.yaml`) and scenario (`scenarios/<author>/*.yaml`)
    /// of the folder, in name order.
    ///
    /// # Errors
    /// The first file that fails, with file, line and field.
    pub fn load_all(&self) -> Result<(Pipeline, Env, Vec<Scenario>), LoadError> {
        let (pipeline, env, scenarios, skipped) = self.load_all_with(false)?;
        debug_assert!(skipped.is_empty());
        Ok((pipeline, env, scenarios))
    }

    /// As [`Hub::load_all`]; with `skip_invalid`, a file that fails is left out (whole: nothing of
    /// it is loaded) and its error returned beside what loaded.
    ///
    /// # Errors
    /// Without `skip_invalid`, the first file that fails.
    pub fn load_all_with(
        &self,
        skip_invalid: bool,
    ) -> Result<(Pipeline, Env, Vec<Scenario>, Vec<LoadError>), LoadError> {
        let list = yaml_files;
        let mut skipped = Vec::new();
        let mut keep = |r: Result<(), LoadError>| -> Result<(), LoadError> {
            match r {
                Err(e) if skip_invalid => {
                    skipped.push(e);
                    Ok(())
                }
                other => other,
            }
        };
        let env = Env::new(Arc::new(self.data()));
        let mut patterns = self.patterns()?;
        let mut files = Vec::new();
        for stage in STAGES {
            files.extend(list(self.dir.join("parsers").join(stage)).into_iter().map(|p| (stage.to_owned(), p)));
        }
        files.sort_by(|a, b| (&a.0, a.1.file_name()).cmp(&(&b.0, b.1.file_name())));
        let mut parsers = Vec::new();
        for (stage, file) in files {
            keep(parsers_from_file(&file, &stage, &mut patterns, &env).map(|p| parsers.extend(p)))?;
        }
        let mut scenarios = Vec::new();
        for path in list(self.dir.join("scenarios")) {
            let r = std::fs::read_to_string(&path)
                .map_err(|source| LoadError::Io { path: path.clone(), source })
                .and_then(|text| scenarios_from_text(&path, &text, &env))
                .map(|s| scenarios.extend(s));
            keep(r)?;
        }
        Ok((Pipeline::new(parsers), env, scenarios, skipped))
    }

    /// crowd's base patterns plus every pattern file of the hub.
    ///
    /// # Errors
    /// Unreadable pattern files.
    pub fn patterns(&self) -> Result<Patterns, LoadError> {
        let mut p = Patterns::with_base();
        let dir = &self.patterns_dir;
        let mut files: Vec<_> =
            std::fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|source| LoadError::Io { path: f.clone(), source })?;
            p.add_text(&text);
        }
        Ok(p)
    }

    /// Every data file of the hub's `data/` folder, as lines.
    /// A `dest_file` that the folder does not hold under that name is found by the file name of
    /// its `source_url` (packaged hubs keep the download's name).
    #[must_use]
    pub fn data(&self) -> DataFiles {
        let mut d = self.data_files();
        // The MaxMind databases the hub's geoip-enrich parser names, when the folder has them.
        match crate::engine::geoip::GeoIp::open_dir(&self.data_dir) {
            Ok(g) => d.geoip = Arc::new(g),
            Err(e) => tracing::warn!(error = %e, "GeoIP database not loaded: GeoIP enrichment adds nothing"),
        }
        for (dest, src) in self.data_aliases() {
            if !d.lines.contains_key(&dest)
                && let Some(lines) = d.lines.get(&src).cloned()
            {
                d.lines.insert(dest, lines);
            }
        }
        d
    }

    /// (dest_file, file name of source_url) of every data entry of the hub's YAML files.
    fn data_aliases(&self) -> Vec<(String, String)> {
        let re = regex::Regex::new(r"(?m)^\s*-?\s*(source_url|dest_file):\s*(\S+)\s*$").expect("valid");
        let mut out = Vec::new();
        let mut stack = vec![self.dir.join("parsers"), self.dir.join("scenarios")];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                    && let Ok(text) = std::fs::read_to_string(&p)
                    && text.contains("dest_file")
                {
                    let (mut src, mut dest): (Option<String>, Option<String>) = (None, None);
                    for c in re.captures_iter(&text) {
                        let v = c[2].trim_matches(['"', '\'']).to_owned();
                        if &c[1] == "source_url" {
                            src = v.rsplit('/').next().map(str::to_owned);
                        } else {
                            dest = Some(v);
                        }
                        if let (Some(s), Some(d)) = (&src, &dest) {
                            out.push((d.clone(), s.clone()));
                            src = None;
                            dest = None;
                        }
                    }
                }
            }
        }
        out
    }

    fn data_files(&self) -> DataFiles {
        let mut d = DataFiles::default();
        if let Ok(rd) = std::fs::read_dir(&self.data_dir) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "mmdb") {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
                let name = e.file_name().to_string_lossy().into_owned();
                let lines: Vec<String> =
                    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
                d.lines.insert(name, lines);
            }
        }
        d
    }

    /// Every postoverflow parser (`postoverflows/<stage>/...`), run on overflows before the
    /// profiles (CDN and crawler whitelists, `ipv6_to_range`), in `env`. With `skip_invalid`, a
    /// file that fails is left out (whole) and its error returned beside what loaded.
    ///
    /// # Errors
    /// Without `skip_invalid`, the first file that fails.
    pub fn postoverflows(&self, env: &Env, skip_invalid: bool) -> Result<(Pipeline, Vec<LoadError>), LoadError> {
        let root = self.dir.join("postoverflows");
        let mut stages: Vec<PathBuf> = std::fs::read_dir(&root)
            .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default();
        stages.sort();
        let mut patterns = self.patterns()?;
        let (mut parsers, mut skipped) = (Vec::new(), Vec::new());
        for dir in stages {
            let stage = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            for file in yaml_files(dir) {
                match parsers_from_file(&file, &stage, &mut patterns, env) {
                    Ok(p) => parsers.extend(p),
                    Err(e) if skip_invalid => skipped.push(e),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok((Pipeline::new(parsers), skipped))
    }

    /// Loads the named parsers (or postoverflows) into a pipeline that runs in `env`.
    ///
    /// # Errors
    /// The first file that fails, with file, line and field.
    pub fn pipeline_in(&self, names: &[String], env: &Env) -> Result<Pipeline, LoadError> {
        let mut patterns = self.patterns()?;
        let mut files = Vec::new();
        for n in names.iter().filter(|n| !n.trim().is_empty()) {
            files.push(self.parser_file(n)?);
        }
        files.sort_by(|a, b| (&a.0, a.1.file_name()).cmp(&(&b.0, b.1.file_name())));
        let mut parsers: Vec<Parser> = Vec::new();
        for (stage, file) in files {
            parsers.extend(parsers_from_file(&file, &stage, &mut patterns, env)?);
        }
        Ok(Pipeline::new(parsers))
    }

    /// Loads the named parsers into a pipeline, with the expression environment they run in.
    ///
    /// # Errors
    /// The first file that fails, with file, line and field.
    pub fn pipeline(&self, names: &[String]) -> Result<(Pipeline, Env), LoadError> {
        let env = Env::new(Arc::new(self.data()));
        // As CrowdSec, which loads each stage's folder of installed files: by file name.
        let p = self.pipeline_in(names, &env)?;
        Ok((p, env))
    }
}

fn is_yaml(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

/// The parser, postoverflow or scenario files of one folder: its own `*.yaml` (an installed
/// CrowdSec's, often symlinks into its hub) and those one level down (a hub's `<author>/`
/// folders), symlinks followed, sorted by path.
fn yaml_files(dir: PathBuf) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.extend(std::fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| is_yaml(p)));
        } else if is_yaml(&p) && p.is_file() {
            v.push(p);
        }
    }
    v.sort();
    v
}
