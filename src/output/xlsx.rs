//! Excel workbooks (`lists/<PCN>.xlsx`): a PCN's list for its care team, one sheet per practice
//! after a `Summary` sheet of the PCN's protected counts; every sheet with a frozen header row,
//! filters and column widths that fit the values. Written byte for byte the same on every run:
//! the workbook's creation date is the as-of date and every zip entry has the same fixed time.
//!
//! Pipeline position: one of `output`'s writers ([`super::PcnWriter`]).
//!
//! The file is Office Open XML (ECMA-376) written directly: a zip (deflate, via `flate2`, which
//! polars already uses) of a few small XML parts, cells as inline strings. The maintained crate
//! `rust_xlsxwriter` was tried first, but its `zip` dependency changes the features of crates
//! polars is built with (`syn`, `libc`, `flate2`), which rebuilds all of polars.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};
use polars::prelude::*;

use super::{PcnSummary, PcnWriter};
use crate::disclosure::Cell;
use crate::publish::{io_err, OutputError};
use crate::tables::PROFILE_MIN_ELIGIBLE;

/// The PCN workbook: `Summary`, then one sheet per practice with its part of the list.
#[derive(Debug, Clone, Copy)]
pub struct Xlsx;

/// Columns shown first on the practice sheets, in this order (who, then why); the others
/// follow in list order.
const FIRST_COLUMNS: [&str; 8] = [
    "rank",
    "change",
    "patient_id",
    "age_band",
    "sex",
    "efi_category",
    "why",
    "practice_code",
];

/// Widest column, in characters (longer text is still all there, the column is just not wider).
const MAX_WIDTH: usize = 70;
/// Excel's limit on the characters of one cell.
const MAX_CELL_CHARS: usize = 32_767;
/// Excel's limit on the rows of a sheet.
const MAX_ROWS: usize = 1_048_576;

/// One cell's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Nothing.
    Blank,
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// TRUE or FALSE.
    Bool(bool),
}

/// A sheet: a header row and rows below it.
#[derive(Debug, Clone, Default)]
pub struct Sheet {
    /// Sheet name (at most 31 characters, none of `[]:*?/\`).
    pub name: String,
    /// Header row.
    pub header: Vec<String>,
    /// Data rows.
    pub rows: Vec<Vec<Value>>,
    /// Lines of notes written under the table (no filter over them).
    pub notes: Vec<String>,
}

/// The text of a cell, escaped for XML; characters XML cannot hold become U+FFFD.
fn escape(s: &str, out: &mut String) {
    for ch in s.chars().take(MAX_CELL_CHARS) {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// Column letters of a 0-based column (`0` -> `A`, `26` -> `AA`).
pub fn column_letters(mut c: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (c % 26) as u8);
        if c < 26 {
            break;
        }
        c = c / 26 - 1;
    }
    s.reverse();
    String::from_utf8_lossy(&s).into_owned()
}

impl Value {
    fn width(&self) -> usize {
        match self {
            Value::Blank => 0,
            Value::Text(s) => s.chars().count(),
            Value::Number(n) => format_number(*n).len(),
            Value::Bool(_) => 5,
        }
    }
}

/// A number as the XML holds it: integers without a decimal point, others as Rust prints them
/// (shortest text that reads back the same).
fn format_number(n: f64) -> String {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else if n.is_finite() {
        format!("{n}")
    } else {
        "0".to_string()
    }
}

impl Sheet {
    /// The worksheet part (`xl/worksheets/sheetN.xml`).
    fn xml(&self) -> String {
        let ncols = self.header.len().max(1);
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count() + 3).collect();
        widths.resize(ncols, 8);
        for row in &self.rows {
            for (w, v) in widths.iter_mut().zip(row) {
                *w = (*w).max(v.width() + 1);
            }
        }
        let mut x = String::with_capacity(256 + self.rows.len() * ncols * 24);
        x.push_str(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#);
        x.push('\n');
        x.push_str(
            r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">"#,
        );
        x.push_str(r#"<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/><selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>"#);
        x.push_str(r#"<sheetFormatPr defaultRowHeight="15"/><cols>"#);
        for (c, w) in widths.iter().enumerate() {
            x.push_str(&format!(
                r#"<col min="{n}" max="{n}" width="{}" customWidth="1"/>"#,
                (*w).clamp(6, MAX_WIDTH),
                n = c + 1
            ));
        }
        x.push_str("</cols><sheetData>");
        let mut r = 1;
        let mut row = |x: &mut String, cells: &mut dyn Iterator<Item = (Value, u32)>| {
            x.push_str(&format!(r#"<row r="{r}">"#));
            for (c, (v, style)) in cells.enumerate() {
                let at = format!("{}{r}", column_letters(c));
                let s = if style > 0 {
                    format!(r#" s="{style}""#)
                } else {
                    String::new()
                };
                match v {
                    Value::Blank => {}
                    Value::Text(t) => {
                        x.push_str(&format!(
                            r#"<c r="{at}"{s} t="inlineStr"><is><t xml:space="preserve">"#
                        ));
                        escape(&t, x);
                        x.push_str("</t></is></c>");
                    }
                    Value::Number(n) => x.push_str(&format!(
                        r#"<c r="{at}"{s}><v>{}</v></c>"#,
                        format_number(n)
                    )),
                    Value::Bool(b) => {
                        x.push_str(&format!(r#"<c r="{at}"{s} t="b"><v>{}</v></c>"#, b as u8))
                    }
                }
            }
            x.push_str("</row>");
            r += 1;
        };
        row(
            &mut x,
            &mut self.header.iter().map(|h| (Value::Text(h.clone()), 1)),
        );
        for cells in &self.rows {
            row(&mut x, &mut cells.iter().map(|v| (v.clone(), 0)));
        }
        if !self.notes.is_empty() {
            row(&mut x, &mut std::iter::empty());
            for n in &self.notes {
                row(&mut x, &mut std::iter::once((Value::Text(n.clone()), 2)));
            }
        }
        x.push_str("</sheetData>");
        x.push_str(&format!(
            r#"<autoFilter ref="A1:{}{}"/>"#,
            column_letters(ncols - 1),
            self.rows.len() + 1
        ));
        x.push_str(r#"<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/></worksheet>"#);
        x
    }
}

/// A sheet name Excel accepts, distinct from `taken`: forbidden characters become `_`, at most
/// 31 characters.
fn sheet_name(want: &str, taken: &[String]) -> String {
    let clean: String = want
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .collect::<String>()
        .trim_matches('\'')
        .chars()
        .take(31)
        .collect();
    let base = if clean.is_empty() || clean.eq_ignore_ascii_case("history") {
        format!("_{clean}")
    } else {
        clean
    };
    let mut name = base.clone();
    let mut k = 2;
    while taken.iter().any(|t| t.eq_ignore_ascii_case(&name)) {
        let tail = format!("~{k}");
        name = base.chars().take(31 - tail.len()).collect::<String>() + &tail;
        k += 1;
    }
    name
}

/// The zip entry time and date (MS-DOS format): 1980-01-01 00:00, the same on every run.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;

/// A zip archive of `(name, bytes)` entries, deflated, in the order given.
fn zip(entries: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let too_big = || std::io::Error::other("workbook part over 4 GiB (zip64 not written)");
    let mut out: Vec<u8> = Vec::new();
    let mut central: Vec<u8> = Vec::new();
    let u16le = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
    let u32le = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    for (name, data) in entries {
        let mut crc = Crc::new();
        crc.update(data);
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::new(6));
        enc.write_all(data)?;
        let packed = enc.finish()?;
        let offset = u32::try_from(out.len()).map_err(|_| too_big())?;
        let (csize, usize_) = (
            u32::try_from(packed.len()).map_err(|_| too_big())?,
            u32::try_from(data.len()).map_err(|_| too_big())?,
        );
        let name_len = u16::try_from(name.len()).map_err(|_| too_big())?;
        // Local file header.
        u32le(&mut out, 0x0403_4b50);
        for v in [20, 0x0800, 8, DOS_TIME, DOS_DATE] {
            u16le(&mut out, v);
        }
        for v in [crc.sum(), csize, usize_] {
            u32le(&mut out, v);
        }
        u16le(&mut out, name_len);
        u16le(&mut out, 0);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&packed);
        // Central directory record.
        u32le(&mut central, 0x0201_4b50);
        for v in [20, 20, 0x0800, 8, DOS_TIME, DOS_DATE] {
            u16le(&mut central, v);
        }
        for v in [crc.sum(), csize, usize_] {
            u32le(&mut central, v);
        }
        for v in [name_len, 0, 0, 0, 0] {
            u16le(&mut central, v);
        }
        u32le(&mut central, 0);
        u32le(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = u32::try_from(out.len()).map_err(|_| too_big())?;
    let cd_size = u32::try_from(central.len()).map_err(|_| too_big())?;
    let n = u16::try_from(entries.len()).map_err(|_| too_big())?;
    out.extend_from_slice(&central);
    u32le(&mut out, 0x0605_4b50);
    for v in [0, 0, n, n] {
        u16le(&mut out, v);
    }
    u32le(&mut out, cd_size);
    u32le(&mut out, cd_offset);
    u16le(&mut out, 0);
    Ok(out)
}

const STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="3"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font><font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font><font><i/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts><fills count="3"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill><fill><patternFill patternType="solid"><fgColor rgb="FFDDEBF7"/><bgColor indexed="64"/></patternFill></fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" applyFill="1"/><xf numFmtId="0" fontId="2" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>"#;

/// A workbook of `sheets` as xlsx bytes; `created` (ISO date) is its creation date, `title`
/// its title.
pub fn workbook(sheets: &[Sheet], title: &str, created: &str) -> std::io::Result<Vec<u8>> {
    let mut esc_title = String::new();
    escape(title, &mut esc_title);
    let mut esc_created = String::new();
    escape(created, &mut esc_created);
    let n = sheets.len();
    let mut types = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/><Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/><Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>"#,
    );
    let mut book = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><bookViews><workbookView activeTab="0"/></bookViews><sheets>"#,
    );
    let mut rels = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
    );
    let mut names = String::new();
    let mut parts: Vec<(String, Vec<u8>)> = Vec::with_capacity(n + 8);
    for (k, s) in sheets.iter().enumerate() {
        let i = k + 1;
        types.push_str(&format!(r#"<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#));
        let mut name = String::new();
        escape(&s.name, &mut name);
        book.push_str(&format!(
            r#"<sheet name="{name}" sheetId="{i}" r:id="rId{i}"/>"#
        ));
        rels.push_str(&format!(r#"<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{i}.xml"/>"#));
        let quoted = name.replace('\'', "''");
        names.push_str(&format!(
            r#"<definedName name="_xlnm._FilterDatabase" localSheetId="{k}" hidden="1">'{quoted}'!$A$1:${}${}</definedName>"#,
            column_letters(s.header.len().max(1) - 1),
            s.rows.len() + 1
        ));
        parts.push((format!("xl/worksheets/sheet{i}.xml"), s.xml().into_bytes()));
    }
    types.push_str("</Types>");
    book.push_str("</sheets>");
    if !names.is_empty() {
        book.push_str(&format!("<definedNames>{names}</definedNames>"));
    }
    book.push_str("</workbook>");
    rels.push_str(&format!(r#"<Relationship Id="rId{}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#, n + 1));
    let core = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" xmlns:dcmitype="http://purl.org/dc/dcmitype/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:title>{esc_title}</dc:title><dc:creator>strata</dc:creator><dcterms:created xsi:type="dcterms:W3CDTF">{esc_created}T00:00:00Z</dcterms:created><dcterms:modified xsi:type="dcterms:W3CDTF">{esc_created}T00:00:00Z</dcterms:modified></cp:coreProperties>"#
    );
    let app = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"><Application>strata</Application></Properties>"#;
    let root_rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties" Target="docProps/app.xml"/></Relationships>"#;
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        ("[Content_Types].xml".into(), types.into_bytes()),
        ("_rels/.rels".into(), root_rels.as_bytes().to_vec()),
        ("docProps/core.xml".into(), core.into_bytes()),
        ("docProps/app.xml".into(), app.as_bytes().to_vec()),
        ("xl/workbook.xml".into(), book.into_bytes()),
        ("xl/_rels/workbook.xml.rels".into(), rels.into_bytes()),
        ("xl/styles.xml".into(), STYLES.as_bytes().to_vec()),
    ];
    entries.extend(parts);
    zip(&entries)
}

/// A frame's columns as cell values, column by column.
fn column_values(c: &Column) -> PolarsResult<Vec<Value>> {
    let s = c.as_materialized_series();
    Ok(match s.dtype() {
        DataType::String => s
            .str()?
            .iter()
            .map(|v| v.map_or(Value::Blank, |t| Value::Text(t.to_string())))
            .collect(),
        DataType::Boolean => s
            .bool()?
            .iter()
            .map(|v| v.map_or(Value::Blank, Value::Bool))
            .collect(),
        dt if dt.is_primitive_numeric() => s
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .map(|v| v.map_or(Value::Blank, Value::Number))
            .collect(),
        _ => s
            .cast(&DataType::String)?
            .str()?
            .iter()
            .map(|v| v.map_or(Value::Blank, |t| Value::Text(t.to_string())))
            .collect(),
    })
}

/// A published count as a cell: the number, or `[c]`.
fn count(c: Cell) -> Value {
    match c {
        Cell::Count(n) => Value::Number(n as f64),
        Cell::Suppressed => Value::Text("[c]".into()),
    }
}

/// Columns of the `Summary` sheet after `dimension` and `group`: the profile's, then the eFI
/// categories of the summary rows.
const SUMMARY_COLUMNS: [&str; 7] = [
    "eligible",
    "listed",
    "not_listed",
    "fit",
    "mild",
    "moderate",
    "severe",
];

/// The `Summary` sheet: the PCN's protected counts. First its everyone and Core20 rows (eligible
/// people by eFI category from `summary.csv`, with how many the list takes), then its make-up by
/// practice, age band, sex and IMD quintile from `pcn_profile.csv` (eligible, listed, not
/// listed), when published.
pub fn summary_sheet(pcn: &PcnSummary) -> Sheet {
    let mut header = vec!["dimension".to_string(), "group".to_string()];
    header.extend(SUMMARY_COLUMNS.iter().map(|c| c.to_string()));
    let mut rows = Vec::new();
    for (g, cats) in &pcn.categories {
        let (group, profile) = match g.as_str() {
            "all" => ("everyone", pcn.everyone()),
            _ => (
                "IMD quintile 1",
                pcn.dimension("imd_quintile")
                    .find(|(q, _)| *q == "1")
                    .map(|(_, c)| c),
            ),
        };
        let mut row = vec![
            Value::Text(g.clone()),
            Value::Text(group.into()),
            count(cats[4]),
        ];
        match profile {
            Some(p) => row.extend([count(p[0]), count(p[1])]),
            None => row.extend([Value::Blank, Value::Blank]),
        }
        row.extend(cats[..4].iter().map(|&c| count(c)));
        rows.push(row);
    }
    for (d, g, c) in &pcn.profile {
        if d == "all" {
            continue;
        }
        rows.push(vec![
            Value::Text(d.clone()),
            Value::Text(g.clone()),
            count(c[2]),
            count(c[0]),
            count(c[1]),
        ]);
    }
    let mut notes = vec![
        format!(
            "PCN {}, as of {}: eligible people (alive, aged {}+); the list takes {}.",
            pcn.pcn,
            pcn.as_of,
            pcn.rules.min_age,
            pcn.rule_text()
        ),
        "[c]: a count of 1-7, or a count hidden so that one cannot be worked out (the PCN's rows of summary.csv and pcn_profile.csv, protected together with every table of the run).".into(),
    ];
    if !pcn.has_profile() {
        notes.push(format!("The list's make-up by practice, age band, sex and deprivation is not shown for a PCN with fewer than {PROFILE_MIN_ELIGIBLE} eligible people."));
    }
    notes.push("The practice sheets hold the list itself, for direct care.".into());
    Sheet {
        name: "Summary".into(),
        header,
        rows,
        notes,
    }
}

/// The practice sheets: the list's rows of each practice, in rank order, practices in code
/// order, columns [`FIRST_COLUMNS`] first.
pub fn practice_sheets(list: &DataFrame, taken: &mut Vec<String>) -> PolarsResult<Vec<Sheet>> {
    let names: Vec<String> = list
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut order: Vec<usize> = FIRST_COLUMNS
        .iter()
        .filter_map(|f| names.iter().position(|n| n == f))
        .collect();
    let rest: Vec<usize> = (0..names.len()).filter(|k| !order.contains(k)).collect();
    order.extend(rest);
    let columns: Vec<Vec<Value>> = order
        .iter()
        .map(|&k| column_values(&list.columns()[k]))
        .collect::<PolarsResult<_>>()?;
    let practice: Vec<Option<&str>> = match list.column("practice_code") {
        Ok(c) => c.str()?.iter().collect(),
        Err(_) => vec![None; list.height()],
    };
    let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (r, p) in practice.iter().enumerate() {
        groups.entry(p.unwrap_or("")).or_default().push(r);
    }
    let header: Vec<String> = order.iter().map(|&k| names[k].clone()).collect();
    let mut sheets = Vec::new();
    for (p, rows) in groups {
        for chunk in rows.chunks(MAX_ROWS - 1) {
            let name = sheet_name(p, taken);
            taken.push(name.clone());
            sheets.push(Sheet {
                name,
                header: header.clone(),
                rows: chunk
                    .iter()
                    .map(|&r| columns.iter().map(|c| c[r].clone()).collect())
                    .collect(),
                notes: Vec::new(),
            });
        }
    }
    if sheets.is_empty() {
        let name = sheet_name("List", taken);
        taken.push(name.clone());
        sheets.push(Sheet {
            name,
            header,
            rows: Vec::new(),
            notes: Vec::new(),
        });
    }
    Ok(sheets)
}

impl PcnWriter for Xlsx {
    fn extension(&self) -> &'static str {
        "xlsx"
    }

    fn write(&self, path: &Path, list: &DataFrame, pcn: &PcnSummary) -> Result<(), OutputError> {
        let mut sheets = vec![summary_sheet(pcn)];
        let mut taken = vec![sheets[0].name.clone()];
        sheets.extend(
            practice_sheets(list, &mut taken).map_err(|source| OutputError::Encode {
                path: path.to_path_buf(),
                source,
            })?,
        );
        let title = format!("strata frailty list: PCN {}, as of {}", pcn.pcn, pcn.as_of);
        let bytes = workbook(&sheets, &title, &pcn.as_of).map_err(io_err(path))?;
        let mut f = File::create(path).map_err(io_err(path))?;
        f.write_all(&bytes).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_run_past_z() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
    }

    #[test]
    fn sheet_names_are_legal_and_distinct() {
        let taken = vec!["Summary".to_string()];
        assert_eq!(sheet_name("summary", &taken), "summary~2");
        assert_eq!(sheet_name("A/B[1]", &taken), "A_B_1_");
        assert_eq!(sheet_name(&"x".repeat(40), &taken).len(), 31);
        assert_eq!(sheet_name("", &taken), "_");
    }

    #[test]
    fn cell_text_is_escaped_and_control_characters_replaced() {
        let mut s = String::new();
        escape("a<b & \"c\"\u{1}", &mut s);
        assert_eq!(s, "a&lt;b &amp; &quot;c&quot;\u{fffd}");
    }
}
