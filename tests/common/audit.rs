//! An auditor that sees only what strata publishes: it reads `summary.csv`, `equity.csv` and
//! `pcn_profile.csv` of an output folder (and the list rules from `manifest.json`), rebuilds
//! every relation an outsider can see from the labels alone (row totals, PCN rows adding up to
//! the `ALL` rows, each equity dimension adding up to `ALL`, the summary's `ALL` rows equal to
//! the equity table's `ALL` and IMD-quintile-1 rows, Core20 at most everyone; in the profile,
//! listed + not listed = eligible, each PCN's practices, age bands, sexes and quintiles adding up
//! to its `all` row, its `all` and quintile-1 rows being its summary rows, and a group's PCN rows
//! plus the people of the PCNs without a profile making the equity rows of that group; listed
//! counts tied to the eFI categories by the list rule of the manifest: exactly the categories
//! from `min_category` when lists are by category, at most them under `top` or `top_percent`
//! (exactly them for a PCN whose list is shorter than its limit), at least them when a risk
//! model adds people), and bounds every suppressed cell, and every small difference "everyone
//! minus Core20", from below and above by linear programming (microlp). Rounded tables
//! (`--publication`, the nhse-2018 rule) are read as intervals: a published `v > 0` is anything
//! of 8 or more that rounds to it; a `[c]` is 1 or more, since zeros are always shown (README).
//! A hidden cell pinned is a
//! finding whichever tables pin it (a profile count that sums of hidden summary cells pin
//! included).
//!
//! It is written apart from `strata::disclosure` on purpose: it shares no code with what it
//! checks.

use std::collections::BTreeMap;
use std::path::Path;

use microlp::{ComparisonOp, OptimizationDirection, Problem};

/// What the auditor could pin down.
#[derive(Debug, Default)]
pub struct Findings {
    /// Suppressed cells worked out to one non-zero value: (file, row labels, column, value).
    pub pinned: Vec<(String, String, String, i64)>,
    /// Suppressed cells audited.
    pub suppressed: usize,
    /// With a minimum protection interval `w > 1` in the manifest: suppressed cells whose
    /// provable interval is narrower than `w` (but not one value): (file, row, column, lo, hi).
    pub narrow: Vec<(String, String, String, i64, i64)>,
    /// The widest provable interval width seen among the suppressed cells with finite upper
    /// bounds, and how many had an unbounded one (for the test output).
    pub widest: i64,
    pub unbounded: usize,
    /// How many suppressed cells have each provable interval width (`hi - lo`; unbounded ones
    /// are counted in `unbounded`), for the test output.
    pub widths: BTreeMap<i64, usize>,
}

struct Sheet {
    /// Names of the count columns.
    cols: Vec<String>,
    rows: Vec<(String, String)>,
    /// Per row, one cell per count column: `None` when suppressed.
    cells: Vec<Vec<Option<i64>>>,
}

/// The fields of one CSV line (RFC 4180 quoting).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (ch, _) => out.last_mut().unwrap().push(ch),
        }
    }
    out
}

/// A published table whose header ends with `cols`.
fn read(path: &Path, cols: &str) -> Sheet {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.ends_with(cols), "{header}");
    let mut s = Sheet {
        cols: cols.split(',').map(str::to_string).collect(),
        rows: Vec::new(),
        cells: Vec::new(),
    };
    let n = s.cols.len();
    for line in lines {
        let fields = split_csv(line);
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        assert_eq!(f.len(), 2 + n, "{line}");
        s.rows.push((f[0].to_string(), f[1].to_string()));
        s.cells.push(
            f[2..]
                .iter()
                .map(|v| match *v {
                    "[c]" => None,
                    v => Some(v.parse::<i64>().unwrap_or_else(|_| panic!("{line}"))),
                })
                .collect(),
        );
    }
    s
}

/// The run's manifest, as an outsider reads it (null when absent: a hand-written folder).
fn manifest(out: &Path) -> serde_json::Value {
    std::fs::read_to_string(out.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .unwrap_or_default()
}

/// The minimum protection interval the run was asked for (`config.suppression.min_interval` of
/// the manifest; 0 when absent), as an outsider reads it.
fn min_interval(out: &Path) -> i64 {
    manifest(out)["config"]["suppression"]["min_interval"]
        .as_i64()
        .unwrap_or(0)
}

/// The run used NHS England's 2018 rule (`config.suppression.rule`): README says a `[c]` is then
/// a count of 1 to 7, or rarely a larger count hidden to protect one.
fn nhse_2018(out: &Path) -> bool {
    manifest(out)["config"]["suppression"]["rule"] == "nhse-2018"
}

/// The list rules as an outsider reads them from the manifest and README.
struct ListRule {
    /// The mildest eFI category listed (0 fit .. 3 severe).
    min: usize,
    /// A size limit (`top`, `top_percent`) may cut a list short: listed <= the categories.
    cut: Option<(Option<i64>, Option<f64>)>,
    /// A risk model adds people whatever their frailty: listed >= the categories.
    added: bool,
}

fn list_rule(out: &Path) -> ListRule {
    let m = manifest(out);
    let r = &m["rules"];
    let added =
        r["rank_by"] != "frailty" && (!r["min_risk_band"].is_null() || !r["min_risk"].is_null());
    let (top, pct) = (r["top"].as_i64(), r["top_percent"].as_f64());
    ListRule {
        min: ["Fit", "Mild", "Moderate", "Severe"]
            .iter()
            .position(|c| r["min_category"] == *c)
            .unwrap_or(1),
        cut: (top.is_some() || pct.is_some()).then_some((top, pct)),
        added,
    }
}

/// `e` (listed minus the categories, as a sparse row) = 0, <= 0 or >= 0 by `direction`: 0, 1 or
/// -1; `None` relates nothing.
fn relate(
    eqs: &mut Vec<Vec<(usize, f64)>>,
    geqs: &mut Vec<Vec<(usize, f64)>>,
    e: Vec<(usize, f64)>,
    direction: Option<i8>,
) {
    match direction {
        Some(0) => eqs.push(e),
        Some(1) => geqs.push(e.into_iter().map(|(v, k)| (v, -k)).collect()),
        Some(_) => geqs.push(e),
        None => {}
    }
}

/// The equity rows (dimension, group) that make up a profile group across PCNs: a ten-year age
/// band is two five-year bands (`75-84`: `75-79` and `80-84`; `85+`: `85-89` and `90+`).
fn equity_groups(dim: &str, group: &str) -> Vec<(String, String)> {
    let one = |g: String| (dim.to_string(), g);
    if dim != "age_band" {
        return vec![one(group.to_string())];
    }
    if group == "85+" {
        return vec![one("85-89".into()), one("90+".into())];
    }
    let (lo, hi) = group.split_once('-').expect("age band lo-hi");
    let (lo, hi): (i32, i32) = (lo.parse().unwrap(), hi.parse().unwrap());
    if hi - lo < 9 {
        return vec![one(group.to_string())];
    }
    vec![
        one(format!("{lo}-{}", lo + 4)),
        one(format!("{}-{hi}", lo + 5)),
    ]
}

/// Audit the published tables of one output folder. `round_to` is the rounding applied (1 for
/// none, 5 for `--publication`).
pub fn audit_folder(out: &Path, round_to: i64) -> Findings {
    const EFI: &str = "fit,mild,moderate,severe,total";
    let nhse = nhse_2018(out);
    let round_to = if nhse { 5 } else { round_to };
    let summary = read(&out.join("summary.csv"), EFI);
    let equity = read(&out.join("equity.csv"), EFI);
    let profile_path = out.join("pcn_profile.csv");
    let profile = if profile_path.exists() {
        read(&profile_path, "listed,not_listed,eligible")
    } else {
        Sheet {
            cols: Vec::new(),
            rows: Vec::new(),
            cells: Vec::new(),
        }
    };
    // Variables: every cell of the tables, summary first.
    let mut bounds: Vec<(f64, f64)> = Vec::new();
    let mut names: Vec<(String, String, String)> = Vec::new();
    let mut base = Vec::new();
    for (file, sheet) in [
        ("summary.csv", &summary),
        ("equity.csv", &equity),
        ("pcn_profile.csv", &profile),
    ] {
        base.push(bounds.len());
        for (r, row) in sheet.cells.iter().enumerate() {
            for (k, c) in row.iter().enumerate() {
                bounds.push(match c {
                    // strata never hides a zero (README): a `[c]` is 1 or more (under either
                    // rule it may be a larger count hidden to protect a small one).
                    None => (1.0, f64::INFINITY),
                    Some(v) if round_to <= 1 => (*v as f64, *v as f64),
                    // Anything that rounds to it, and above the suppressed range unless 0.
                    Some(0) => (0.0, 0.0),
                    Some(v) => (
                        ((v - (round_to - 1) / 2).max(8)) as f64,
                        (v + round_to / 2) as f64,
                    ),
                });
                names.push((
                    file.to_string(),
                    format!("{}/{}", sheet.rows[r].0, sheet.rows[r].1),
                    sheet.cols[k].clone(),
                ));
            }
        }
    }
    let cell = |t: usize, r: usize, k: usize| base[t] + r * 5 + k;
    // Equalities sum(coef * x) = 0, and inequalities sum(coef * x) >= 0.
    let mut eqs: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut geqs: Vec<Vec<(usize, f64)>> = Vec::new();
    for (t, sheet) in [&summary, &equity].iter().enumerate() {
        // (the profile's row totals are added with its other relations below)
        for r in 0..sheet.rows.len() {
            let mut e: Vec<(usize, f64)> = (0..4).map(|k| (cell(t, r, k), 1.0)).collect();
            e.push((cell(t, r, 4), -1.0));
            eqs.push(e);
        }
    }
    // Summary: PCN rows of each group add up to the ALL row of that group; Core20 <= everyone.
    let s_all = |g: &str| {
        summary
            .rows
            .iter()
            .position(|(p, gg)| p == "ALL" && gg == g)
            .expect("ALL rows")
    };
    for g in ["all", "core20"] {
        let total = s_all(g);
        for k in 0..5 {
            let mut e: Vec<(usize, f64)> = summary
                .rows
                .iter()
                .enumerate()
                .filter(|(_, (p, gg))| p != "ALL" && gg == g)
                .map(|(r, _)| (cell(0, r, k), 1.0))
                .collect();
            e.push((cell(0, total, k), -1.0));
            eqs.push(e);
        }
    }
    let mut pairs: BTreeMap<&str, [Option<usize>; 2]> = BTreeMap::new();
    for (r, (p, g)) in summary.rows.iter().enumerate() {
        pairs.entry(p.as_str()).or_default()[(g == "core20") as usize] = Some(r);
    }
    let mut differences = Vec::new();
    for [a, c] in pairs.values() {
        if let (Some(a), Some(c)) = (a, c) {
            for k in 0..5 {
                geqs.push(vec![(cell(0, *a, k), 1.0), (cell(0, *c, k), -1.0)]);
                differences.push((cell(0, *a, k), cell(0, *c, k)));
            }
        }
    }
    // Equity: each dimension's groups add up to ALL.
    let e_all = equity
        .rows
        .iter()
        .position(|(d, _)| d == "ALL")
        .expect("equity ALL row");
    let mut dims: Vec<&str> = equity
        .rows
        .iter()
        .map(|(d, _)| d.as_str())
        .filter(|d| *d != "ALL")
        .collect();
    dims.dedup();
    for d in dims {
        for k in 0..5 {
            let mut e: Vec<(usize, f64)> = equity
                .rows
                .iter()
                .enumerate()
                .filter(|(_, (dd, _))| dd == d)
                .map(|(r, _)| (cell(1, r, k), 1.0))
                .collect();
            e.push((cell(1, e_all, k), -1.0));
            eqs.push(e);
        }
    }
    // Across tables: everyone, and Core20 = IMD quintile 1 (zero when the equity table has no
    // such row).
    let q1 = equity
        .rows
        .iter()
        .position(|(d, g)| d == "imd_quintile" && g.starts_with("1 "));
    for k in 0..5 {
        eqs.push(vec![
            (cell(0, s_all("all"), k), 1.0),
            (cell(1, e_all, k), -1.0),
        ]);
        match q1 {
            Some(q) => eqs.push(vec![
                (cell(0, s_all("core20"), k), 1.0),
                (cell(1, q, k), -1.0),
            ]),
            None => eqs.push(vec![(cell(0, s_all("core20"), k), 1.0)]),
        }
    }
    // The profile. Its cells are audited; the people of the PCNs without a profile, by group
    // (variables added below), are not cells of any table.
    let audited = bounds.len();
    if !profile.rows.is_empty() {
        let pc = |r: usize, k: usize| base[2] + r * 3 + k;
        // Per profile column (listed, not listed, eligible): the eFI columns it adds up to, and
        // how (the list rule: by category, listed is exactly those categories; a size limit
        // makes it at most them, a risk model's additions at least them).
        let rule = list_rule(out);
        let min = rule.min;
        let efi: [Vec<usize>; 3] = [(min..4).collect(), (0..min).collect(), vec![4]];
        let direction: Option<i8> = match (rule.cut.is_some(), rule.added) {
            (false, false) => Some(0),
            (true, false) => Some(1),
            (false, true) => Some(-1),
            (true, true) => None,
        };
        let p_row = |a: &str, g: &str| profile.rows.iter().position(|(x, y)| x == a && y == g);
        let s_row = |a: &str, g: &str| summary.rows.iter().position(|(x, y)| x == a && y == g);
        // A PCN whose list is shorter than its size limit was not cut: by its rule exactly.
        let uncut = |a: &str| -> bool {
            let Some((top, pct)) = rule.cut else {
                return true;
            };
            let Some(all) = p_row(a, "all") else {
                return false;
            };
            let (listed, eligible) = (profile.cells[all][0], profile.cells[all][2]);
            let limit = match (top, pct, eligible) {
                (Some(n), _, _) => Some(n),
                (_, Some(x), Some(e)) => Some((e as f64 * x / 100.0).ceil() as i64),
                _ => None,
            };
            round_to <= 1 && matches!((listed, limit), (Some(l), Some(n)) if l < n)
        };
        for r in 0..profile.rows.len() {
            eqs.push(vec![(pc(r, 0), 1.0), (pc(r, 1), 1.0), (pc(r, 2), -1.0)]);
        }
        let mut blocks: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (r, (a, g)) in profile.rows.iter().enumerate() {
            if let Some((dim, _)) = g.split_once('=') {
                blocks.entry((a.as_str(), dim)).or_default().push(r);
                if dim != "practice" {
                    groups.entry(g.as_str()).or_default().push(r);
                }
            }
            let same = match g.as_str() {
                "all" => s_row(a, "all"),
                "imd_quintile=1" => s_row(a, "core20"),
                _ => None,
            };
            let Some(q) = same else { continue };
            let listed = if uncut(a) {
                Some(if rule.added { -1 } else { 0 })
            } else {
                direction
            };
            for (k, cols) in efi.iter().enumerate() {
                let how = match k {
                    0 => listed,
                    1 => listed.filter(|&d| d == 0),
                    _ => Some(0),
                };
                let mut e = vec![(pc(r, k), 1.0)];
                e.extend(cols.iter().map(|&c| (cell(0, q, c), -1.0)));
                relate(&mut eqs, &mut geqs, e, how);
            }
        }
        for ((a, _), parts) in &blocks {
            let all = p_row(a, "all").expect("profile all row");
            for k in 0..3 {
                let mut e: Vec<(usize, f64)> = parts.iter().map(|&r| (pc(r, k), 1.0)).collect();
                e.push((pc(all, k), -1.0));
                eqs.push(e);
            }
        }
        // Across PCNs.
        let shown: std::collections::BTreeSet<&str> =
            profile.rows.iter().map(|(a, _)| a.as_str()).collect();
        let left_out: Vec<usize> = summary
            .rows
            .iter()
            .enumerate()
            .filter(|(_, (a, g))| a != "ALL" && g == "all" && !shown.contains(a.as_str()))
            .map(|(r, _)| r)
            .collect();
        let how = |k: usize| match k {
            0 => direction,
            1 => direction.filter(|&d| d == 0),
            _ => Some(0),
        };
        let mut residuals: BTreeMap<(&str, usize), Vec<usize>> = BTreeMap::new();
        for (g, rows) in &groups {
            let (dim, v) = g.split_once('=').unwrap();
            let eq_rows: Vec<usize> = equity_groups(dim, v)
                .into_iter()
                .filter_map(|(d, gg)| {
                    equity.rows.iter().position(|(x, y)| {
                        *x == d && (*y == gg || y.split(' ').next() == Some(&gg))
                    })
                })
                .collect();
            for (k, cols) in efi.iter().enumerate() {
                if how(k).is_none() {
                    continue;
                }
                let mut e: Vec<(usize, f64)> = rows.iter().map(|&r| (pc(r, k), 1.0)).collect();
                if !left_out.is_empty() {
                    let var = bounds.len();
                    bounds.push((0.0, f64::INFINITY));
                    names.push(("(left out)".into(), g.to_string(), k.to_string()));
                    e.push((var, 1.0));
                    residuals.entry((dim, k)).or_default().push(var);
                }
                for &q in &eq_rows {
                    e.extend(cols.iter().map(|&c| (cell(1, q, c), -1.0)));
                }
                relate(&mut eqs, &mut geqs, e, how(k));
            }
        }
        for ((_, k), vars) in residuals {
            let mut e: Vec<(usize, f64)> = vars.iter().map(|&v| (v, 1.0)).collect();
            for &q in &left_out {
                e.extend(efi[k].iter().map(|&c| (cell(0, q, c), -1.0)));
            }
            relate(&mut eqs, &mut geqs, e, how(k));
        }
    }
    let solve_with = |bounds: &[(f64, f64)], objective: &[(usize, f64)], maximize: bool| {
        lp_optimum(bounds, &eqs, &geqs, objective, maximize, "published tables")
    };
    // The integer interval an outsider can prove for a combination of cells (hi `None`:
    // unbounded).
    let interval = |objective: &[(usize, f64)]| -> (i64, Option<i64>) {
        let lo = solve_with(&bounds, objective, false).expect("a minimum is bounded below");
        let hi = solve_with(&bounds, objective, true);
        (
            (lo - 1e-6).ceil() as i64,
            hi.map(|hi| (hi + 1e-6).floor() as i64),
        )
    };
    let width = min_interval(out).max(1);
    let mut f = Findings::default();
    for (i, b) in bounds.iter().enumerate().take(audited) {
        if b.1 != f64::INFINITY {
            continue;
        }
        f.suppressed += 1;
        // A cell pinned is a disclosure whichever tables pin it: no table is excused; with a
        // minimum protection interval, so is one narrower than it.
        let (lo, hi) = interval(&[(i, 1.0)]);
        let (file, row, col) = names[i].clone();
        match hi {
            Some(hi) if lo >= hi && lo != 0 => f.pinned.push((file, row, col, lo)),
            Some(hi) if hi - lo < width => f.narrow.push((file, row, col, lo, hi)),
            Some(hi) => {
                f.widest = f.widest.max(hi - lo);
                *f.widths.entry(hi - lo).or_default() += 1;
            }
            None => f.unbounded += 1,
        }
    }
    // A small difference "everyone minus Core20" is itself a count that must not be pinned.
    for (a, c) in differences {
        let hidden = |i: usize| bounds[i].0 == 1.0 && bounds[i].1 > 1.0;
        if hidden(a) || hidden(c) || round_to > 1 {
            let (lo, hi) = interval(&[(a, 1.0), (c, -1.0)]);
            let (file, row, col) = (
                "summary.csv".to_string(),
                format!("{} minus core20", names[a].1),
                names[a].2.clone(),
            );
            match hi {
                Some(hi) if lo >= hi && (1..=7).contains(&lo) => {
                    f.pinned.push((file, row, col, lo))
                }
                // Known to be small, and narrower than the protection level.
                Some(hi) if lo >= 1 && hi <= 7 && hi - lo < width => {
                    f.narrow.push((file, row, col, lo, hi))
                }
                _ => {}
            }
        } else {
            let v = (bounds[a].0 - bounds[c].0) as i64;
            if (1..=7).contains(&v) {
                f.pinned.push((
                    "summary.csv".into(),
                    format!("{} minus core20 (both published)", names[a].1),
                    names[a].2.clone(),
                    v,
                ));
            }
        }
    }
    // The indicators table, when the run wrote one (every run does; hand-written folders may
    // not).
    if out.join("indicators.csv").is_file() {
        let g = audit_indicators(out, round_to);
        f.suppressed += g.suppressed;
        f.pinned.extend(g.pinned);
        f.narrow.extend(g.narrow);
        f.widest = f.widest.max(g.widest);
        for (w, n) in g.widths {
            *f.widths.entry(w).or_default() += n;
        }
        f.unbounded += g.unbounded;
    }
    f
}

/// Fail the test when the auditor pins any suppressed cell of the folder's tables.
/// A scoring run's folder always holds every table: none may be missing from the audit
/// (`audit_folder` itself also takes hand-written folders without the newer tables).
pub fn assert_protected(out: &Path, round_to: i64) {
    for t in [
        "summary.csv",
        "equity.csv",
        "pcn_profile.csv",
        "indicators.csv",
    ] {
        assert!(out.join(t).is_file(), "{}: no {t} to audit", out.display());
    }
    let f = audit_folder(out, round_to);
    assert!(
        f.narrow.is_empty(),
        "{}: cells narrower than the minimum protection interval {:?}",
        out.display(),
        f.narrow
    );
    assert!(
        f.pinned.is_empty(),
        "{}: recoverable cells {:?}",
        out.display(),
        f.pinned
    );
}

/// The quantities `indicators.csv` prints, per area: each indicator's numerator and denominator
/// (a denominator is printed on two rows).
const QUANTITIES: [&str; NQ] = [
    "people",
    "emergency",
    "falls",
    "deaths",
    "in_hospital",
    "three_plus",
    "people_65_69",
    "people_70_74",
    "people_75_79",
    "people_80_84",
    "people_85_89",
    "people_90_plus",
    "falls_65_69",
    "falls_70_74",
    "falls_75_79",
    "falls_80_84",
    "falls_85_89",
    "falls_90_plus",
];

/// Quantities per area.
const NQ: usize = 18;
/// The first of the six people age bands, and of the six falls age bands.
const PEOPLE_BANDS: usize = 6;
const FALLS_BANDS: usize = 12;
/// The 2013 European Standard Population weights of the bands 65-69 ... 90+ (Eurostat 2013),
/// as an outsider would take them from the publication, not from strata.
const ESP2013: [u128; 6] = [5500, 5000, 4000, 2500, 1500, 1000];

/// Each indicator of `indicators.csv`: (name, numerator, denominator, rate multiplier); the
/// standardised rate is recognised by its name.
const INDICATOR_ROWS: [(&str, usize, usize, u128); 11] = [
    ("emergency_admissions_65_plus", 1, 0, 1_000),
    ("falls_admissions_65_plus", 2, 0, 100_000),
    ("falls_admissions_65_plus_age_standardised", 2, 0, 100_000),
    ("deaths_in_hospital", 4, 3, 100),
    (
        "deaths_with_3_or_more_emergency_admissions_in_last_90_days",
        5,
        3,
        100,
    ),
    ("falls_admissions_65_69", FALLS_BANDS, PEOPLE_BANDS, 100_000),
    (
        "falls_admissions_70_74",
        FALLS_BANDS + 1,
        PEOPLE_BANDS + 1,
        100_000,
    ),
    (
        "falls_admissions_75_79",
        FALLS_BANDS + 2,
        PEOPLE_BANDS + 2,
        100_000,
    ),
    (
        "falls_admissions_80_84",
        FALLS_BANDS + 3,
        PEOPLE_BANDS + 3,
        100_000,
    ),
    (
        "falls_admissions_85_89",
        FALLS_BANDS + 4,
        PEOPLE_BANDS + 4,
        100_000,
    ),
    (
        "falls_admissions_90_plus",
        FALLS_BANDS + 5,
        PEOPLE_BANDS + 5,
        100_000,
    ),
];

/// The directly standardised rate an outsider computes from the published band cells.
fn expected_standardised(people: &[Option<i64>], falls: &[Option<i64>], per: u128) -> String {
    let (mut num, mut den, mut any) = (0u128, 1u128, false);
    for b in 0..6 {
        let (Some(n), Some(f)) = (people[b], falls[b]) else {
            return "[c]".into();
        };
        if n == 0 {
            continue;
        }
        any = true;
        num = num * n as u128 + ESP2013[b] * f as u128 * den;
        den *= n as u128;
    }
    if !any {
        return "[z]".into();
    }
    let (num, den) = (num * per, den * ESP2013.iter().sum::<u128>());
    let tenths = (num * 20 + den) / (2 * den);
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// Differences an outsider can take between printed quantities that count a part of another
/// (a falls admission is an emergency admission, and so on): (whole, part).
const PARTS: [(usize, usize); 4] = [(0, 3), (1, 2), (3, 4), (3, 5)];

/// The rate an outsider expects from a published numerator and denominator: one decimal place,
/// halves up; `[z]` for a zero denominator; `[c]` when either is suppressed.
fn expected_rate(n: Option<i64>, d: Option<i64>, per: u128) -> String {
    match (n, d) {
        (Some(_), Some(0)) => "[z]".into(),
        (Some(n), Some(d)) => {
            let (n, d) = (n as u128, d as u128);
            let tenths = (20 * n * per + d) / (2 * d);
            format!("{}.{}", tenths / 10, tenths % 10)
        }
        _ => "[c]".into(),
    }
}

/// Audit `indicators.csv` of an output folder: rebuild from the labels alone what an outsider
/// knows (each quantity's PCN rows add up to the `ALL` row; a falls admission is an emergency
/// admission, a death in hospital or after 3+ admissions is a death, a death is one of the
/// people), bound every suppressed count and every small difference (emergency minus falls
/// admissions, people minus deaths, deaths minus those in hospital, deaths minus those with 3+
/// admissions) by LP, and check every rate is what its published numerator and denominator give.
pub fn audit_indicators(out: &Path, round_to: i64) -> Findings {
    let path = out.join("indicators.csv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap_or_default(),
        "pcn_code,indicator,numerator,denominator,rate,unit,ics_rate"
    );
    // Per area (in file order): the six quantities as printed, and the rates.
    let mut areas: Vec<String> = Vec::new();
    let mut printed: Vec<[Option<Option<i64>>; NQ]> = Vec::new();
    let mut rates: Vec<(usize, usize, String, String)> = Vec::new();
    for line in lines {
        let f = split_csv(line);
        assert_eq!(f.len(), 7, "{line}");
        if areas.last() != Some(&f[0]) {
            areas.push(f[0].clone());
            printed.push([None; NQ]);
        }
        let a = areas.len() - 1;
        let k = INDICATOR_ROWS
            .iter()
            .position(|r| r.0 == f[1])
            .unwrap_or_else(|| panic!("unknown indicator {}", f[1]));
        let (_, nq, dq, _) = INDICATOR_ROWS[k];
        for (q, v) in [(nq, &f[2]), (dq, &f[3])] {
            let v = match v.as_str() {
                "[c]" => None,
                v => Some(v.parse::<i64>().unwrap_or_else(|_| panic!("{line}"))),
            };
            match printed[a][q] {
                None => printed[a][q] = Some(v),
                Some(old) => assert_eq!(
                    old, v,
                    "{} printed twice differently: {line}",
                    QUANTITIES[q]
                ),
            }
        }
        rates.push((a, k, f[4].clone(), f[6].clone()));
    }
    let all = areas
        .iter()
        .position(|a| a == "ALL")
        .expect("indicators ALL rows");
    assert_eq!(all, areas.len() - 1, "the ALL rows come last");
    // Rates: from the published cells, suppressed with either of them.
    let value = |a: usize, q: usize| printed[a][q].expect("every quantity printed");
    for (a, k, rate, ics) in &rates {
        let (name, nq, dq, per) = INDICATOR_ROWS[*k];
        let (n, d) = (value(*a, nq), value(*a, dq));
        let expected = |a: usize| {
            if name.ends_with("_age_standardised") {
                let bands = |first: usize| -> Vec<Option<i64>> {
                    (0..6).map(|b| value(a, first + b)).collect()
                };
                expected_standardised(&bands(PEOPLE_BANDS), &bands(FALLS_BANDS), per)
            } else {
                expected_rate(value(a, nq), value(a, dq), per)
            }
        };
        if round_to <= 1 {
            assert_eq!(*rate, expected(*a), "{} {name}", areas[*a]);
            assert_eq!(*ics, expected(all), "{} {name} ICS rate", areas[*a]);
        } else if name.ends_with("_age_standardised") {
            assert_eq!(
                *rate == "[c]",
                expected(*a) == "[c]",
                "{} {name}",
                areas[*a]
            );
        } else {
            assert_eq!(
                rate == "[c]",
                n.is_none() || d.is_none(),
                "{} {name}",
                areas[*a]
            );
        }
    }
    // Variables: NQ per area.
    let var = |a: usize, q: usize| a * NQ + q;
    let bounds: Vec<(f64, f64)> = (0..areas.len() * NQ)
        .map(|i| match value(i / NQ, i % NQ) {
            None => (1.0, f64::INFINITY),
            Some(v) if round_to <= 1 => (v as f64, v as f64),
            Some(0) => (0.0, 0.0),
            Some(v) => (
                ((v - (round_to - 1) / 2).max(8)) as f64,
                (v + round_to / 2) as f64,
            ),
        })
        .collect();
    let mut eqs: Vec<Vec<(usize, f64)>> = Vec::new();
    for q in 0..NQ {
        let mut e: Vec<(usize, f64)> = (0..all).map(|a| (var(a, q), 1.0)).collect();
        e.push((var(all, q), -1.0));
        eqs.push(e);
    }
    // The age bands add up to the people and to the falls admissions of each area.
    for a in 0..areas.len() {
        for (total, first) in [(0, PEOPLE_BANDS), (2, FALLS_BANDS)] {
            let mut e: Vec<(usize, f64)> = (0..6).map(|b| (var(a, first + b), 1.0)).collect();
            e.push((var(a, total), -1.0));
            eqs.push(e);
        }
    }
    let mut geqs: Vec<Vec<(usize, f64)>> = Vec::new();
    for a in 0..areas.len() {
        for (w, p) in PARTS {
            geqs.push(vec![(var(a, w), 1.0), (var(a, p), -1.0)]);
        }
    }
    let solve = |objective: &[(usize, f64)], maximize: bool| {
        lp_optimum(
            &bounds,
            &eqs,
            &geqs,
            objective,
            maximize,
            "published indicators",
        )
    };
    let pinned = |objective: &[(usize, f64)]| -> Option<i64> {
        let lo = solve(objective, false).unwrap_or(0.0);
        let hi = solve(objective, true)?;
        let (lo, hi) = ((lo - 1e-6).ceil(), (hi + 1e-6).floor());
        (lo >= hi).then_some(lo as i64)
    };
    let width = min_interval(out).max(1);
    let mut f = Findings::default();
    for (i, b) in bounds.iter().enumerate() {
        if b.1 != f64::INFINITY {
            continue;
        }
        f.suppressed += 1;
        let (file, row, col) = (
            "indicators.csv".to_string(),
            areas[i / NQ].clone(),
            QUANTITIES[i % NQ].to_string(),
        );
        let lo =
            (solve(&[(i, 1.0)], false).expect("a minimum is bounded below") - 1e-6).ceil() as i64;
        match solve(&[(i, 1.0)], true).map(|hi| (hi + 1e-6).floor() as i64) {
            Some(hi) if lo >= hi && lo != 0 => f.pinned.push((file, row, col, lo)),
            Some(hi) if hi - lo < width => f.narrow.push((file, row, col, lo, hi)),
            Some(hi) => {
                f.widest = f.widest.max(hi - lo);
                *f.widths.entry(hi - lo).or_default() += 1;
            }
            None => f.unbounded += 1,
        }
    }
    for (a, area) in areas.iter().enumerate() {
        for (w, p) in PARTS {
            let (x, y) = (var(a, w), var(a, p));
            let v = if bounds[x].0 == bounds[x].1 && bounds[y].0 == bounds[y].1 {
                Some((bounds[x].0 - bounds[y].0) as i64)
            } else {
                pinned(&[(x, 1.0), (y, -1.0)])
            };
            if let Some(v) = v.filter(|v| (1..=7).contains(v)) {
                f.pinned.push((
                    "indicators.csv".into(),
                    area.clone(),
                    format!("{} minus {}", QUANTITIES[w], QUANTITIES[p]),
                    v,
                ));
            }
        }
    }
    f
}

/// The optimum of `objective` (sparse: variable, coefficient) over variables within `bounds`,
/// with each of `eqs` = 0 and each of `geqs` >= 0 (sparse rows); `None` when unbounded. The
/// tables that gave the system are `what`, named if it has no solution.
fn lp_optimum(
    bounds: &[(f64, f64)],
    eqs: &[Vec<(usize, f64)>],
    geqs: &[Vec<(usize, f64)>],
    objective: &[(usize, f64)],
    maximize: bool,
    what: &str,
) -> Option<f64> {
    let dir = if maximize {
        OptimizationDirection::Maximize
    } else {
        OptimizationDirection::Minimize
    };
    let mut p = Problem::new(dir);
    let vars: Vec<_> = bounds
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let c = objective.iter().find(|(j, _)| *j == i).map_or(0.0, |x| x.1);
            p.add_var(c, b)
        })
        .collect();
    for (e, op) in eqs
        .iter()
        .map(|e| (e, ComparisonOp::Eq))
        .chain(geqs.iter().map(|e| (e, ComparisonOp::Ge)))
    {
        p.add_constraint(
            e.iter().map(|&(i, c)| (vars[i], c)).collect::<Vec<_>>(),
            op,
            0.0,
        );
    }
    match p.solve() {
        Ok(microlp::SolveOutcome::Solution(s)) => Some(s.objective()),
        Ok(microlp::SolveOutcome::Interrupted(_)) => panic!("LP interrupted"),
        Err(microlp::Error::Unbounded) => None,
        Err(e) => panic!("{what} are inconsistent: {e}"),
    }
}
