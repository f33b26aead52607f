//! Excel workbooks (`lists/<PCN>.xlsx`): a PCN's list for its care team, one sheet per practice
//! after a `Summary` sheet of the PCN's protected counts; every sheet with a frozen header row,
//! filters, column widths that fit the values and ISO dates (`yyyy-mm-dd`). Written byte for
//! byte the same on every run: the workbook's creation date is the as-of date (`rust_xlsxwriter`
//! gives every zip entry the same fixed time).
//!
//! Pipeline position: one of `output`'s writers ([`super::PcnWriter`]). The sheets are built as
//! plain [`Sheet`]s here and written by the maintained `rust_xlsxwriter` crate.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use polars::prelude::*;
use rust_xlsxwriter::{Color, DocProperties, ExcelDateTime, Format, FormatBorder, Workbook};

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
/// Days from Excel's day 0 (1899-12-30) to 1970-01-01.
const EXCEL_EPOCH_OFFSET: i32 = 25_569;

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
    /// A date, as days since 1970-01-01; shown `yyyy-mm-dd`.
    Date(i32),
}

impl Value {
    /// Characters the value takes on screen, for the column width.
    fn width(&self) -> usize {
        match self {
            Value::Blank => 0,
            Value::Text(s) => s.chars().count(),
            Value::Number(n) => format!("{n}").len(),
            Value::Bool(_) => 5,
            Value::Date(_) => 10,
        }
    }
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

/// Column widths that fit the header (with room for the filter button) and the values, within
/// 6 to [`MAX_WIDTH`] characters.
fn widths(sheet: &Sheet) -> Vec<f64> {
    let mut w: Vec<usize> = sheet.header.iter().map(|h| h.chars().count() + 3).collect();
    w.resize(sheet.header.len().max(1), 8);
    for row in &sheet.rows {
        for (w, v) in w.iter_mut().zip(row) {
            *w = (*w).max(v.width() + 1);
        }
    }
    w.into_iter()
        .map(|w| w.clamp(6, MAX_WIDTH) as f64)
        .collect()
}

/// The workbook of `sheets` as the bytes of an `.xlsx` file, its title `title` and its creation
/// date `created` (ISO `yyyy-mm-dd`, the run's as-of date).
pub fn workbook(
    sheets: &[Sheet],
    title: &str,
    created: &str,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut book = Workbook::new();
    // Fast deflate: a list's workbook is written every night and read by people, so speed
    // matters more than the last few per cent of size.
    book.set_zip_compression_level(1);
    let created = ExcelDateTime::parse_from_str(created)?;
    book.set_properties(
        &DocProperties::new()
            .set_title(title)
            .set_author("strata")
            .set_creation_datetime(&created),
    );
    let header = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xE8F0FA))
        .set_border_bottom(FormatBorder::Thin);
    let note = Format::new()
        .set_italic()
        .set_font_color(Color::RGB(0x555555));
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for sheet in sheets {
        let ws = book.add_worksheet();
        ws.set_name(&sheet.name)?;
        let ncols = sheet.header.len().max(1);
        for (c, w) in widths(sheet).into_iter().enumerate() {
            ws.set_column_width(c as u16, w)?;
        }
        for (c, h) in sheet.header.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, h, &header)?;
        }
        for (r, row) in sheet.rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, v) in row.iter().enumerate() {
                let c = c as u16;
                match v {
                    Value::Blank => {}
                    Value::Text(t) => {
                        let t: String = t.chars().take(MAX_CELL_CHARS).collect();
                        ws.write_string(r, c, t)?;
                    }
                    Value::Number(n) if n.is_finite() => {
                        ws.write_number(r, c, *n)?;
                    }
                    Value::Number(_) => {}
                    Value::Bool(b) => {
                        ws.write_boolean(r, c, *b)?;
                    }
                    Value::Date(d) => {
                        ws.write_number_with_format(
                            r,
                            c,
                            f64::from(d + EXCEL_EPOCH_OFFSET),
                            &date,
                        )?;
                    }
                }
            }
        }
        let last = sheet.rows.len() as u32;
        for (k, n) in sheet.notes.iter().enumerate() {
            ws.write_string_with_format(last + 2 + k as u32, 0, n, &note)?;
        }
        ws.set_freeze_panes(1, 0)?;
        ws.autofilter(0, 0, last, ncols as u16 - 1)?;
    }
    book.save_to_buffer()
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
        DataType::Date => s
            .date()?
            .physical()
            .iter()
            .map(|v| v.map_or(Value::Blank, Value::Date))
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
        let bytes =
            workbook(&sheets, &title, &pcn.as_of).map_err(|source| OutputError::Workbook {
                path: path.to_path_buf(),
                source,
            })?;
        let mut f = File::create(path).map_err(io_err(path))?;
        f.write_all(&bytes).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_are_legal_and_distinct() {
        let taken = vec!["Summary".to_string()];
        assert_eq!(sheet_name("summary", &taken), "summary~2");
        assert_eq!(sheet_name("A/B[1]", &taken), "A_B_1_");
        assert_eq!(sheet_name(&"x".repeat(40), &taken).len(), 31);
        assert_eq!(sheet_name("", &taken), "_");
    }

    #[test]
    fn the_same_sheets_give_the_same_bytes_and_dates_are_excel_dates() {
        let sheet = Sheet {
            name: "S".into(),
            header: vec!["when".into(), "what".into()],
            rows: vec![vec![
                Value::Date(20_179),
                Value::Text("a < b & \u{1}".into()),
            ]],
            notes: vec!["note".into()],
        };
        let a = workbook(std::slice::from_ref(&sheet), "t", "2025-04-01").unwrap();
        let b = workbook(&[sheet], "t", "2025-04-01").unwrap();
        assert_eq!(a, b, "byte-identical");
        assert_eq!(&a[..2], b"PK");
        // 2025-04-01 is day 20,179 since 1970, Excel serial 45,748.
        assert_eq!(20_179 + EXCEL_EPOCH_OFFSET, 45_748);
    }
}
