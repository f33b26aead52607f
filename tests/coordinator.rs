//! What a care coordinator opens, end to end on the committed 2,000-patient fixture (four PCNs
//! too small for a published profile) and on a synthetic cohort whose three PCNs have one: the
//! PCN workbook (a sheet per practice after a protected summary, frozen header, filters, the
//! as-of date as its creation date), the lists' CSV files as Excel reads them (UTF-8 with a
//! byte order mark), the plain-words `why` column, and the self-contained HTML page (well
//! formed, the protected numbers of `summary.csv` and `pcn_profile.csv`, the top of the list with
//! reasons; and, when Debian's `chromium` is installed, rendered headless to a PNG that is not
//! blank). Every run here also passes the outside disclosure auditor.

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

/// The Summary sheet: the PCN's rows of summary.csv (everyone, Core20) and of pcn_profile.csv,
/// cell for cell.
fn check_summary_sheet(
    pcn: &str,
    rows: &[Vec<String>],
    summ: &BTreeMap<(String, String), Vec<String>>,
    prof: &BTreeMap<(String, String), Vec<String>>,
) {
    assert_eq!(
        rows[0][..9],
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
    let find = |d: &str, g: &str| -> &Vec<String> {
        rows.iter()
            .find(|r| r.len() > 2 && r[0] == d && r[1] == g)
            .unwrap_or_else(|| panic!("{pcn}: no summary sheet row {d}/{g}"))
    };
    let key = |g: &str| (pcn.to_string(), g.to_string());
    for (group, d, g, p) in [
        ("all", "all", "everyone", "all"),
        ("core20", "core20", "IMD quintile 1", "imd_quintile=1"),
    ] {
        let row = find(d, g);
        let s = &summ[&key(group)];
        assert_eq!(row[2], s[4], "{pcn} {group}: eligible");
        assert_eq!(&row[5..9], &s[..4], "{pcn} {group}: categories");
        match prof.get(&key(p)) {
            Some(c) => assert_eq!(&row[3..5], &c[..2], "{pcn} {p}"),
            None => assert!(row[3].is_empty() && row[4].is_empty(), "{pcn} {p}"),
        }
    }
    let mine: Vec<_> = prof.iter().filter(|((x, _), _)| x == pcn).collect();
    for ((_, g), c) in &mine {
        if let Some((d, v)) = g.split_once('=') {
            let row = find(d, v);
            assert_eq!(
                [&row[2], &row[3], &row[4]],
                [&c[2], &c[0], &c[1]],
                "{pcn} {g}"
            );
        }
    }
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
