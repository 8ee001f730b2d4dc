//! Loading parser YAML files into compiled parsers, with errors that name file, line and field.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::{
    expr::Env,
    grok::Patterns,
    parser::{Node, Parser, spec::NodeSpec},
    scenario::{Scenario, spec::ScenarioSpec},
};

/// A configuration file that could not be loaded; nothing of it was kept.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Bad YAML or a bad field.
    #[error("{path}:{line}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// The field, as a path (`nodes[1].grok.pattern`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A name that resolves to no file.
    #[error("`{0}`: no such parser or scenario in the hub (looked for {1})")]
    NotFound(String, String),
}

/// The line (1-based) of the first occurrence of `needle` in `text` at or after line `from`.
fn line_of(text: &str, needle: &str, from: usize) -> usize {
    if needle.is_empty() {
        return from;
    }
    let first = needle.lines().next().unwrap_or(needle).trim();
    text.lines().enumerate().skip(from.saturating_sub(1)).find(|(_, l)| l.contains(first)).map_or(from, |(i, _)| i + 1)
}

/// Reads every YAML document of a file strictly into `T`, with the line each document starts on.
fn documents<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<Vec<(T, usize)>, LoadError> {
    let mut out = Vec::new();
    let mut doc_line = 1;
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        // Documents after the first start after a `---` line.
        if i > 0 {
            doc_line = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.trim_end() == "---")
                .nth(i - 1)
                .map_or(doc_line, |(n, _)| n + 1);
        }
        match Option::<T>::deserialize(doc) {
            Ok(Some(spec)) => out.push((spec, doc_line)),
            Ok(None) => {}
            Err(e) => {
                let line = e.location().map_or(0, |l| l.line());
                let msg = e.to_string();
                let field = msg.split('`').nth(1).unwrap_or("yaml").to_owned();
                return Err(LoadError::Invalid { path: path.to_owned(), line, field, message: msg });
            }
        }
    }
    Ok(out)
}

/// Compiles every document of a parser file (all or nothing).
///
/// # Errors
/// [`LoadError`] naming the file, line and field.
pub fn parsers_from_text(
    path: &Path,
    text: &str,
    stage: &str,
    patterns: &mut Patterns,
    env: &Env,
) -> Result<Vec<Parser>, LoadError> {
    documents::<NodeSpec>(path, text)?
        .into_iter()
        .map(|(spec, doc_line)| {
            let parent = spec.name.clone().unwrap_or_default();
            let node = Node::compile(&spec, patterns, env, &parent).map_err(|e| LoadError::Invalid {
                path: path.to_owned(),
                line: line_of(text, &e.text, doc_line),
                field: e.field.clone(),
                message: e.message.clone(),
            })?;
            Ok(Parser { stage: stage.to_owned(), node })
        })
        .collect()
}

/// Compiles every document of a scenario file (all or nothing).
///
/// # Errors
/// [`LoadError`] naming the file, line and field.
pub fn scenarios_from_text(path: &Path, text: &str, env: &Env) -> Result<Vec<Scenario>, LoadError> {
    documents::<ScenarioSpec>(path, text)?
        .into_iter()
        .map(|(spec, doc_line)| {
            Scenario::compile(&spec, env).map_err(|e| LoadError::Invalid {
                path: path.to_owned(),
                line: line_of(text, &e.text, doc_line),
                field: e.field.clone(),
                message: e.message.clone(),
            })
        })
        .collect()
}

/// Reads and compiles a parser file.
///
/// # Errors
/// As [`parsers_from_text`], or the file cannot be read.
pub fn parsers_from_file(
    path: &Path,
    stage: &str,
    patterns: &mut Patterns,
    env: &Env,
) -> Result<Vec<Parser>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.to_owned(), source })?;
    parsers_from_text(path, &text, stage, patterns, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::expr::DataFiles;

    fn load(text: &str) -> Result<Vec<Parser>, LoadError> {
        let env = Env::new(std::sync::Arc::new(DataFiles::default()));
        parsers_from_text(Path::new("p.yaml"), text, "s01-parse", &mut Patterns::with_base(), &env)
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let e = load("name: a\nfilter: \"1 == 1\"\ngrokk:\n  pattern: x\n").unwrap_err().to_string();
        assert!(e.starts_with("p.yaml:3:"), "{e}");
        assert!(e.contains("grokk"), "{e}");
    }

    #[test]
    fn bad_expression_names_its_line_and_field() {
        let e = load("name: a\ngrok:\n  pattern: '%{WORD:w}'\n  apply_on: message\nstatics:\n  - meta: x\n    expression: evt.Parsed.w ==\n").unwrap_err();
        let LoadError::Invalid { line, field, .. } = &e else { panic!("{e}") };
        assert_eq!((*line, field.as_str()), (7, "statics[0].expression"), "{e}");
    }

    #[test]
    fn wrong_type_and_bad_grok_are_refused() {
        assert!(load("name: a\nnodes: 3\n").is_err());
        let e = load("name: a\nstatics:\n  - meta: x\n    value: y\n---\nname: b\ngrok:\n  pattern: '%{NOPE:x}'\n  apply_on: message\n").unwrap_err().to_string();
        assert!(e.contains("p.yaml:8") && e.contains("grok.pattern") && e.contains("NOPE"), "{e}");
    }

    #[test]
    fn multi_document_files_load_every_node() {
        let p = load("name: a\nstatics:\n  - meta: x\n    value: y\n---\n# only a comment\n---\nname: b\nstatics:\n  - meta: x\n    value: z\n").unwrap();
        assert_eq!(p.iter().map(|p| p.node.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }
}
