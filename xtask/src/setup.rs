//! `cargo xtask setup`: installs, idempotently and only when missing, everything crowd's build
//! and tests need on Debian: LLVM 22 (for bpf-linker), iproute2 and ping (network tests), the
//! rust-src component (to build `core` for the BPF target on stable), bpf-linker 0.13, and a
//! mounted bpffs. For `cargo xtask test` also the test services: crowdsec-firewall-bouncer and
//! nftables (the Local API's real bouncer), PostgreSQL (the store's second backend), openssl,
//! headless Chromium and its chromedriver (the web console's browser tests), and Debian's
//! `crowdsec` 1.4.6 (its `cscli` and agent as real clients of the Local API), installed
//! offline-safe: no online registration, no service started.
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::run;

const PACKAGES: &[&str] =
    &["llvm-22-dev", "libpolly-22-dev", "libzstd-dev", "zlib1g-dev", "iproute2", "iputils-ping", "util-linux"];

/// What only the tests need: Debian's firewall bouncer (the Local API's real-client test),
/// PostgreSQL (the store's second backend), openssl (the TLS test's certificates), Chromium
/// with chromedriver (the web console's browser tests drive it headless over WebDriver), and
/// Python (`../shared/tools`: the hub tests' scorer and the log generator).
const TEST_PACKAGES: &[&str] =
    &["crowdsec-firewall-bouncer", "nftables", "postgresql", "openssl", "chromium", "chromium-driver", "python3"];

const BPF_LINKER_VERSION: &str = "0.13.0";

fn ok(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

fn stdout(cmd: &mut Command) -> String {
    cmd.output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// Runs every step.
pub fn all() -> Result<()> {
    packages()?;
    rust_src()?;
    bpf_linker()?;
    bpffs()?;
    Ok(())
}

/// Test services: the packages above, Debian's `crowdsec`, a running PostgreSQL cluster on
/// loopback and its `crowd` role (allowed to create the per-test databases).
pub fn test_services() -> Result<()> {
    install(TEST_PACKAGES)?;
    crowdsec()?;
    let clusters = stdout(Command::new("pg_lsclusters").arg("-h"));
    if clusters.trim().is_empty() {
        eprintln!("setup: creating a PostgreSQL cluster");
        let v = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed")?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max()
            .context("no PostgreSQL version under /usr/lib/postgresql")?;
        run(Command::new("pg_createcluster").args([v.as_str(), "main", "--start"]))?;
    }
    for line in stdout(Command::new("pg_lsclusters").arg("-h")).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 3 && f[3] != "online" {
            eprintln!("setup: starting PostgreSQL {} {}", f[0], f[1]);
            run(Command::new("pg_ctlcluster").args([f[0], f[1], "start"]))?;
        }
    }
    let psql = |sql: &str| stdout(Command::new("runuser").args(["-u", "postgres", "--", "psql", "-tAc", sql]));
    if psql("SELECT 1 FROM pg_roles WHERE rolname = 'crowd'").trim() != "1" {
        eprintln!("setup: creating the PostgreSQL role `crowd` for the tests");
        let out = psql("CREATE ROLE crowd LOGIN CREATEDB PASSWORD 'crowd'");
        if !out.contains("CREATE ROLE") {
            bail!("could not create the PostgreSQL role `crowd`");
        }
    }
    Ok(())
}

fn packages() -> Result<()> {
    install(PACKAGES)
}

/// Installs the Debian packages of `list` that are missing.
pub fn install(list: &[&str]) -> Result<()> {
    let missing: Vec<&str> = list.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing Debian packages {missing:?}");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn installed(package: &str) -> bool {
    stdout(Command::new("dpkg-query").args(["-W", "-f=${Status}", package])).contains("install ok installed")
}

/// Debian's `crowdsec` (its `cscli` and agent are clients in `tests/tests/crowdsec_client.rs`),
/// installed without internet and without starting it. Its postinst registers with CrowdSec's
/// central API unless `/etc/crowdsec/online_api_credentials.yaml` has content, and would start
/// the service (the tests run their own processes with private configurations): a
/// `policy-rc.d` answering 101 ("action forbidden") stops that, and is removed afterwards only if
/// it was made here; the unit is then disabled. `dpkg --configure -a` finishes a configuration
/// an earlier attempt left.
pub fn crowdsec() -> Result<()> {
    if installed("crowdsec") {
        return Ok(());
    }
    eprintln!("setup: installing Debian's crowdsec (offline: no central API registration, not started)");
    std::fs::create_dir_all("/etc/crowdsec").context("creating /etc/crowdsec")?;
    let capi = std::path::Path::new("/etc/crowdsec/online_api_credentials.yaml");
    if std::fs::metadata(capi).map_or(true, |m| m.len() == 0) {
        std::fs::write(capi, "# crowd's tests: no central API registration (no internet needed)\n")
            .with_context(|| format!("writing {}", capi.display()))?;
    }
    let policy = std::path::Path::new("/usr/sbin/policy-rc.d");
    let made_policy = !policy.exists();
    if made_policy {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(policy, "#!/bin/sh\n# crowd's setup: no service starts while crowdsec installs\nexit 101\n")
            .context("writing /usr/sbin/policy-rc.d")?;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))
            .context("making /usr/sbin/policy-rc.d executable")?;
    }
    let result = (|| {
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        // A failing postinst leaves the package unpacked: `dpkg --configure -a` below retries it,
        // and the status check after it decides.
        if let Err(e) = run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", "crowdsec"])
            .env("DEBIAN_FRONTEND", "noninteractive"))
        {
            eprintln!("setup: {e:#}; finishing with dpkg --configure -a");
        }
        run(Command::new("dpkg").args(["--configure", "-a"]).env("DEBIAN_FRONTEND", "noninteractive"))
    })();
    if made_policy {
        let _ = std::fs::remove_file(policy);
    }
    result?;
    if !installed("crowdsec") {
        bail!("Debian's crowdsec is not installed and configured after `apt-get install` (see `dpkg --audit`)");
    }
    // Nor at the next boot: its API would take 127.0.0.1:8080, crowd's default. Best effort
    // (without systemd as init, `disable` still removes the link and `stop` has nothing to do).
    ok(Command::new("systemctl").args(["disable", "crowdsec"]));
    ok(Command::new("systemctl").args(["stop", "crowdsec"]));
    Ok(())
}

fn rust_src() -> Result<()> {
    let installed = stdout(Command::new("rustup").args(["component", "list", "--installed"]));
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("setup: adding rust-src (the BPF target builds `core` from source)");
    run(Command::new("rustup").args(["component", "add", "rust-src"]))
}

fn bpf_linker() -> Result<()> {
    let v = stdout(Command::new("bpf-linker").arg("--version"));
    if v.contains(BPF_LINKER_VERSION) {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about 2 minutes)");
    run(Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", "/usr/lib/llvm-22"))
    .context("installing bpf-linker")
}

fn bpffs() -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.split_whitespace().nth(2) == Some("bpf"))
    {
        return Ok(());
    }
    eprintln!("setup: mounting bpffs on /sys/fs/bpf");
    if !ok(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"])) {
        bail!("could not mount bpffs on /sys/fs/bpf (are you root?)");
    }
    Ok(())
}
