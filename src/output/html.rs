//! One-page HTML summaries (`lists/<PCN>/<PCN>.html`): a PCN's protected counts by eFI category and
//! by practice, the list's make-up by age band, sex and IMD quintile against the PCN's eligible
//! population (so an under-reached group shows), bar charts of both, and the top of the list
//! with the reasons. Self-contained: inline CSS and SVG drawn here, no script, no network.
//!
//! Pipeline position: one of `output`'s writers ([`super::PcnWriter`]).
//!
//! Every count on the page is a published cell of the PCN's rows of `summary.csv` (by eFI
//! category) or `pcn_profile.csv` (listed and not, by practice, age band, sex and quintile);
//! shares are worked out from those only, so the page tells nothing the aggregate files do not.
//! A PCN too small for a profile ([`PROFILE_MIN_ELIGIBLE`]) gets a page that says so. The top of
//! the list is the list itself, for direct care.

use std::fmt::Write as _;
use std::io::Write;

use polars::prelude::*;
use strata_models::plot::escape;

use super::{PcnSummary, PcnWriter};
use crate::disclosure::Cell;
use crate::tables::{COUNT_COLUMNS, PROFILE_DIMENSIONS, PROFILE_MIN_ELIGIBLE};

/// The PCN's HTML page.
#[derive(Debug, Clone, Copy)]
pub struct Html;

/// Rows of the list shown on the page.
pub const TOP: usize = 20;

/// Columns of the top-of-list table, in order.
const TOP_COLUMNS: [(&str, &str); 7] = [
    ("rank", "Rank"),
    ("patient_id", "Patient"),
    ("practice_code", "Practice"),
    ("age_band", "Age"),
    ("sex", "Sex"),
    ("efi_category", "Frailty"),
    ("why", "Why"),
];

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Arial,sans-serif;margin:24px auto;max-width:1100px;color:#1b1b1b;padding:0 16px}\
h1{font-size:1.6em;margin-bottom:4px}h2{font-size:1.2em;margin-top:28px;border-bottom:2px solid #005eb8;padding-bottom:4px}\
h3{font-size:1em;margin:16px 0 6px}p.lead{color:#444}\
table{border-collapse:collapse;margin:8px 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#e8f0fa}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.charts{display:flex;flex-wrap:wrap;gap:24px}.note{color:#555;font-size:0.85em}\
.key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}";

const BLUE: &str = "#005eb8";
const GREY: &str = "#aeb7bd";
const CATEGORY_COLOURS: [&str; 4] = ["#78be20", "#ffb81c", "#ed8b00", "#da291c"];

fn count_text(n: Option<u64>) -> String {
    n.map_or_else(|| "[c]".to_string(), |n| n.to_string())
}

/// `part` of `whole` in %, one decimal, when both are known and `whole` is not 0.
fn share(part: Option<u64>, whole: Option<u64>) -> Option<f64> {
    match (part, whole) {
        (Some(p), Some(w)) if w > 0 => Some((p as f64 * 1000.0 / w as f64).round() / 10.0),
        _ => None,
    }
}

fn pct_text(p: Option<f64>) -> String {
    p.map_or_else(|| "–".to_string(), |p| format!("{p:.1}%"))
}

/// The opening of a chart: an `<svg>` of `w` x `h` labelled and headed by `title`.
fn svg_open(title: &str, w: f64, h: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><text x="0" y="16" font-size="13" font-weight="bold">{t}</text>"#,
        t = escape(title)
    )
}

/// Horizontal bars, one per item (`label`, value), coloured in turn by `colours`, scaled to the
/// largest; `None` is drawn as no bar and labelled `[c]`.
fn bar_chart(title: &str, items: &[(String, Option<u64>)], colours: &[&str]) -> String {
    let max = items.iter().filter_map(|i| i.1).max().unwrap_or(0).max(1) as f64;
    let (label_w, bar_w, row_h) = (110.0, 300.0, 22.0);
    let h = 28.0 + row_h * items.len() as f64;
    let mut s = svg_open(title, label_w + bar_w + 60.0, h);
    for (k, (label, v)) in items.iter().enumerate() {
        let colour = colours[k % colours.len()];
        let y = 28.0 + row_h * k as f64;
        let len = v.map_or(0.0, |v| v as f64 / max * bar_w);
        let _ = write!(
            s,
            r#"<text x="{lx}" y="{ty}" font-size="12" text-anchor="end">{l}</text><rect x="{label_w}" y="{y}" width="{len:.1}" height="{bh}" fill="{colour}"/><text x="{vx:.1}" y="{ty}" font-size="12">{v}</text>"#,
            lx = label_w - 6.0,
            ty = y + 13.0,
            l = escape(label),
            bh = row_h - 6.0,
            vx = label_w + len + 4.0,
            v = count_text(*v)
        );
    }
    s.push_str("</svg>");
    s
}

/// Pairs of horizontal bars per group: share of the PCN's eligible people (grey) and share of
/// the list (blue), in %.
fn paired_chart(title: &str, items: &[(String, Option<f64>, Option<f64>)]) -> String {
    let max = items
        .iter()
        .flat_map(|i| [i.1, i.2])
        .flatten()
        .fold(1.0f64, f64::max);
    let (label_w, bar_w, row_h) = (130.0, 260.0, 30.0);
    let h = 28.0 + row_h * items.len() as f64;
    let mut s = svg_open(title, label_w + bar_w + 70.0, h);
    for (k, (label, eligible, listed)) in items.iter().enumerate() {
        let y = 28.0 + row_h * k as f64;
        let _ = write!(
            s,
            r#"<text x="{lx}" y="{ty}" font-size="12" text-anchor="end">{l}</text>"#,
            lx = label_w - 6.0,
            ty = y + 15.0,
            l = escape(label)
        );
        for (j, (v, colour)) in [(eligible, GREY), (listed, BLUE)].into_iter().enumerate() {
            let len = v.map_or(0.0, |v| v / max * bar_w);
            let by = y + 2.0 + 12.0 * j as f64;
            let _ = write!(
                s,
                r#"<rect x="{label_w}" y="{by}" width="{len:.1}" height="11" fill="{colour}"/><text x="{vx:.1}" y="{ty}" font-size="10">{t}</text>"#,
                vx = label_w + len + 4.0,
                ty = by + 9.0,
                t = pct_text(*v)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// A dimension's name as a heading.
fn dimension_title(dim: &str) -> &'static str {
    match dim {
        "practice" => "Practice",
        "age_band" => "Age band",
        "sex" => "Sex",
        "imd_quintile" => "IMD quintile (1 = most deprived, Core20)",
        _ => "Group",
    }
}

/// `<td>`s of counts, each with its column name for readers of the page's source.
fn count_cells(s: &mut String, cells: &[Cell], names: &[&str]) {
    for (c, name) in cells.iter().zip(names) {
        let _ = write!(s, r#"<td class="n" data-col="{name}">{}</td>"#, c.text());
    }
}

/// The PCN's summary rows by eFI category.
fn category_table(pcn: &PcnSummary) -> String {
    let mut s = String::from("<table><thead><tr><th>Group</th>");
    for c in COUNT_COLUMNS {
        let _ = write!(s, "<th>{c}</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for (g, cells) in &pcn.categories {
        let name = match g.as_str() {
            "all" => "Everyone eligible",
            "core20" => "Most deprived fifth (Core20)",
            g => g,
        };
        let _ = write!(
            s,
            r#"<tr data-dim="summary" data-group="{}"><td>{}</td>"#,
            escape(g),
            escape(name)
        );
        count_cells(&mut s, cells, &COUNT_COLUMNS);
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// A column of the list as text per row (empty for nulls or a missing column).
fn text_column(list: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    let n = list.height().min(TOP);
    match list.column(name) {
        Ok(c) => {
            let s = c
                .as_materialized_series()
                .slice(0, n)
                .cast(&DataType::String)?;
            Ok(s.str()?
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect())
        }
        Err(_) => Ok(vec![String::new(); n]),
    }
}

/// The page for one PCN.
pub fn page(list: &DataFrame, pcn: &PcnSummary) -> PolarsResult<String> {
    let code = escape(&pcn.pcn);
    let everyone = pcn.everyone().copied();
    let eligible = pcn.eligible();
    let listed = everyone.and_then(|c| c[0].count());
    let mut s = String::with_capacity(32 * 1024);
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/><title>PCN {code}: frailty list, as of {as_of}</title><style>{CSS}</style></head><body>
<h1>PCN {code}: frailty list</h1>
<p class="lead">As of {as_of}. <span id="eligible">{e}</span> eligible people (alive, aged {age}+){l}. The list takes {rule}.</p>
"#,
        as_of = escape(&pcn.as_of),
        e = count_text(eligible),
        l = match everyone {
            Some(_) => format!(
                r#"; <span id="listed">{}</span> on the list"#,
                count_text(listed)
            ),
            None => String::new(),
        },
        age = pcn.rules.min_age,
        rule = escape(&pcn.rule_text()),
    );
    // Risk figures from cards trained on synthetic data say so before anything else.
    if let Ok(c) = list.column(super::columns::RISK_SOURCE) {
        if let Ok(Some(source)) = c.str().map(|c| c.iter().next().flatten()) {
            if source.starts_with(super::columns::SYNTHETIC_SOURCE) {
                let _ = write!(
                    s,
                    r#"<p class="banner" id="synthetic-models" style="background:#fde2e1;border:2px solid #b10e1e;padding:0.6em"><strong>Risk models trained on synthetic data.</strong> {}</p>"#,
                    escape(&format!("{source}: {}", super::columns::SYNTHETIC_ADVICE))
                );
            }
        }
    }
    // Counts by eFI category (the PCN's rows of summary.csv).
    s.push_str("<h2>By eFI category</h2>");
    s.push_str(r#"<div class="charts">"#);
    s.push_str(&category_table(pcn));
    if let Some(all) = pcn.category_row("all") {
        let categories: Vec<(String, Option<u64>)> = COUNT_COLUMNS[..4]
            .iter()
            .zip(all)
            .map(|(c, v)| (c.to_string(), v.count()))
            .collect();
        // One colour per category.
        s.push_str(&bar_chart(
            "Eligible people by eFI category",
            &categories,
            &CATEGORY_COLOURS,
        ));
    }
    s.push_str("</div>");
    if !pcn.has_profile() {
        let _ = write!(
            s,
            "<h2>Who the list reaches</h2><p>The list's make-up by practice, age band, sex and deprivation is not shown for a PCN with fewer than {PROFILE_MIN_ELIGIBLE} eligible people: its groups would be too small to show without revealing a handful of people.</p>"
        );
    } else {
        s.push_str("<h2>Who the list reaches</h2>");
        let _ = write!(
            s,
            r#"<p>Each group's share of the PCN's eligible people and of the list. A group whose share of the list is well below its share of the eligible population may be under-reached. <span class="key"><span style="background:{GREY}"></span>share of eligible <span style="background:{BLUE}"></span>share of list</span></p>"#
        );
        for dim in PROFILE_DIMENSIONS {
            let title = dimension_title(dim);
            let _ = write!(s, "<h3>{title}</h3>");
            let mut t = format!(
                "<table><thead><tr><th>{}</th><th>eligible</th><th>share of eligible</th><th>listed</th><th>share of list</th><th>not listed</th><th>listed of group</th></tr></thead><tbody>",
                escape(title)
            );
            let mut chart = Vec::new();
            for (g, cells) in pcn.dimension(dim) {
                let (l, n, e) = (cells[0].count(), cells[1].count(), cells[2].count());
                let (se, sl) = (share(e, eligible), share(l, listed));
                let _ = write!(
                    t,
                    r#"<tr data-dim="{d}" data-group="{g}"><td>{g}</td><td class="n" data-col="eligible">{}</td><td class="n">{}</td><td class="n" data-col="listed">{}</td><td class="n">{}</td><td class="n" data-col="not_listed">{}</td><td class="n">{}</td></tr>"#,
                    count_text(e),
                    pct_text(se),
                    count_text(l),
                    pct_text(sl),
                    count_text(n),
                    pct_text(share(l, e)),
                    d = escape(dim),
                    g = escape(g),
                );
                chart.push((g.to_string(), se, sl));
            }
            t.push_str("</tbody></table>");
            s.push_str(r#"<div class="charts">"#);
            s.push_str(&t);
            if dim == "practice" {
                let listed: Vec<(String, Option<u64>)> = pcn
                    .dimension(dim)
                    .map(|(g, c)| (g.to_string(), c[0].count()))
                    .collect();
                s.push_str(&bar_chart("Listed people by practice", &listed, &[BLUE]));
            } else {
                s.push_str(&paired_chart(title, &chart));
            }
            s.push_str("</div>");
        }
    }
    // The top of the list.
    let _ = write!(
        s,
        "<h2>Top {} of the list</h2><table id=\"top\"><thead><tr>",
        list.height().min(TOP)
    );
    let cols: Vec<Vec<String>> = TOP_COLUMNS
        .iter()
        .map(|(c, _)| text_column(list, c))
        .collect::<PolarsResult<_>>()?;
    for (_, h) in TOP_COLUMNS {
        let _ = write!(s, "<th>{h}</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for r in 0..list.height().min(TOP) {
        s.push_str("<tr>");
        for c in &cols {
            let _ = write!(s, "<td>{}</td>", escape(&c[r]));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    let _ = write!(
        s,
        r#"<p class="note">[c]: a count of 1-7, or a count hidden so that one cannot be worked out from the others. The counts are the PCN's rows of summary.csv (by eFI category) and pcn_profile.csv (listed and not listed), protected together with every other table of the run; shares are worked out from the counts shown. The full list is in the workbook (.xlsx) and CSV file of the same name beside this page. Produced by strata {}.</p>
<p class="note" id="indicator-scope">Population-health indicators (indicators.csv, beside the lists): admissions are hospital spells (a transfer is not a second admission); falls admissions follow OHID's indicator C29 (an injury with a fall recorded on the admission), crude and age-standardised to the 2013 European Standard Population, for people 65+. The end-of-life measure (3 or more emergency admissions in the last 90 days of life) counts deaths at 65+, while OHID's end-of-life profiles count deaths from age 18: compare its trend with theirs, not its level.</p>
</body></html>
"#,
        env!("CARGO_PKG_VERSION")
    );
    Ok(s)
}

impl PcnWriter for Html {
    fn extension(&self) -> &'static str {
        "html"
    }

    fn encode(
        &self,
        w: &mut dyn Write,
        list: &DataFrame,
        pcn: &PcnSummary,
    ) -> Result<(), super::DocumentError> {
        w.write_all(page(list, pcn)?.as_bytes())?;
        Ok(())
    }
}
