//! Where the write stage's time and bytes go: format by format, and column by column in the
//! lists, on any cohort.
//!
//! ```sh
//! cargo bench --bench write_formats -- COHORT [AS_OF]     # default AS_OF 2025-04-01
//! ```
//!
//! It runs the library's map step on the cohort once (default settings, the default risk
//! models, nothing compared), protects its tables, explains everyone listed, and then builds and
//! encodes every PCN's files one format at a time on one thread into memory, so each figure is
//! that format's own cost in thread-seconds (the run itself spreads them over every core): the
//! list frames (every column's values, the factor texts and `why` included), the CSV and Parquet
//! lists, each PCN's workbook and page, the scores file. The workbooks twice more: strata's sheets
//! (the same cells) serialised by strata's own writer alone, and by rust_xlsxwriter in its
//! constant-memory mode (which sets no deflate level: its zip's default), so the hand-written
//! writer's worth is measured, not assumed. Then, per list column, the bytes it adds to the CSV
//! and to the Parquet list files (each column encoded alone, summed over PCNs).
//! BENCHMARKS.md records what it printed.

use std::path::PathBuf;
use std::time::Instant;

use polars::prelude::*;
use strata::cohort::Cohort;
use strata::config::ScoreConfig;
use strata::finish::Protection;
use strata::output::xlsx::{self, Sheet, Value};
use strata::output::{self, PcnSummary, RiskColumns, TableWriter};
use strata::partition::{score_partition, CompareWith, RunModels};
use strata::risk::Explainer;
use strata::scores::Scorer;
use strata::settings::Settings;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    strata::allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: cargo bench --bench write_formats -- COHORT [AS_OF]");
        std::process::exit(2);
    };
    let as_of = args.get(1).cloned().unwrap_or_else(|| "2025-04-01".into());
    if let Err(e) = strata::threads::install(|| run(dir, &as_of)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Seconds since `t`.
fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn encode_table(w: &dyn TableWriter, df: &mut DataFrame) -> usize {
    let mut bytes = Vec::new();
    w.encode(&mut bytes, df).expect("encode");
    bytes.len()
}

fn run(dir: PathBuf, as_of: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = ScoreConfig {
        as_of: Some(as_of.to_string()),
        models: Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models"
        ))),
        ..Default::default()
    };
    let settings = Settings::resolve(&config)?;
    let t = Instant::now();
    let mut models = RunModels::load(&settings)?;
    let cohort = Cohort::load(&dir, &settings.load)?;
    models.for_cohort(&settings, cohort.synthetic.is_some())?;
    let part = score_partition(
        cohort,
        &settings,
        &models,
        CompareWith::Nothing,
        &mut |_| {},
    );
    let listed: usize = part.ranked.iter().map(|(_, v)| v.len()).sum();
    println!(
        "cohort {}: {} patients, {} PCNs, {} listed; read, scored and ranked in {:.2} s",
        dir.display(),
        part.cohort.patients.len(),
        part.ranked.len(),
        listed,
        secs(t)
    );
    let protection = Protection::new(&part.counts, &settings.suppression)?;
    let published = protection.published();
    let t = Instant::now();
    let explainer = Explainer::new(
        &part.cohort,
        &models.definitions,
        &part.scored,
        settings.as_of,
    )
    .ahead(
        &models.models,
        part.ranked
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .collect(),
    );
    let explain = secs(t);
    let risk = RiskColumns {
        models: &models.models,
        pcn: &part.cohort.patients.pcn,
        risks: &part.risks,
        explainer,
    };
    let scorer = Scorer::new(&models.definitions);
    let as_of_text = strata::date::format_days(settings.as_of);
    // Every figure on one thread: each format's own cost.
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let (frames, frame_s) = one.install(|| {
        let t = Instant::now();
        let frames: Vec<(String, DataFrame)> = part
            .ranked
            .iter()
            .map(|(pcn, pats)| {
                let (full, _) = output::pcn_frame(
                    &part.cohort,
                    &part.scored,
                    &scorer,
                    pats,
                    &[],
                    &risk,
                    &part.changes,
                )
                .expect("frame");
                (part.cohort.patients.pcns[*pcn as usize].clone(), full)
            })
            .collect();
        (frames, secs(t))
    });
    let mut rows: Vec<(String, f64, usize)> = vec![("list frames".into(), frame_s, 0)];
    for (name, w) in [
        ("list CSV", &output::csv::Csv::EXCEL as &dyn TableWriter),
        ("list Parquet", &output::parquet::Parquet),
    ] {
        let (s, bytes) = one.install(|| {
            let t = Instant::now();
            let bytes: usize = frames
                .iter()
                .map(|(_, df)| encode_table(w, &mut df.clone()))
                .sum();
            (secs(t), bytes)
        });
        rows.push((name.into(), s, bytes));
    }
    for w in output::PCN_FORMATS {
        let (s, bytes) = one.install(|| {
            let t = Instant::now();
            let mut bytes = 0;
            for (pcn, df) in &frames {
                let summary = PcnSummary::new(
                    &published[output::SUMMARY],
                    &published[output::PROFILE],
                    pcn,
                    &as_of_text,
                    &settings.rules,
                );
                let mut out = Vec::new();
                w.encode(&mut out, df, &summary).expect("document");
                bytes += out.len();
            }
            (secs(t), bytes)
        });
        rows.push((format!("PCN {}", w.extension()), s, bytes));
    }
    let (s, bytes) = one.install(|| {
        let t = Instant::now();
        let mut out = Vec::new();
        let n = part.cohort.patients.len();
        output::parquet::encode_batched(
            &mut out,
            std::path::Path::new("scores.parquet"),
            n,
            output::SCORES_BATCH,
            |r| {
                output::columns::scores_frame_rows(
                    &part.cohort,
                    &part.scored,
                    &scorer,
                    &risk,
                    &part.listed,
                    r,
                )
            },
        )
        .expect("scores");
        (secs(t), out.len())
    });
    rows.push(("scores file".into(), s, bytes));
    // The workbooks' cells, made once by strata (the summary and practice sheets), then
    // serialised by each writer.
    let sheets: Vec<(String, Vec<Sheet>)> = frames
        .iter()
        .map(|(pcn, df)| {
            let summary = PcnSummary::new(
                &published[output::SUMMARY],
                &published[output::PROFILE],
                pcn,
                &as_of_text,
                &settings.rules,
            );
            let mut sheets = vec![xlsx::summary_sheet(&summary)];
            let mut taken = vec![sheets[0].name.clone()];
            sheets.extend(xlsx::practice_sheets(df, &mut taken).expect("sheets"));
            (pcn.clone(), sheets)
        })
        .collect();
    let (s, bytes) = one.install(|| {
        let t = Instant::now();
        let bytes: usize = sheets
            .iter()
            .map(|(pcn, sh)| {
                xlsx::workbook(sh, &format!("strata frailty list: PCN {pcn}"), &as_of_text)
                    .expect("workbook")
                    .len()
            })
            .sum();
        (secs(t), bytes)
    });
    rows.push(("workbooks: strata's writer, same cells".into(), s, bytes));
    let (s, bytes) = one.install(|| {
        let t = Instant::now();
        let bytes: usize = sheets
            .iter()
            .map(|(_, sh)| library_workbook(sh).expect("rust_xlsxwriter").len())
            .sum();
        (secs(t), bytes)
    });
    rows.push((
        "workbooks: rust_xlsxwriter (constant memory), same cells".into(),
        s,
        bytes,
    ));
    println!("explaining the listed people (both cores): {explain:.2} s");
    println!();
    println!("| what | thread-seconds | bytes | bytes a listed person |");
    println!("|---|---|---|---|");
    for (name, s, bytes) in &rows {
        let per = if *bytes > 0 && listed > 0 {
            format!("{:.0}", *bytes as f64 / listed as f64)
        } else {
            String::new()
        };
        println!("| {name} | {s:.2} | {bytes} | {per} |");
    }
    // Column by column: each list column encoded alone, summed over PCNs.
    let names: Vec<String> = frames
        .first()
        .map(|(_, df)| {
            df.get_column_names()
                .iter()
                .map(|c| c.to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut cols: Vec<(String, usize, usize)> = names
        .iter()
        .map(|c| {
            let (mut csv, mut pq) = (0, 0);
            for (_, df) in &frames {
                let mut one = df.select([c.as_str()]).expect("column");
                // Less the header and line ends, which every column's file has.
                csv += encode_table(&output::csv::Csv::PLAIN, &mut one)
                    .saturating_sub(c.len() + 1 + one.height());
                pq += encode_table(&output::parquet::Parquet, &mut one);
            }
            (c.clone(), csv, pq)
        })
        .collect();
    cols.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!();
    println!("| list column | CSV bytes a listed person | Parquet bytes a listed person (alone) |");
    println!("|---|---|---|");
    for (c, csv, pq) in cols {
        println!(
            "| {c} | {:.1} | {:.1} |",
            csv as f64 / listed.max(1) as f64,
            pq as f64 / listed.max(1) as f64
        );
    }
    Ok(())
}

/// The workbook of `sheets` written by rust_xlsxwriter, one constant-memory worksheet a sheet:
/// the banner lines, the bold header, the rows, the notes; the header row frozen and filtered,
/// dates as `yyyy-mm-dd` (what strata's writer puts in its workbooks).
fn library_workbook(sheets: &[Sheet]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let day = Format::new().set_num_format("yyyy-mm-dd");
    for sheet in sheets {
        let ws = wb.add_worksheet_with_constant_memory();
        ws.set_name(&sheet.name)?;
        let mut row = 0u32;
        for line in &sheet.banner {
            ws.write_string(row, 0, line)?;
            row += 1;
        }
        let head = row;
        for (c, h) in sheet.header.iter().enumerate() {
            ws.write_string_with_format(row, c as u16, h, &bold)?;
        }
        for cells in &sheet.rows {
            row += 1;
            for (c, v) in cells.iter().enumerate() {
                let c = c as u16;
                match v {
                    Value::Blank => {}
                    Value::Text(t) => {
                        ws.write_string(row, c, t.as_ref())?;
                    }
                    Value::Number(x) => {
                        ws.write_number(row, c, *x)?;
                    }
                    Value::Bool(b) => {
                        ws.write_boolean(row, c, *b)?;
                    }
                    Value::Date(d) => {
                        ws.write_number_with_format(row, c, f64::from(*d + 25_569), &day)?;
                    }
                }
            }
        }
        let last = row;
        ws.set_freeze_panes(head + 1, 0)?;
        if !sheet.header.is_empty() {
            ws.autofilter(head, 0, last, sheet.header.len() as u16 - 1)?;
        }
        for line in &sheet.notes {
            row += 1;
            ws.write_string(row + 1, 0, line)?;
        }
    }
    wb.save_to_buffer()
}
