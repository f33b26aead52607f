//! What a care coordinator opens, end to end on the committed 2,000-patient fixture (four PCNs
//! too small for a published profile) and on a synthetic cohort whose three PCNs have one: the
//! PCN workbook (a sheet per practice after a protected summary, frozen header, filters, the
//! as-of date as its creation date), the lists' CSV files as Excel reads them (UTF-8 with a
//! byte order mark), the plain-words `why` column, and the self-contained HTML page (well
//! formed, the protected numbers of `summary.csv` and `pcn_profile.csv`, the top of the list with
//! reasons; and, when Debian's `chromium` is installed, rendered headless to a PNG that is not
//! blank). Every number on a page (outside the top of the list) and on a Summary sheet is a
//! published cell, a share worked out from them, or a fixed number of the page. Every run here
//! also passes the outside disclosure auditor.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use common::*;

const PCNS: [&str; 4] = ["U10000", "U10037", "U10074", "U10111"];

/// One scoring run of the fixture, shared by the tests of this file.
fn run() -> &'static Path {
    static OUT: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &OUT.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let o = score_into(&fixtures().join("cohort-2000"), &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        (d, out)
    })
    .1
}

/// One scoring run of a synthetic cohort of 6,000 patients in three PCNs (about 330 eligible
/// people each, so each has a profile), shared by the tests of this file.
fn synthetic() -> &'static Path {
    static OUT: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &OUT.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let cohort = d.path().join("cohort");
        let c = cohort.to_str().unwrap();
        let o = strata(&[
            "synth",
            "--patients",
            "6000",
            "--pcns",
            "3",
            "--seed",
            "42",
            "--out",
            c,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = d.path().join("out");
        let o = score_into(&cohort, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        (d, out)
    })
    .1
}

/// The PCN codes of a run's lists (its PCN folders), each checked to hold a workbook and a page:
/// the fixture's four, the synthetic run's three, so no loop over them can pass by running
/// zero times.
fn pcns(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out.join("lists"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    let want = if out == run() { 4 } else { 3 };
    assert_eq!(v.len(), want, "{v:?}");
    for p in &v {
        for ext in ["xlsx", "html"] {
            let f = out.join(format!("lists/{p}/{p}.{ext}"));
            assert!(f.is_file(), "{}", f.display());
        }
    }
    v
}

/// The entries of a zip file (stored or deflated), by name, found through its central
/// directory as any zip reader does.
fn unzip(bytes: &[u8]) -> BTreeMap<String, String> {
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let eocd = (0..=bytes.len() - 22)
        .rev()
        .find(|&i| u32_at(i) == 0x0605_4b50)
        .expect("end of central directory");
    let (entries, mut at) = (u16_at(eocd + 10), u32_at(eocd + 16) as usize);
    let mut out = BTreeMap::new();
    for _ in 0..entries {
        assert_eq!(u32_at(at), 0x0201_4b50, "central directory entry");
        let method = u16_at(at + 10);
        let crc = u32_at(at + 16);
        let csize = u32_at(at + 20) as usize;
        let usize_ = u32_at(at + 24) as usize;
        let (nlen, xlen, clen) = (u16_at(at + 28), u16_at(at + 30), u16_at(at + 32));
        let local = u32_at(at + 42) as usize;
        let name = String::from_utf8(bytes[at + 46..at + 46 + nlen].to_vec()).unwrap();
        assert_eq!(u32_at(local), 0x0403_4b50, "local header of {name}");
        let start = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        let data = &bytes[start..start + csize];
        let mut text = String::new();
        match method {
            0 => text = String::from_utf8(data.to_vec()).unwrap(),
            8 => {
                flate2::read::DeflateDecoder::new(data)
                    .read_to_string(&mut text)
                    .unwrap();
            }
            m => panic!("zip method {m}"),
        }
        // The sizes and CRC-32 the directory records are those of the data.
        assert_eq!(text.len(), usize_, "size of {name}");
        let mut c = flate2::Crc::new();
        c.update(text.as_bytes());
        assert_eq!(c.sum(), crc, "CRC-32 of {name}");
        // The local header says the same as the directory.
        assert_eq!(
            (
                u32_at(local + 14),
                u32_at(local + 18) as usize,
                u32_at(local + 22) as usize
            ),
            (crc, csize, usize_),
            "local header of {name}"
        );
        out.insert(name, text);
        at += 46 + nlen + xlen + clen;
    }
    out
}

/// The text between `open` and the next `close`, for every occurrence.
fn between<'a>(s: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(open) {
        rest = &rest[i + open.len()..];
        let j = rest.find(close).unwrap();
        out.push(&rest[..j]);
        rest = &rest[j + close.len()..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The shared strings of a workbook, in index order.
fn shared_strings(zip: &BTreeMap<String, String>) -> Vec<String> {
    zip.get("xl/sharedStrings.xml")
        .map(|x| {
            between(x, "<si>", "</si>")
                .into_iter()
                .map(|si| {
                    between(si, "<t", "</t>")
                        .into_iter()
                        .map(|t| unescape(&t[t.find('>').unwrap() + 1..]))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A worksheet's rows as text cells (numbers as written, shared and inline strings as their
/// text), each cell at its column (blanks between are empty strings).
fn sheet_rows(xml: &str, shared: &[String]) -> Vec<Vec<String>> {
    let column = |c: &str| -> usize {
        let r = &c[c.find("r=\"").unwrap() + 3..];
        r.chars()
            .take_while(|ch| ch.is_ascii_uppercase())
            .fold(0, |n, ch| n * 26 + (ch as usize - 'A' as usize + 1))
            - 1
    };
    between(xml, "<row ", "</row>")
        .into_iter()
        .map(|row| {
            let mut cells = Vec::new();
            for c in row.split("<c ").skip(1) {
                let head = &c[..c.find('>').unwrap()];
                let text = if head.ends_with('/') {
                    String::new()
                } else if head.contains("t=\"s\"") {
                    let k: usize = between(c, "<v>", "</v>")[0].parse().unwrap();
                    shared[k].clone()
                } else if head.contains("t=\"inlineStr\"") {
                    between(c, "<t", "</t>")
                        .first()
                        .map(|t| unescape(&t[t.find('>').unwrap() + 1..]))
                        .unwrap_or_default()
                } else {
                    between(c, "<v>", "</v>")
                        .first()
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                };
                let k = column(head);
                cells.resize(k, String::new());
                cells.push(text);
            }
            cells
        })
        .collect()
}

/// A published table as `(label a, label b) -> cells`, with its header's count columns.
fn table(out: &Path, file: &str, header: &str) -> BTreeMap<(String, String), Vec<String>> {
    let text = std::fs::read_to_string(out.join(file)).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), header);
    let n = header.split(',').count();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), n, "{l}");
            (
                (f[0].to_string(), f[1].to_string()),
                f[2..].iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

/// `summary.csv` as `(pcn, group) -> five cells`.
fn summary(out: &Path) -> BTreeMap<(String, String), Vec<String>> {
    table(
        out,
        "summary.csv",
        "pcn_code,group,fit,mild,moderate,severe,total",
    )
}

/// `pcn_profile.csv` as `(pcn, group) -> [listed, not_listed, eligible]`.
fn profile(out: &Path) -> BTreeMap<(String, String), Vec<String>> {
    table(
        out,
        "pcn_profile.csv",
        "pcn_code,group,listed,not_listed,eligible",
    )
}

/// Check every PCN workbook of a run against its list and published tables.
fn check_workbooks(out: &Path) {
    let (summ, prof) = (summary(out), profile(out));
    for pcn in pcns(out) {
        let pcn = pcn.as_str();
        let list = read_csv(&out.join(format!("lists/{pcn}/{pcn}.csv")));
        let zip = unzip(&std::fs::read(out.join(format!("lists/{pcn}/{pcn}.xlsx"))).unwrap());
        let shared = shared_strings(&zip);
        let book = &zip["xl/workbook.xml"];
        let names: Vec<String> = between(book, "<sheet name=\"", "\"")
            .into_iter()
            .map(unescape)
            .collect();
        let practices: std::collections::BTreeSet<String> =
            strings(&list, "practice_code").into_iter().collect();
        let mut want = vec!["Summary".to_string()];
        want.extend(practices.iter().cloned());
        assert_eq!(names, want, "{pcn}");
        // The creation date is the as-of date, so reruns are byte-identical.
        assert!(
            zip["docProps/core.xml"].contains("2025-04-01T00:00:00Z</dcterms:created>"),
            "{}",
            zip["docProps/core.xml"]
        );
        let ids = strings(&list, "patient_id");
        let prac = strings(&list, "practice_code");
        let why = strings(&list, "why");
        for (k, name) in names.iter().enumerate() {
            let xml = &zip[&format!("xl/worksheets/sheet{}.xml", k + 1)];
            assert!(
                xml.contains("state=\"frozen\""),
                "{pcn}/{name}: frozen header"
            );
            // The filter starts at the header: row 1, or row 2 under the synthetic models'
            // caveat on a practice sheet.
            let header_row = if k == 0 { 1 } else { 2 };
            assert!(
                xml.contains(&format!("<autoFilter ref=\"A{header_row}:")),
                "{pcn}/{name}: filter"
            );
            assert!(xml.contains("customWidth=\"1\""), "{pcn}/{name}: widths");
            let rows = sheet_rows(xml, &shared);
            if k == 0 {
                check_summary_sheet(pcn, &rows, &summ, &prof);
                continue;
            }
            // A practice sheet: (the shipped cards being synthetic) a line saying so above the
            // header, then that practice's rows of the list, in rank order.
            assert!(
                rows[0][0].starts_with("Risk models trained on synthetic data"),
                "{pcn}/{name}: the caveat first"
            );
            let (notes, rows): (Vec<Vec<String>>, Vec<Vec<String>>) =
                rows.into_iter().partition(|r| {
                    r.first()
                        .is_some_and(|c| c.starts_with("Risk models trained on synthetic data"))
                });
            assert_eq!(notes.len(), 1, "{pcn}/{name}: the synthetic models' note");
            assert_eq!(
                rows[0][..7],
                [
                    "rank",
                    "change",
                    "patient_id",
                    "age_band",
                    "sex",
                    "efi_category",
                    "why"
                ]
            );
            let want: Vec<usize> = (0..list.height()).filter(|&r| prac[r] == *name).collect();
            assert_eq!(rows.len() - 1, want.len(), "{pcn}/{name}");
            for (row, &r) in rows[1..].iter().zip(&want) {
                assert_eq!(row[0], (r + 1).to_string());
                assert_eq!(row[2], ids[r]);
                assert_eq!(row[6], why[r]);
            }
        }
    }
}

/// The Summary sheet, every cell: the PCN's rows of summary.csv (everyone, Core20: eligible and
/// the eFI categories) beside the matching rows of pcn_profile.csv (listed, not listed), then the
/// PCN's other profile rows, then notes whose only numbers are the as-of date, the minimum age,
/// the range of `[c]` (1-7) and, for a PCN without a profile, its threshold.
fn check_summary_sheet(
    pcn: &str,
    rows: &[Vec<String>],
    summ: &BTreeMap<(String, String), Vec<String>>,
    prof: &BTreeMap<(String, String), Vec<String>>,
) {
    assert_eq!(
        rows[0],
        [
            "dimension",
            "group",
            "eligible",
            "listed",
            "not_listed",
            "fit",
            "mild",
            "moderate",
            "severe"
        ]
    );
    let key = |g: &str| (pcn.to_string(), g.to_string());
    let mut want = Vec::new();
    for (group, label, p) in [
        ("all", "everyone", "all"),
        ("core20", "IMD quintile 1", "imd_quintile=1"),
    ] {
        let s = &summ[&key(group)];
        let mut row = vec![group.to_string(), label.to_string(), s[4].clone()];
        match prof.get(&key(p)) {
            Some(c) => row.extend([c[0].clone(), c[1].clone()]),
            None => row.extend([String::new(), String::new()]),
        }
        row.extend(s[..4].iter().cloned());
        want.push(row);
    }
    assert_eq!(rows[1..3], want[..], "{pcn}: the summary rows");
    let mut want: Vec<Vec<String>> = prof
        .iter()
        .filter(|((x, g), _)| x == pcn && g != "all")
        .map(|((_, g), c)| {
            let (d, v) = g.split_once('=').unwrap();
            [d, v, c[2].as_str(), c[0].as_str(), c[1].as_str()]
                .map(str::to_string)
                .to_vec()
        })
        .collect();
    let n = want.len();
    let mut got = rows[3..3 + n].to_vec();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{pcn}: the profile rows");
    // The notes, one cell each.
    let notes: Vec<&str> = rows[3 + n..]
        .iter()
        .map(|r| match &r[..] {
            [note] => note.as_str(),
            r => panic!("{pcn}: a row that is neither a count nor a note: {r:?}"),
        })
        .collect();
    let min_age = strata::lists::ListRules::default().min_age;
    let rule = notes[0]
        .strip_prefix(&format!(
            "PCN {pcn}, as of {AS_OF}: eligible people (alive, aged {min_age}+); the list takes "
        ))
        .unwrap_or_else(|| panic!("{pcn}: {}", notes[0]));
    assert!(digit_runs(rule).is_empty(), "{pcn}: {rule}");
    // The range of `[c]`; without a profile, its threshold; then the practice sheets.
    let threshold = strata::tables::PROFILE_MIN_ELIGIBLE.to_string();
    let mut want: Vec<Vec<&str>> = vec![vec!["1", "7"]];
    if n == 0 {
        want.push(vec![threshold.as_str()]);
    }
    want.push(vec![]);
    let got: Vec<Vec<&str>> = notes[1..].iter().map(|n| digit_runs(n)).collect();
    assert_eq!(got, want, "{pcn}: {notes:?}");
}

#[test]
fn the_workbook_has_a_protected_summary_then_a_sheet_per_practice() {
    check_workbooks(run());
    check_workbooks(synthetic());
    assert!(
        profile(run()).is_empty(),
        "the fixture's PCNs are too small"
    );
    assert!(profile(synthetic()).len() > 3 * 15);
}

#[test]
fn list_csv_files_open_in_excel_as_utf8_and_the_tables_stay_plain() {
    let out = synthetic();
    for pcn in pcns(out) {
        let bytes = std::fs::read(out.join(format!("lists/{pcn}/{pcn}.csv"))).unwrap();
        assert_eq!(&bytes[..3], b"\xef\xbb\xbf", "{pcn}: byte order mark");
        assert!(bytes[3..].starts_with(b"rank,change,patient_id,"));
        // Readers skip it: the first column is `rank`, not "\u{feff}rank".
        let df = read_csv(&out.join(format!("lists/{pcn}/{pcn}.csv")));
        assert_eq!(df.get_column_names()[0].as_str(), "rank");
    }
    for table in ["summary.csv", "equity.csv", "pcn_profile.csv"] {
        let bytes = std::fs::read(out.join(table)).unwrap();
        assert!(bytes[0].is_ascii_alphabetic(), "{table} starts plain");
    }
}

#[test]
fn each_row_says_why_in_plain_words() {
    let out = run();
    let mut seen_admissions = false;
    let mut seen_model = false;
    for pcn in PCNS {
        let list = read_csv(&out.join(format!("lists/{pcn}/{pcn}.csv")));
        let why = strings(&list, "why");
        let cat = strings(&list, "efi_category");
        let def = strings(&list, "efi_deficits");
        let adm = strings(&list, "emergency_admissions_12m");
        let present = strings(&list, "efi_deficits_present");
        let band = strings(&list, "emergency_admission_band");
        for r in 0..list.height() {
            let w = &why[r];
            assert!(
                w.starts_with(&format!("{} frailty: {} of 36 deficits", cat[r], def[r])),
                "{w}"
            );
            // The deficits it names are ones the patient has.
            let named = w.split(';').next().unwrap();
            let named = named
                .split_once(", incl. ")
                .or_else(|| named.split_once("deficits: "))
                .map(|x| x.1)
                .unwrap_or("");
            let have = present[r].to_lowercase();
            for n in named.split(", ").filter(|n| !n.is_empty()) {
                assert!(have.contains(n), "{n} not in {have}");
            }
            let a: u32 = adm[r].parse().unwrap();
            match a {
                0 => assert!(!w.contains("emergency admission in"), "{w}"),
                1 => assert!(w.contains("; 1 emergency admission in 12 months"), "{w}"),
                n => {
                    assert!(
                        w.contains(&format!("; {n} emergency admissions in 12 months")),
                        "{w}"
                    )
                }
            }
            seen_admissions |= a > 0;
            // Bands by the card's cut-offs (the default), said with the cut-off.
            let said = |band: &str, pct: u32| {
                w.split("; ").any(|part| {
                    part.starts_with(&format!("{band} emergency admission risk (risk from "))
                        && part.ends_with(&format!(
                            "%, the list population's top {pct}% in the card's validation year)"
                        ))
                })
            };
            let top = said("very high", 1);
            assert_eq!(top, band[r] == "very_high", "{w}");
            let high = said("high", 5);
            assert_eq!(high, band[r] == "high", "{w}");
            seen_model |= top || high;
        }
    }
    assert!(seen_admissions && seen_model, "the fixture exercises both");
}

/// Every element closed in order (void elements aside), attributes quoted.
fn assert_well_formed(html: &str) {
    const VOID: [&str; 4] = ["meta", "br", "img", "link"];
    let body = html.strip_prefix("<!DOCTYPE html>\n").expect("doctype");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find('<') {
        let text = &rest[..i];
        assert!(!text.contains('>'), "stray > in {text:?}");
        rest = &rest[i + 1..];
        let j = rest.find('>').expect("tag closed");
        let tag = &rest[..j];
        rest = &rest[j + 1..];
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name, "</{name}> closes <{open}>");
            continue;
        }
        let name = tag.split([' ', '/']).next().unwrap().to_string();
        if !(tag.ends_with('/') || VOID.contains(&name.as_str())) {
            stack.push(name);
        }
        if stack.last().is_some_and(|n| n == "style") {
            let k = rest.find("</style>").unwrap();
            rest = &rest[k..];
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

/// The cells of the HTML row `<tr data-dim=.. data-group=..>`, by `data-col`.
fn html_row(html: &str, dim: &str, group: &str) -> BTreeMap<String, String> {
    let row = between(
        html,
        &format!("<tr data-dim=\"{dim}\" data-group=\"{group}\">"),
        "</tr>",
    );
    assert_eq!(row.len(), 1, "one row for {dim}={group}");
    between(row[0], "<td class=\"n\" data-col=\"", "</td>")
        .into_iter()
        .map(|c| {
            let (k, v) = c.split_once("\">").unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Check every PCN page of a run against its list and published tables.
fn check_pages(out: &Path) {
    let (summ, prof) = (summary(out), profile(out));
    for pcn in pcns(out) {
        let pcn = pcn.as_str();
        let html = std::fs::read_to_string(out.join(format!("lists/{pcn}/{pcn}.html"))).unwrap();
        assert_well_formed(&html);
        for network in ["src=", "href=", "url(", "@import", "<script"] {
            assert!(!html.contains(network), "{pcn}: {network}");
        }
        assert!(html.contains("<svg"), "charts");
        // By eFI category: the PCN's summary rows.
        for group in ["all", "core20"] {
            let got = html_row(&html, "summary", group);
            let want = &summ[&(pcn.to_string(), group.to_string())];
            for (k, name) in ["fit", "mild", "moderate", "severe", "total"]
                .iter()
                .enumerate()
            {
                assert_eq!(got[*name], want[k], "{pcn} {group} {name}");
            }
        }
        // The top of the list, with reasons (every PCN, with a profile or not).
        let list = read_csv(&out.join(format!("lists/{pcn}/{pcn}.csv")));
        let top = between(&html, "<table id=\"top\">", "</table>");
        let rows = between(top[0], "<tr><td>", "</tr>");
        assert_eq!(rows.len(), list.height().min(20));
        let (ids, why) = (strings(&list, "patient_id"), strings(&list, "why"));
        for (k, r) in rows.iter().enumerate() {
            let cells: Vec<String> = r.split("</td><td>").map(unescape).collect();
            assert_eq!(cells[0], (k + 1).to_string());
            assert_eq!(cells[1], ids[k]);
            assert_eq!(cells[6].trim_end_matches("</td>"), why[k]);
        }
        // The make-up: the PCN's profile rows, or a sentence saying why there are none.
        let mine: Vec<_> = prof.iter().filter(|((x, _), _)| x == pcn).collect();
        if mine.is_empty() {
            assert!(
                html.contains("is not shown for a PCN with fewer than 100 eligible people"),
                "{pcn}"
            );
            continue;
        }
        let mut practices = 0;
        for ((_, g), c) in &mine {
            let Some((dim, group)) = g.split_once('=') else {
                let listed = between(&html, "<span id=\"listed\">", "</span>");
                assert_eq!(listed, [c[0].as_str()], "{pcn}: listed");
                continue;
            };
            practices += (dim == "practice") as usize;
            let got = html_row(&html, dim, group);
            assert_eq!(
                [&got["listed"], &got["not_listed"], &got["eligible"]],
                [&c[0], &c[1], &c[2]],
                "{pcn} {g}"
            );
        }
        assert!(practices >= 3);
    }
}

/// A published cell's count: `None` for `[c]`.
fn count_of(cell: &str) -> Option<u64> {
    (cell != "[c]").then(|| {
        cell.parse()
            .unwrap_or_else(|_| panic!("not a count: {cell:?}"))
    })
}

/// `part` of `whole` in %, one decimal, worked out as the page does (`html::share`).
fn share(part: Option<u64>, whole: Option<u64>) -> Option<f64> {
    match (part, whole) {
        (Some(p), Some(w)) if w > 0 => Some((p as f64 * 1000.0 / w as f64).round() / 10.0),
        _ => None,
    }
}

/// A share as the page shows it (`html::pct_text`): `–` when a count it needs is not shown.
fn pct_text(p: Option<f64>) -> String {
    p.map_or_else(|| "–".to_string(), |p| format!("{p:.1}%"))
}

/// The runs of digits in `s`, in order.
fn digit_runs(s: &str) -> Vec<&str> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|r| !r.is_empty())
        .collect()
}

/// Cut every `open` ... `close` (both included) out of `s`; the pieces cut, in order.
fn cut(s: &mut String, open: &str, close: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(i) = s.find(open) {
        let j = s[i..]
            .find(close)
            .unwrap_or_else(|| panic!("{open} not closed"));
        let j = i + j + close.len();
        out.push(s[i..j].to_string());
        s.replace_range(i..j, "");
    }
    out
}

/// Attribute `name` of a tag (`tag` holds its attributes).
fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    between(tag, &format!(" {name}=\""), "\"")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
}

/// The profile's dimensions in page order, with their headings (`html::dimension_title`).
const DIMENSIONS: [(&str, &str); 4] = [
    ("practice", "Practice"),
    ("age_band", "Age band"),
    ("sex", "Sex"),
    ("imd_quintile", "IMD quintile (1 = most deprived, Core20)"),
];

/// The bars of a chart by label, as the page draws them: published cells (`html::bar_chart`),
/// or a group's share of the eligible people and of the list (`html::paired_chart`).
enum Bars {
    Counts(Vec<(String, String)>),
    Shares(Vec<(String, Option<f64>, Option<f64>)>),
}

/// One table of a PCN's page (not the top of its list), every cell: each count the published
/// cell its row (`data-dim`, `data-group`) and column (`data-col`) name, each share worked out
/// from the row's counts as its column's heading says (`–` when one of them is `[c]`). `dim` is
/// `summary` for the rows of summary.csv. Returns the rows' groups in page order, and adds the
/// shares shown as `–` to `dashes`.
fn check_page_table(
    pcn: &str,
    table: &str,
    dim: &str,
    summ: &BTreeMap<(String, String), Vec<String>>,
    prof: &BTreeMap<(String, String), Vec<String>>,
    (eligible, listed): (Option<u64>, Option<u64>),
    dashes: &mut usize,
) -> Vec<String> {
    const CATEGORIES: [&str; 5] = ["fit", "mild", "moderate", "severe", "total"];
    const PROFILE: [&str; 3] = ["listed", "not_listed", "eligible"];
    let heads: Vec<String> = between(table, "<th>", "</th>")
        .into_iter()
        .map(unescape)
        .collect();
    let want_heads: Vec<&str> = match dim {
        "summary" => [&["Group"][..], &CATEGORIES[..]].concat(),
        _ => {
            let title = DIMENSIONS.iter().find(|d| d.0 == dim).unwrap().1;
            vec![
                title,
                "eligible",
                "share of eligible",
                "listed",
                "share of list",
                "not listed",
                "listed of group",
            ]
        }
    };
    assert_eq!(heads, want_heads, "{pcn} {dim}: headings");
    let rows = between(table, "<tr data-dim=\"", "</tr>");
    assert_eq!(table.matches("<tr").count(), rows.len() + 1, "{pcn} {dim}");
    let mut groups = Vec::new();
    for row in rows {
        let (d, rest) = row.split_once("\" data-group=\"").unwrap();
        let (group, rest) = rest.split_once("\">").unwrap();
        let group = unescape(group);
        assert_eq!(d, dim, "{pcn}: a {d} row in the {dim} table");
        let cells: Vec<(&str, String)> = between(rest, "<td", "</td>")
            .into_iter()
            .map(|c| {
                let (a, v) = c.split_once('>').unwrap();
                (a, unescape(v))
            })
            .collect();
        assert_eq!(cells.len(), heads.len(), "{pcn} {dim}={group}");
        let what = format!("{pcn} {dim}={group}");
        let label = match (dim, group.as_str()) {
            ("summary", "all") => "Everyone eligible",
            ("summary", "core20") => "Most deprived fifth (Core20)",
            ("summary", g) => g,
            _ => group.as_str(),
        };
        assert_eq!(cells[0], ("", label.to_string()), "{what}: label");
        let published = match dim {
            "summary" => &summ[&(pcn.to_string(), group.clone())],
            _ => &prof[&(pcn.to_string(), format!("{dim}={group}"))],
        };
        for ((a, v), head) in cells.iter().zip(&heads).skip(1) {
            let what = format!("{what}, {head}");
            if let Some(col) = a.strip_prefix(" class=\"n\" data-col=\"") {
                // A count: the published cell its column names.
                let col = col.strip_suffix('"').unwrap();
                let k = match dim {
                    "summary" => CATEGORIES.iter().position(|c| *c == col),
                    _ => PROFILE.iter().position(|c| *c == col),
                };
                assert_eq!(col.replace('_', " "), *head, "{what}");
                assert_eq!(*v, published[k.unwrap()], "{what}");
                continue;
            }
            // A share, worked out from the counts shown.
            assert_eq!(*a, " class=\"n\"", "{what}");
            assert_ne!(dim, "summary", "{what}: a share of the summary rows");
            let (l, e) = (count_of(&published[0]), count_of(&published[2]));
            let p = match head.as_str() {
                "share of eligible" => share(e, eligible),
                "share of list" => share(l, listed),
                "listed of group" => share(l, e),
                h => panic!("{what}: a share of {h}"),
            };
            assert_eq!(*v, pct_text(p), "{what}");
            *dashes += usize::from(p.is_none());
        }
        groups.push(group);
    }
    groups
}

/// One chart of a PCN's page, every mark: its title, then per bar its label, a bar as long as
/// its value makes it (scaled to the largest, as the page does) and the value written at the
/// bar's end; nothing else.
fn check_chart(pcn: &str, svg: &str, title: &str, bars: &Bars) {
    let open = &svg[..svg.find('>').unwrap()];
    assert_eq!(unescape(attr(open, "aria-label")), title, "{pcn}: chart");
    // The marks in order: (element, attributes, text).
    let mut marks: Vec<(&str, &str, String)> = Vec::new();
    let mut rest = &svg[open.len() + 1..];
    while rest != "</svg>" {
        if let Some(r) = rest.strip_prefix("<rect") {
            let end = r.find("/>").unwrap();
            marks.push(("rect", &r[..end], String::new()));
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix("<text") {
            let (gt, end) = (r.find('>').unwrap(), r.find("</text>").unwrap());
            marks.push(("text", &r[..gt], unescape(&r[gt + 1..end])));
            rest = &r[end + "</text>".len()..];
        } else {
            panic!("{pcn} {title}: not a mark of a chart: {rest}");
        }
    }
    assert_eq!(marks[0].0, "text");
    assert_eq!(marks[0].2, title, "{pcn}: the chart's heading");
    let marks = &marks[1..];
    // A bar from `x0` of length `len`, then its value `shown` at its end.
    let bar = |m: &[(&str, &str, String)], x0: f64, len: f64, shown: &str, what: &str| {
        assert_eq!((m[0].0, m[1].0), ("rect", "text"), "{what}");
        assert_eq!(attr(m[0].1, "width"), format!("{len:.1}"), "{what}: bar");
        let end = format!("{:.1}", x0 + len + 4.0);
        assert_eq!(attr(m[1].1, "x"), end, "{what}: value at the bar's end");
        assert_eq!(m[1].2, shown, "{what}: value");
    };
    let label = |m: &(&str, &str, String), want: &str, what: &str| {
        assert_eq!(m.0, "text", "{what}");
        assert_eq!(attr(m.1, "text-anchor"), "end", "{what}: label");
        assert_eq!(m.2, want, "{what}: label");
    };
    match bars {
        Bars::Counts(items) => {
            assert_eq!(marks.len(), 3 * items.len(), "{pcn} {title}");
            let values: Vec<Option<u64>> = items.iter().map(|(_, c)| count_of(c)).collect();
            let max = values.iter().flatten().max().copied().unwrap_or(0).max(1) as f64;
            for (((g, cell), v), m) in items.iter().zip(&values).zip(marks.chunks(3)) {
                let what = format!("{pcn} {title}: {g}");
                label(&m[0], g, &what);
                let len = v.map_or(0.0, |v| v as f64 / max * 300.0);
                bar(&m[1..], 110.0, len, cell, &what);
            }
        }
        Bars::Shares(items) => {
            assert_eq!(marks.len(), 5 * items.len(), "{pcn} {title}");
            let max = items
                .iter()
                .flat_map(|i| [i.1, i.2])
                .flatten()
                .fold(1.0f64, f64::max);
            for ((g, e, l), m) in items.iter().zip(marks.chunks(5)) {
                let what = format!("{pcn} {title}: {g}");
                label(&m[0], g, &what);
                for (v, m) in [e, l].into_iter().zip(m[1..].chunks(2)) {
                    let len = v.map_or(0.0, |v| v / max * 260.0);
                    bar(m, 130.0, len, &pct_text(*v), &what);
                }
            }
        }
    }
}

/// Every number on a PCN's page outside the rows of the top of its list: a published cell of
/// the PCN's rows of summary.csv and pcn_profile.csv where the markup names it, a share worked
/// out from them as the page does, or a fixed number (the as-of date, the minimum age, the
/// profile's threshold, the rows of the top of the list, the notes, the version); the synthetic
/// models' caveat is the list's own `risk_models_trained_on`. Each part is cut out of the page
/// once checked; what is left has no digit. Returns the shares shown as `–`.
fn check_page_counts(
    pcn: &str,
    html: &str,
    list: &polars::prelude::DataFrame,
    summ: &BTreeMap<(String, String), Vec<String>>,
    prof: &BTreeMap<(String, String), Vec<String>>,
) -> usize {
    let key = |g: &str| (pcn.to_string(), g.to_string());
    let all = &summ[&key("all")];
    let everyone = prof.get(&key("all"));
    let has_profile = prof.keys().any(|(p, _)| p == pcn);
    let (eligible, listed) = (count_of(&all[4]), everyone.and_then(|c| count_of(&c[0])));
    let min_age = strata::lists::ListRules::default().min_age;
    let mut page = html.to_string();
    assert_eq!(cut(&mut page, "<style>", "</style>").len(), 1);
    assert_eq!(
        cut(&mut page, "<title>", "</title>"),
        [format!(
            "<title>PCN {pcn}: frailty list, as of {AS_OF}</title>"
        )]
    );
    assert_eq!(
        cut(&mut page, "<h1>", "</h1>"),
        [format!("<h1>PCN {pcn}: frailty list</h1>")]
    );
    // The lead: eligible people (summary.csv's total) and, with a profile, listed people (its
    // everyone row); the run's list rule has no number.
    let lead = cut(&mut page, "<p class=\"lead\">", "</p>");
    let on_list = everyone.map_or(String::new(), |c| {
        format!("; <span id=\"listed\">{}</span> on the list", c[0])
    });
    let head = format!(
        "<p class=\"lead\">As of {AS_OF}. <span id=\"eligible\">{}</span> eligible people (alive, aged {min_age}+){on_list}. The list takes ",
        all[4]
    );
    assert_eq!(lead.len(), 1, "{pcn}: one lead");
    let rule = lead[0]
        .strip_prefix(&head)
        .unwrap_or_else(|| panic!("{pcn}: {}", lead[0]));
    assert!(digit_runs(rule).is_empty(), "{pcn}: {rule}");
    // The synthetic models' caveat (with their training windows): the list's own column, and
    // what to do about it (said once here, not on every row).
    let banner = cut(&mut page, "<p class=\"banner\"", "</p>");
    assert_eq!(banner.len(), 1, "{pcn}: the synthetic models' caveat");
    let (_, source) = banner[0]
        .split_once("<strong>Risk models trained on synthetic data.</strong> ")
        .unwrap();
    assert_eq!(
        unescape(source.strip_suffix("</p>").unwrap()),
        format!(
            "{}: {}",
            strings(list, "risk_models_trained_on")[0],
            strata::output::columns::SYNTHETIC_ADVICE
        ),
        "{pcn}"
    );
    // The top of the list: the list itself, for direct care; only its heading is read.
    let top = cut(&mut page, "<h2>Top ", "</table>");
    let n = list.height().min(strata::output::html::TOP);
    assert_eq!(top.len(), 1, "{pcn}: the top of the list");
    assert!(
        top[0].starts_with(&format!("<h2>Top {n} of the list</h2><table id=\"top\">")),
        "{pcn}"
    );
    assert_eq!(top[0].matches("<tr><td>").count(), n, "{pcn}");
    // The notes: the range of `[c]`, the version, the indicators' fixed definitions.
    let notes = cut(&mut page, "<p class=\"note\"", "</p>");
    let credit = format!(" Produced by strata {}.</p>", env!("CARGO_PKG_VERSION"));
    assert_eq!(notes.len(), 2, "{pcn}: notes");
    let first = notes[0].strip_suffix(&credit).expect("the version");
    assert_eq!(digit_runs(first), ["1", "7"], "{pcn}: {first}");
    assert_eq!(
        digit_runs(&notes[1]),
        ["29", "2013", "65", "3", "90", "65", "18"],
        "{pcn}: {}",
        notes[1]
    );
    // Without a profile, a sentence with its threshold instead.
    let small = cut(&mut page, "<p>The list's make-up", "</p>");
    let threshold = strata::tables::PROFILE_MIN_ELIGIBLE.to_string();
    let want: Vec<Vec<&str>> = if has_profile {
        vec![]
    } else {
        vec![vec![threshold.as_str()]]
    };
    let got: Vec<Vec<&str>> = small.iter().map(|s| digit_runs(s)).collect();
    assert_eq!(got, want, "{pcn}: {small:?}");
    let dims: Vec<&str> = if has_profile {
        DIMENSIONS.iter().map(|d| d.0).collect()
    } else {
        vec![]
    };
    let titles: Vec<String> = dims
        .iter()
        .map(|d| {
            format!(
                "<h3>{}</h3>",
                DIMENSIONS.iter().find(|x| x.0 == *d).unwrap().1
            )
        })
        .collect();
    assert_eq!(cut(&mut page, "<h3>", "</h3>"), titles, "{pcn}");
    // The tables: by eFI category, then one per dimension of the profile.
    let tables = cut(&mut page, "<table>", "</table>");
    assert_eq!(tables.len(), 1 + dims.len(), "{pcn}: tables");
    let mut dashes = 0;
    let totals = (eligible, listed);
    let groups = check_page_table(pcn, &tables[0], "summary", summ, prof, totals, &mut dashes);
    let mine = |prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = summ
            .keys()
            .chain(prof.keys())
            .filter(|(p, g)| p == pcn && g.starts_with(prefix))
            .map(|(_, g)| g[prefix.len()..].to_string())
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(groups), ["all", "core20"], "{pcn}");
    let mut rows = BTreeMap::new();
    for (t, d) in tables[1..].iter().zip(&dims) {
        let groups = check_page_table(pcn, t, d, summ, prof, totals, &mut dashes);
        // Every published row of the dimension, once.
        assert_eq!(sorted(groups.clone()), mine(&format!("{d}=")), "{pcn} {d}");
        rows.insert(*d, groups);
    }
    // The charts: by eFI category, then one per dimension of the profile.
    let cell = |g: &str| &prof[&key(g)];
    let mut charts = vec![(
        "Eligible people by eFI category",
        Bars::Counts(
            ["fit", "mild", "moderate", "severe"]
                .iter()
                .zip(all)
                .map(|(c, v)| (c.to_string(), v.clone()))
                .collect(),
        ),
    )];
    for (d, title) in DIMENSIONS.iter().filter(|d| dims.contains(&d.0)) {
        let groups = rows[d].iter().map(|g| (g, cell(&format!("{d}={g}"))));
        charts.push(match *d {
            "practice" => (
                "Listed people by practice",
                Bars::Counts(groups.map(|(g, c)| (g.clone(), c[0].clone())).collect()),
            ),
            _ => (
                *title,
                Bars::Shares(
                    groups
                        .map(|(g, c)| {
                            let (l, e) = (count_of(&c[0]), count_of(&c[2]));
                            (g.clone(), share(e, eligible), share(l, listed))
                        })
                        .collect(),
                ),
            ),
        });
    }
    let svgs = cut(&mut page, "<svg ", "</svg>");
    assert_eq!(svgs.len(), charts.len(), "{pcn}: charts");
    for (svg, (title, bars)) in svgs.iter().zip(&charts) {
        check_chart(pcn, svg, title, bars);
    }
    // What is left is headings and fixed words: no number.
    for part in ["<table", "<svg", "<td", "<text", "<span id="] {
        assert!(!page.contains(part), "{pcn}: {part} left unchecked");
    }
    let mut text = String::new();
    let mut in_tag = false;
    for ch in page.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = unescape(&text);
    assert!(
        digit_runs(&text).is_empty(),
        "{pcn}: numbers not accounted for: {:?} in {text}",
        digit_runs(&text)
    );
    dashes
}

#[test]
fn every_count_on_the_pages_and_summary_sheets_is_a_protected_one() {
    for out in [run(), synthetic()] {
        let (summ, prof) = (summary(out), profile(out));
        let mut dashes = 0;
        for pcn in pcns(out) {
            let pcn = pcn.as_str();
            let file = |ext: &str| out.join(format!("lists/{pcn}/{pcn}.{ext}"));
            let list = read_csv(&file("csv"));
            let html = std::fs::read_to_string(file("html")).unwrap();
            dashes += check_page_counts(pcn, &html, &list, &summ, &prof);
            let zip = unzip(&std::fs::read(file("xlsx")).unwrap());
            let rows = sheet_rows(&zip["xl/worksheets/sheet1.xml"], &shared_strings(&zip));
            check_summary_sheet(pcn, &rows, &summ, &prof);
        }
        // The synthetic run has shares beside `[c]`: shown as `–`, as the page shows no share.
        assert_eq!(dashes > 0, out == synthetic(), "{dashes}");
    }
    // The check catches a page with one thing changed: a number in the words, a share beside
    // `[c]`, a count one more than its cell, a bar of the wrong length.
    let out = synthetic();
    let (summ, prof) = (summary(out), profile(out));
    let pcn = &pcns(out)[0];
    let list = read_csv(&out.join(format!("lists/{pcn}/{pcn}.csv")));
    let html = std::fs::read_to_string(out.join(format!("lists/{pcn}/{pcn}.html"))).unwrap();
    let bump = |h: &str| {
        let at = h.find("data-col=\"eligible\">").unwrap() + "data-col=\"eligible\">".len();
        let end = at + h[at..].find('<').unwrap();
        let n: u64 = h[at..end].parse().unwrap();
        format!("{}{}{}", &h[..at], n + 1, &h[end..])
    };
    for tampered in [
        html.replacen("reaches</h2>", "reaches (12 people)</h2>", 1),
        html.replacen("<td class=\"n\">–</td>", "<td class=\"n\">3.4%</td>", 1),
        bump(&html),
        html.replacen(" width=\"300.0\"", " width=\"299.0\"", 1),
    ] {
        assert_ne!(tampered, html);
        let check =
            std::panic::AssertUnwindSafe(|| check_page_counts(pcn, &tampered, &list, &summ, &prof));
        assert!(std::panic::catch_unwind(check).is_err());
    }
}

#[test]
fn the_html_page_is_self_contained_well_formed_and_shows_the_protected_counts() {
    check_pages(run());
    check_pages(synthetic());
}

/// The pixels of an 8-bit RGB or RGBA PNG (non-interlaced), as (width, height, channels, bytes).
fn decode_png(png: &[u8]) -> (usize, usize, usize, Vec<u8>) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let mut at = 8;
    let (mut w, mut h, mut ch) = (0, 0, 0);
    let mut idat = Vec::new();
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let data = &png[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                h = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "8-bit");
                ch = match data[9] {
                    2 => 3,
                    6 => 4,
                    t => panic!("colour type {t}"),
                };
                assert_eq!(data[12], 0, "not interlaced");
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = w * ch;
    let mut px = vec![0u8; h * stride];
    for y in 0..h {
        let f = raw[y * (stride + 1)];
        for x in 0..stride {
            let v = raw[y * (stride + 1) + 1 + x] as i32;
            let a = if x >= ch {
                px[y * stride + x - ch] as i32
            } else {
                0
            };
            let b = if y > 0 {
                px[(y - 1) * stride + x] as i32
            } else {
                0
            };
            let c = if x >= ch && y > 0 {
                px[(y - 1) * stride + x - ch] as i32
            } else {
                0
            };
            let pred = match f {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("filter {f}"),
            };
            px[y * stride + x] = (v + pred) as u8;
        }
    }
    (w, h, ch, px)
}

#[test]
fn the_html_page_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        assert!(
            std::env::var_os("STRATA_REQUIRE_CHROMIUM").is_none(),
            "STRATA_REQUIRE_CHROMIUM is set and chromium is not installed"
        );
        println!("note: chromium is not installed; skipping the headless rendering check (apt-get install chromium)");
        return;
    };
    let out = synthetic();
    let d = tempfile::tempdir().unwrap();
    let png = d.path().join("page.png");
    let page = out.join(format!("lists/{0}/{0}.html", pcns(out)[0]));
    assert!(page.is_file(), "{}", page.display());
    let o = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1200,1600",
        ])
        .arg(format!(
            "--user-data-dir={}",
            d.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (w, h, ch, px) = decode_png(&std::fs::read(&png).unwrap());
    assert_eq!((w, h), (1200, 1600));
    let pixels = px.chunks(ch);
    let (mut ink, mut blue) = (0usize, 0usize);
    for p in pixels {
        if p[0] < 200 || p[1] < 200 || p[2] < 200 {
            ink += 1;
        }
        // The bars of the charts (#005eb8).
        if p[0] < 40 && (70..130).contains(&p[1]) && p[2] > 150 {
            blue += 1;
        }
    }
    let total = w * h;
    assert!(
        ink * 100 > total,
        "page almost blank: {ink} of {total} pixels inked"
    );
    assert!(blue > 500, "no chart bars drawn: {blue} blue pixels");
}
