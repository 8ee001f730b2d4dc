//! crowd's own parsers and scenarios (the `scenarios/` folder), embedded in the binary: what the
//! daemon and `crowd replay` run when no `--config` is given.
use std::{path::Path, sync::Arc};

use super::load::{LoadError, parsers_from_text, scenarios_from_text};
use crate::engine::{
    expr::{DataFiles, Env},
    grok::Patterns,
    parser::Pipeline,
    scenario::Scenario,
};

/// (path inside `scenarios/`, stage, text) of every embedded parser.
const PARSERS: [(&str, &str, &str); 8] = [
    (
        "parsers/s00-raw/crowd/syslog.yaml",
        "s00-raw",
        include_str!("../../../scenarios/parsers/s00-raw/crowd/syslog.yaml"),
    ),
    (
        "parsers/s01-parse/crowd/sshd.yaml",
        "s01-parse",
        include_str!("../../../scenarios/parsers/s01-parse/crowd/sshd.yaml"),
    ),
    (
        "parsers/s01-parse/crowd/http-access.yaml",
        "s01-parse",
        include_str!("../../../scenarios/parsers/s01-parse/crowd/http-access.yaml"),
    ),
    (
        "parsers/s01-parse/crowd/http-error.yaml",
        "s01-parse",
        include_str!("../../../scenarios/parsers/s01-parse/crowd/http-error.yaml"),
    ),
    (
        "parsers/s01-parse/crowd/mail.yaml",
        "s01-parse",
        include_str!("../../../scenarios/parsers/s01-parse/crowd/mail.yaml"),
    ),
    (
        "parsers/s01-parse/crowd/mysql.yaml",
        "s01-parse",
        include_str!("../../../scenarios/parsers/s01-parse/crowd/mysql.yaml"),
    ),
    (
        "parsers/s02-enrich/crowd/source.yaml",
        "s02-enrich",
        include_str!("../../../scenarios/parsers/s02-enrich/crowd/source.yaml"),
    ),
    (
        "parsers/s02-enrich/crowd/dateparse.yaml",
        "s02-enrich",
        include_str!("../../../scenarios/parsers/s02-enrich/crowd/dateparse.yaml"),
    ),
];

/// (path inside `scenarios/`, text) of every embedded scenario file.
const SCENARIOS: [(&str, &str); 4] = [
    ("scenarios/crowd/sshd.yaml", include_str!("../../../scenarios/scenarios/crowd/sshd.yaml")),
    ("scenarios/crowd/http.yaml", include_str!("../../../scenarios/scenarios/crowd/http.yaml")),
    ("scenarios/crowd/mail.yaml", include_str!("../../../scenarios/scenarios/crowd/mail.yaml")),
    ("scenarios/crowd/mysql.yaml", include_str!("../../../scenarios/scenarios/crowd/mysql.yaml")),
];

/// (file name, text) of every embedded data file.
const DATA: [(&str, &str); 3] = [
    ("sensitive_paths.txt", include_str!("../../../scenarios/data/sensitive_paths.txt")),
    ("bad_user_agents.txt", include_str!("../../../scenarios/data/bad_user_agents.txt")),
    ("static_files.txt", include_str!("../../../scenarios/data/static_files.txt")),
];

fn data() -> DataFiles {
    let mut d = DataFiles::default();
    for (name, text) in DATA {
        let lines: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        d.lines.insert(name.to_owned(), lines);
    }
    d
}

/// The embedded configuration, compiled.
///
/// # Errors
/// Only if an embedded file is broken (a build-time mistake the tests catch).
pub fn load() -> Result<(Pipeline, Env, Vec<Scenario>), LoadError> {
    let env = Env::new(Arc::new(data()));
    let mut patterns = Patterns::with_base();
    let mut parsers = Vec::new();
    for (path, stage, text) in PARSERS {
        parsers.extend(parsers_from_text(Path::new(path), text, stage, &mut patterns, &env)?);
    }
    let mut scenarios = Vec::new();
    for (path, text) in SCENARIOS {
        scenarios.extend(scenarios_from_text(Path::new(path), text, &env)?);
    }
    Ok((Pipeline::new(parsers), env, scenarios))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_configuration_compiles() {
        let (p, _, s) = super::load().unwrap();
        assert_eq!(p.len(), 12);
        assert!(s.len() >= 8);
    }
}
