//! Builds the XDP program (`crowd-ebpf`) for `bpfel-unknown-none` and leaves the object in
//! `OUT_DIR/crowd.bpf.o`, where `src/enforce/object.rs` embeds it.
//!
//! The eBPF crate needs `-Z build-std=core`: stable with `RUSTC_BOOTSTRAP=1` builds it, so no
//! second toolchain is needed; bpf-linker must be on PATH (`cargo xtask setup` installs it).
//! `CROWD_EBPF_OBJECT=path` embeds a prebuilt object instead; `CROWD_SKIP_EBPF=1` embeds nothing
//! (the binary then refuses every command that needs the kernel program, with a clear error).
use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    println!("cargo:rerun-if-env-changed=CROWD_EBPF_OBJECT");
    println!("cargo:rerun-if-env-changed=CROWD_SKIP_EBPF");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let dest = out_dir.join("crowd.bpf.o");

    if let Some(obj) = env::var_os("CROWD_EBPF_OBJECT") {
        println!("cargo:rerun-if-changed={}", Path::new(&obj).display());
        fs::copy(&obj, &dest).expect("copy CROWD_EBPF_OBJECT");
        return;
    }
    if env::var_os("CROWD_SKIP_EBPF").is_some_and(|v| v == "1") {
        println!("cargo:warning=CROWD_SKIP_EBPF=1: building crowd without its XDP program");
        fs::write(&dest, b"").expect("write empty object");
        return;
    }

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let ebpf_dir = manifest.parent().expect("workspace root").join("crowd-ebpf");
    let common_dir = manifest.parent().expect("workspace root").join("crowd-common");
    for d in [&ebpf_dir, &common_dir] {
        println!("cargo:rerun-if-changed={}", d.join("src").display());
        println!("cargo:rerun-if-changed={}", d.join("Cargo.toml").display());
    }

    let target_dir = out_dir.join("ebpf-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ebpf_dir)
        .args(["build", "--package", "crowd-ebpf", "--bin", "crowd-xdp", "--release"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            ["--cfg=bpf_target_arch=\"x86_64\"", "-Cdebuginfo=2", "-Clink-arg=--btf"].join("\x1f"),
        );
    // Whatever the outer build set for the host compiler must not leak into the BPF build.
    for var in ["RUSTC", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    for (k, _) in env::vars_os() {
        if k.to_string_lossy().starts_with("CARGO_TARGET_") || k.to_string_lossy().starts_with("CARGO_PROFILE_") {
            cmd.env_remove(k);
        }
    }
    let status = cmd.status().expect("run cargo for crowd-ebpf");
    assert!(
        status.success(),
        "building the XDP program failed: run `cargo xtask setup` (bpf-linker, rust-src), \
         or set CROWD_SKIP_EBPF=1 for a userspace-only build"
    );
    let built = target_dir.join("bpfel-unknown-none/release/crowd-xdp");
    fs::copy(&built, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
}
