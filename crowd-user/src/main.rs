//! The `crowd` binary: parses the command line and reports errors with their causes.
use clap::Parser;

/// mimalloc: the engine allocates small strings per event (helpers, captures), where glibc's
/// malloc spent a quarter of the replay time.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CROWD_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = crowd::cli::Cli::parse();
    if let Err(e) = crowd::cli::dispatch(cli) {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(2);
    }
}
