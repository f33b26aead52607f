//! An auditor that sees only what strata publishes: it reads `summary.csv`, `equity.csv` and
//! `pcn_profile.csv` of an output folder, rebuilds every relation an outsider can see from the
//! labels alone (row totals, PCN rows adding up to the `ALL` rows, each equity dimension adding
//! up to `ALL`, the summary's `ALL` rows equal to the equity table's `ALL` and IMD-quintile-1
//! rows, Core20 at most everyone; in the profile, each PCN's practices, age bands, sexes and IMD
//! quintiles adding up to its `all` row, equal to its summary rows, and the PCNs adding up to the
//! `ALL` rows, equal to the equity table's), and bounds every suppressed cell, and every small difference "everyone minus
//! Core20", from below and above by linear programming (microlp). Rounded tables
//! (`--publication`) are read as intervals: a published `v` is anything that rounds to it.
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
}

struct Sheet {
    rows: Vec<(String, String)>,
    /// Per row, five cells: `None` when suppressed.
    cells: Vec<[Option<i64>; 5]>,
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

fn read(path: &Path) -> Sheet {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.ends_with("fit,mild,moderate,severe,total"),
        "{header}"
    );
    let mut s = Sheet {
        rows: Vec::new(),
        cells: Vec::new(),
    };
    for line in lines {
        let fields = split_csv(line);
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        assert_eq!(f.len(), 7, "{line}");
        s.rows.push((f[0].to_string(), f[1].to_string()));
        let mut c = [None; 5];
        for k in 0..5 {
            c[k] = match f[2 + k] {
                "[c]" => None,
                v => Some(v.parse::<i64>().unwrap_or_else(|_| panic!("{line}"))),
            };
        }
        s.cells.push(c);
    }
    s
}

/// Audit the published tables of one output folder. `round_to` is the rounding applied (1 for
/// none, 5 for `--publication`).
pub fn audit_folder(out: &Path, round_to: i64) -> Findings {
    let summary = read(&out.join("summary.csv"));
    let equity = read(&out.join("equity.csv"));
    let profile_path = out.join("pcn_profile.csv");
    let profile = if profile_path.exists() {
        read(&profile_path)
    } else {
        Sheet {
            rows: Vec::new(),
            cells: Vec::new(),
        }
    };
    // Variables: every cell of both tables, summary first.
    let mut bounds: Vec<(f64, f64)> = Vec::new();
    let mut names: Vec<(String, String, String)> = Vec::new();
    let cols = ["fit", "mild", "moderate", "severe", "total"];
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
                    None => (0.0, f64::INFINITY),
                    Some(v) if round_to <= 1 => (*v as f64, *v as f64),
                    Some(v) => (
                        ((v - (round_to - 1) / 2).max(0)) as f64,
                        (v + round_to / 2) as f64,
                    ),
                });
                names.push((
                    file.to_string(),
                    format!("{}/{}", sheet.rows[r].0, sheet.rows[r].1),
                    cols[k].to_string(),
                ));
            }
        }
    }
    let cell = |t: usize, r: usize, k: usize| base[t] + r * 5 + k;
    // Equalities sum(coef * x) = 0, and inequalities sum(coef * x) >= 0.
    let mut eqs: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut geqs: Vec<Vec<(usize, f64)>> = Vec::new();
    for (t, sheet) in [&summary, &equity, &profile].iter().enumerate() {
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
    // Profile: within each PCN (and ALL), each dimension's groups add up to the `all` row; each
    // group's PCN rows add up to its ALL row; PCN rows equal the summary's, ALL rows the
    // equity table's.
    let p_row = |a: &str, g: &str| profile.rows.iter().position(|(x, y)| x == a && y == g);
    let mut blocks: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (r, (a, g)) in profile.rows.iter().enumerate() {
        if let Some((dim, _)) = g.split_once('=') {
            blocks.entry((a.as_str(), dim)).or_default().push(r);
            if a != "ALL" {
                groups.entry(g.as_str()).or_default().push(r);
            }
        }
    }
    for ((a, _), parts) in &blocks {
        let all = p_row(a, "all").expect("profile all row");
        for k in 0..5 {
            let mut e: Vec<(usize, f64)> = parts.iter().map(|&r| (cell(2, r, k), 1.0)).collect();
            e.push((cell(2, all, k), -1.0));
            eqs.push(e);
        }
    }
    for (g, parts) in &groups {
        if let Some(total) = p_row("ALL", g) {
            for k in 0..5 {
                let mut e: Vec<(usize, f64)> =
                    parts.iter().map(|&r| (cell(2, r, k), 1.0)).collect();
                e.push((cell(2, total, k), -1.0));
                eqs.push(e);
            }
        }
    }
    for (r, (a, g)) in profile.rows.iter().enumerate() {
        let other = if a == "ALL" && g == "all" {
            Some((0, s_all("all")))
        } else if a == "ALL" {
            let (dim, v) = g.split_once('=').unwrap();
            equity
                .rows
                .iter()
                .position(|(d, gg)| d == dim && (gg == v || gg.split(' ').next() == Some(v)))
                .map(|q| (1, q))
        } else if g == "all" {
            summary
                .rows
                .iter()
                .position(|(p, gg)| p == a && gg == "all")
                .map(|q| (0, q))
        } else if g == "imd_quintile=1" {
            summary
                .rows
                .iter()
                .position(|(p, gg)| p == a && gg == "core20")
                .map(|q| (0, q))
        } else {
            None
        };
        if let Some((t, q)) = other {
            for k in 0..5 {
                eqs.push(vec![(cell(2, r, k), 1.0), (cell(t, q, k), -1.0)]);
            }
        }
    }
    let solve = |objective: &[(usize, f64)], maximize: bool| -> Option<f64> {
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
        for e in &eqs {
            p.add_constraint(
                e.iter().map(|&(i, c)| (vars[i], c)).collect::<Vec<_>>(),
                ComparisonOp::Eq,
                0.0,
            );
        }
        for e in &geqs {
            p.add_constraint(
                e.iter().map(|&(i, c)| (vars[i], c)).collect::<Vec<_>>(),
                ComparisonOp::Ge,
                0.0,
            );
        }
        match p.solve() {
            Ok(microlp::SolveOutcome::Solution(s)) => Some(s.objective()),
            Ok(microlp::SolveOutcome::Interrupted(_)) => panic!("LP interrupted"),
            Err(microlp::Error::Unbounded) => None,
            Err(e) => panic!("published tables are inconsistent: {e}"),
        }
    };
    let pinned = |objective: &[(usize, f64)]| -> Option<i64> {
        let lo = solve(objective, false).unwrap_or(0.0);
        let hi = solve(objective, true)?;
        let (lo, hi) = ((lo - 1e-6).ceil(), (hi + 1e-6).floor());
        (lo >= hi).then_some(lo as i64)
    };
    let mut f = Findings::default();
    for (i, b) in bounds.iter().enumerate() {
        if b.1 != f64::INFINITY {
            continue;
        }
        f.suppressed += 1;
        if let Some(v) = pinned(&[(i, 1.0)]).filter(|&v| v != 0) {
            let (file, row, col) = names[i].clone();
            f.pinned.push((file, row, col, v));
        }
    }
    // A small difference "everyone minus Core20" is itself a count that must not be pinned.
    for (a, c) in differences {
        if bounds[a].1 == f64::INFINITY || bounds[c].1 == f64::INFINITY || round_to > 1 {
            if let Some(v) = pinned(&[(a, 1.0), (c, -1.0)]).filter(|v| (1..=7).contains(v)) {
                f.pinned.push((
                    "summary.csv".into(),
                    format!("{} minus core20", names[a].1),
                    names[a].2.clone(),
                    v,
                ));
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
    f
}

/// Fail the test when the auditor pins any suppressed cell of the folder's tables.
pub fn assert_protected(out: &Path, round_to: i64) {
    let f = audit_folder(out, round_to);
    assert!(
        f.pinned.is_empty(),
        "{}: recoverable cells {:?}",
        out.display(),
        f.pinned
    );
}
