//! The `strata` command line: a thin clap front end over the library. Each subcommand lives in
//! `cmd/` with its help text; errors are mapped to documented exit codes here.

mod cmd;

/// mimalloc returns freed pages for reuse without faulting them in again, which matters when a run
/// allocates and frees several gigabytes of columns (about 25% faster end to end than the system
/// allocator on the ICS benchmark; BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Population-health risk stratification: frailty scores and per-PCN lists from a pseudonymised
/// cohort.
#[derive(Parser)]
#[command(name = "strata", version, about, long_about = None)]
struct Cli {
    /// Worker threads, shared by strata and polars (default: POLARS_MAX_THREADS if set, else all
    /// cores). Results are identical whatever the number.
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Print nothing but errors (for schedulers): the run's warnings, counts and timings are in
    /// its manifest.json.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Write progress as log lines on stderr in this format, even on a terminal (default: a
    /// progress display on a terminal, text log lines otherwise).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<cmd::logging::LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Demo(cmd::demo::Args),
    Synth(cmd::synth::Args),
    Validate(cmd::validate::Args),
    Score(Box<cmd::score::Args>),
    Features(cmd::features::Args),
    Train(cmd::train::Args),
    Evaluate(cmd::evaluate::Args),
    Compare(cmd::compare::Args),
    Runs(cmd::runs::Args),
}

fn main() {
    strata::allocator::keep_freed_memory();
    let cli = Cli::parse();
    // The thread count: `--threads`, else a score run's settings file (read here for `threads`
    // alone; the run reads it again and reports any other problem in it). Set before any thread
    // starts (strata::threads).
    let threads = cli.threads.or_else(|| match &cli.command {
        Command::Score(a) => cmd::score::settings_file(a).ok().and_then(|f| f.threads),
        _ => None,
    });
    if threads == Some(0) {
        eprintln!("strata: the number of threads must be at least 1");
        std::process::exit(2);
    }
    strata::threads::prepare(threads);
    cmd::logging::init(cli.quiet, cli.log_format);
    let result = strata::threads::install(|| run(cli.command));
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let code = if e.downcast_ref::<cmd::UsageError>().is_some() {
                2
            } else {
                e.downcast_ref::<strata::Error>()
                    .map(strata::Error::exit_code)
                    .unwrap_or(1)
            };
            eprintln!("strata: {e:#}");
            std::process::exit(code);
        }
    }
}

/// Run the subcommand.
fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Synth(a) => cmd::synth::run(a),
        Command::Validate(a) => cmd::validate::run(a),
        Command::Score(a) => cmd::score::run(*a),
        Command::Features(a) => cmd::features::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Evaluate(a) => cmd::evaluate::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Runs(a) => cmd::runs::run(a),
    }
}
