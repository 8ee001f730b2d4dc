//! Loading a hub-layout configuration folder: a bad file refuses the whole load with its file,
//! line and field, or, with `--skip-invalid`, is left out whole while the rest loads.
use crowd::config::{LoadError, hub::Hub};

fn write(root: &std::path::Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn folder() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(
        r,
        "parsers/s01-parse/me/good.yaml",
        "name: me/good\nfilter: \"1 == 1\"\nstatics:\n  - meta: x\n    value: y\n",
    );
    write(
        r,
        "parsers/s01-parse/me/bad.yaml",
        "name: me/bad\nfilter: \"1 == 1\"\nstatics:\n  - meta: x\n    valeu: y\n",
    );
    write(
        r,
        "scenarios/me/good.yaml",
        "type: trigger\nname: me/t\nfilter: \"evt.Meta.x == 'y'\"\ngroupby: evt.Meta.source_ip\n",
    );
    write(
        r,
        "scenarios/me/bad.yaml",
        "type: trigger\nname: me/ok-first\nfilter: \"true\"\n---\ntype: leaky\nname: me/broken\nfilter: \"true\"\ncapacity: 5\nleakspeed: soon\n",
    );
    d
}

#[test]
fn a_bad_file_refuses_the_load_and_names_file_line_and_field() {
    let d = folder();
    let err = Hub::new(d.path()).load_all().err().expect("refused");
    let LoadError::Invalid { path, line, field, .. } = &err else { panic!("{err}") };
    assert!(path.ends_with("parsers/s01-parse/me/bad.yaml"), "{err}");
    assert_eq!((*line, field.as_str()), (5, "valeu"), "{err}");
}

#[test]
fn skip_invalid_leaves_bad_files_out_whole() {
    let d = folder();
    let (pipeline, _, scenarios, skipped) = Hub::new(d.path()).load_all_with(true).unwrap();
    assert_eq!(pipeline.len(), 1, "only the good parser");
    // The bad scenario file's valid first document is not loaded either: no half-loaded file.
    assert_eq!(scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["me/t"]);
    let msgs: Vec<String> = skipped.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("bad.yaml") && m.contains("leakspeed")), "{msgs:?}");
}
