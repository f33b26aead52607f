//! How the binary reports a run as it goes (shared by the subcommands, not one itself).
//!
//! The library announces each stage of a run as `tracing` events (`started`, `finished` with its
//! seconds, `list written` while writing). Here they become, on a terminal, a spinner per stage
//! and a bar over the PCN lists (indicatif); elsewhere (a scheduler, a pipe) log lines on
//! stderr, as text or JSON lines (tracing-subscriber); with `--quiet`, nothing but errors.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

static QUIET: AtomicBool = AtomicBool::new(false);
static LOG_LINES: AtomicBool = AtomicBool::new(false);

/// Whether `--quiet` was given: subcommands then print nothing on success.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Say a warning: as a log line when writing logs (so a JSON log stays JSON), else as a line on
/// stderr; nothing with `--quiet` (the manifest keeps every warning).
pub fn warn(message: &str) {
    if quiet() {
    } else if LOG_LINES.load(Ordering::Relaxed) {
        tracing::warn!("{message}");
    } else {
        eprintln!("{message}");
    }
}

/// How log lines are written when stderr is not a terminal (or `--log-format` is given).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event: time, level, stage, seconds.
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// Start reporting: nothing with `quiet`; progress on a terminal unless a log format is asked
/// for; log lines on stderr otherwise.
pub fn init(quiet: bool, format: Option<LogFormat>) {
    QUIET.store(quiet, Ordering::Relaxed);
    if quiet {
        return;
    }
    // strata's own events only (dependencies may log too).
    let ours = |level| Targets::new().with_target("strata", level);
    let registry = tracing_subscriber::registry();
    let terminal = format.is_none() && std::io::stderr().is_terminal();
    LOG_LINES.store(!terminal, Ordering::Relaxed);
    let result = match format {
        None if terminal => tracing::subscriber::set_global_default(
            registry.with(Progress::default().with_filter(ours(Level::TRACE))),
        ),
        Some(LogFormat::Json) => tracing::subscriber::set_global_default(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_current_span(false)
                    .with_filter(ours(Level::INFO)),
            ),
        ),
        _ => tracing::subscriber::set_global_default(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(false)
                    .with_filter(ours(Level::INFO)),
            ),
        ),
    };
    // Only fails if a subscriber is already set, which main never does twice.
    let _ = result;
}

/// A stage name in words, for the terminal.
fn describe(stage: &str) -> &str {
    match stage {
        "load_models" => "loading code lists, weights and risk models",
        "read_cohort" => "reading and checking the cohort",
        "score" => "scoring frailty and comorbidity",
        "predict" => "applying the risk models",
        "rank" => "ranking lists, comparing with the previous run",
        "protect" => "disclosure control of the aggregate tables",
        "write" => "writing lists, scores and tables",
        other => other,
    }
}

/// The fields of one event that progress needs.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    stage: Option<String>,
    seconds: Option<f64>,
    total: Option<u64>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "stage" {
            self.stage = Some(value.to_string());
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "seconds" {
            self.seconds = Some(value);
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "total" {
            self.total = Some(value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = Some(format!("{value:?}")),
            "stage" => self.stage = Some(format!("{value:?}").trim_matches('"').to_string()),
            _ => {}
        }
    }
}

/// Progress on a terminal: a spinner while a stage runs, a bar over the PCN lists while
/// writing, and a line per finished stage with its time.
#[derive(Default)]
struct Progress {
    bar: Mutex<Option<ProgressBar>>,
}

impl<S: Subscriber> Layer<S> for Progress {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let Ok(mut bar) = self.bar.lock() else {
            return;
        };
        match (f.message.as_deref(), f.stage) {
            (Some("started"), Some(stage)) => {
                let pb = ProgressBar::new_spinner();
                pb.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                pb.set_message(describe(&stage).to_string());
                pb.enable_steady_tick(Duration::from_millis(120));
                *bar = Some(pb);
            }
            (Some("finished"), Some(stage)) => {
                if let Some(pb) = bar.take() {
                    pb.finish_and_clear();
                }
                eprintln!(
                    "  {:<52} {:>7.2}s",
                    describe(&stage),
                    f.seconds.unwrap_or(0.0)
                );
            }
            (Some("list written"), _) => {
                if let (Some(pb), Some(total)) = (bar.as_ref(), f.total) {
                    if pb.length() != Some(total) {
                        pb.set_style(
                            ProgressStyle::with_template(
                                "{spinner} {msg} [{bar:30}] {pos}/{len} PCNs {elapsed}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        );
                        pb.set_length(total);
                    }
                    pb.inc(1);
                }
            }
            _ => {}
        }
    }
}
