//! Excel workbooks (`lists/<PCN>/<PCN>.xlsx`): a PCN's list for its care team, one sheet per
//! practice after a `Summary` sheet of the PCN's protected counts; every sheet with a frozen
//! header row, filters, column widths that fit the values and ISO dates (`yyyy-mm-dd`). Written
//! byte for byte the same on every run: the workbook's creation date is the as-of date and every
//! zip entry has the same fixed time.
//!
//! Pipeline position: one of `output`'s writers ([`super::PcnWriter`]). The sheets are built as
//! plain [`Sheet`]s here and written as Office Open XML (ECMA-376 SpreadsheetML) by a small
//! streaming writer in this file: each sheet's XML is made in one pass over its cells (strings
//! inline, no shared-string table, no per-cell map), then deflated into the zip package. It
//! writes only what these workbooks use (text, numbers, booleans, dates; three cell styles; a
//! frozen header, an autofilter and column widths per sheet), in the part layout and element
//! order Excel itself writes. A general workbook crate (rust_xlsxwriter) did the same job at
//! about four times the CPU time, the larger part of a nightly run's writing (BENCHMARKS.md).

use std::borrow::Cow;
use std::io::Write;

use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};
use polars::prelude::*;

use super::{PcnSummary, PcnWriter};
use crate::disclosure::Cell;
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
/// Deflate level of the zip entries: a list's workbook is written every night and read by
/// people, so speed matters more than the last few per cent of size.
const DEFLATE_LEVEL: u32 = 1;

/// One cell's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// Nothing.
    Blank,
    /// Text (borrowed from the list's frame where it can be).
    Text(Cow<'a, str>),
    /// A number.
    Number(f64),
    /// TRUE or FALSE.
    Bool(bool),
    /// A date, as days since 1970-01-01; shown `yyyy-mm-dd`.
    Date(i32),
}

/// A sheet: a header row and rows below it.
#[derive(Debug, Clone, Default)]
pub struct Sheet<'a> {
    /// Sheet name (at most 31 characters, none of `[]:*?/\`).
    pub name: String,
    /// Header row.
    pub header: Vec<String>,
    /// Data rows.
    pub rows: Vec<Vec<Value<'a>>>,
    /// Lines of notes written under the table (no filter over them).
    pub notes: Vec<String>,
    /// Lines written above the header (a caveat that must be read before the rows: risk figures
    /// from cards trained on synthetic data); the header and the filter move down below them.
    pub banner: Vec<String>,
}

/// Why a workbook could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum WorkbookError {
    /// A date that is not `yyyy-mm-dd`.
    #[error("'{0}' is not a date (yyyy-mm-dd)")]
    BadDate(String),
    /// A part too large for a zip without the ZIP64 extension (over 4 GiB).
    #[error("workbook part {0} is larger than 4 GiB")]
    TooLarge(String),
    /// More sheets than a zip without ZIP64 holds.
    #[error("{0} sheets: too many for one workbook")]
    TooManySheets(usize),
    /// Deflate failed (writing to memory: should not happen).
    #[error("compressing {part}: {source}")]
    Deflate {
        /// The part.
        part: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Cell styles (indices into `cellXfs` of [`STYLES`]).
const STYLE_HEADER: u8 = 1;
const STYLE_NOTE: u8 = 2;
const STYLE_DATE: u8 = 3;

/// The style sheet: Calibri 11; a bold header on a light blue fill with a thin bottom border,
/// an italic grey note, and the date format `yyyy-mm-dd`.
const STYLES: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
    "\n",
    r#"<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#,
    r#"<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\-mm\-dd"/></numFmts>"#,
    r#"<fonts count="3"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>"#,
    r#"<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font>"#,
    r#"<font><i/><sz val="11"/><color rgb="FF555555"/><name val="Calibri"/><family val="2"/></font></fonts>"#,
    r#"<fills count="3"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>"#,
    r#"<fill><patternFill patternType="solid"><fgColor rgb="FFE8F0FA"/><bgColor indexed="64"/></patternFill></fill></fills>"#,
    r#"<borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border>"#,
    r#"<border><left/><right/><top/><bottom style="thin"><color auto="1"/></bottom><diagonal/></border></borders>"#,
    r#"<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>"#,
    r#"<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>"#,
    r#"<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1" applyFill="1" applyBorder="1"/>"#,
    r#"<xf numFmtId="0" fontId="2" fillId="0" borderId="0" xfId="0" applyFont="1"/>"#,
    r#"<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>"#,
    r#"<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>"#,
    r#"<dxfs count="0"/><tableStyles count="0" defaultTableStyle="TableStyleMedium9" defaultPivotStyle="PivotStyleLight16"/></styleSheet>"#
);

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
const NS_MAIN: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const NS_REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
const NS_PKG_REL: &str = "http://schemas.openxmlformats.org/package/2006/relationships";

/// Column letters of 0-based column `c` (`A`, ..., `Z`, `AA`, ...).
fn column_letters(c: usize) -> String {
    let mut n = c + 1;
    let mut out = Vec::new();
    while n > 0 {
        let r = (n - 1) % 26;
        out.push(b'A' + r as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Append `s` as XML text (element content, or an attribute value in double quotes): `&`, `<`,
/// `>` and `"` escaped; control characters (carriage return included) and U+FFFE/U+FFFF written
/// as Excel's `_xHHHH_`, and a literal `_xHHHH_` protected by escaping its underscore, so Excel
/// shows the text as given.
/// Returns the characters of `s` (for the column width).
fn escape_into(out: &mut Vec<u8>, s: &str) -> usize {
    let b = s.as_bytes();
    // Most text (pseudonyms, codes, reasons) needs nothing: copy it whole.
    let Some(first) = b.iter().position(|&c| SPECIAL[usize::from(c)]) else {
        out.extend_from_slice(b);
        return s.chars().count();
    };
    let mut from = 0;
    let mut i = first;
    while i < b.len() {
        let c = b[i];
        if !SPECIAL[usize::from(c)] {
            i += 1;
            continue;
        }
        // U+FFFE and U+FFFF (EF BF BE, EF BF BF) are not XML characters either.
        if c == 0xEF {
            if b.len() >= i + 3 && b[i + 1] == 0xBF && (b[i + 2] == 0xBE || b[i + 2] == 0xBF) {
                out.extend_from_slice(&b[from..i]);
                out.extend_from_slice(if b[i + 2] == 0xBE {
                    b"_xFFFE_"
                } else {
                    b"_xFFFF_"
                });
                from = i + 3;
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        let rep: Cow<'static, str> = match c {
            b'&' => "&amp;".into(),
            b'<' => "&lt;".into(),
            b'>' => "&gt;".into(),
            b'"' => "&quot;".into(),
            b'_' if b.len() >= i + 7
                && b[i + 1] == b'x'
                && b[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit)
                && b[i + 6] == b'_' =>
            {
                "_x005F_".into()
            }
            b'_' => {
                i += 1;
                continue;
            }
            _ => format!("_x{c:04X}_").into(),
        };
        out.extend_from_slice(&b[from..i]);
        out.extend_from_slice(rep.as_bytes());
        from = i + 1;
        i += 1;
    }
    out.extend_from_slice(&b[from..]);
    s.chars().count()
}

/// Bytes [`escape_into`] may have to replace: markup, control characters other than tab and
/// newline, `_` (the start of Excel's `_xHHHH_`) and 0xEF (the lead byte of U+FFFE and U+FFFF).
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        // Tab and newline pass; a carriage return is escaped too (an XML reader would turn
        // it into a newline).
        t[c] = !matches!(c, 0x09 | 0x0A);
        c += 1;
    }
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'"' as usize] = true;
    t[b'_' as usize] = true;
    t[0xEF] = true;
    t
};

/// `s` escaped for XML, as a string.
fn escaped(s: &str) -> String {
    let mut v = Vec::with_capacity(s.len());
    escape_into(&mut v, s);
    String::from_utf8(v).unwrap_or_default()
}

/// A number as Excel stores it: integers without a decimal point, others in the shortest form
/// that reads back as the same `f64`. Returns the characters written (for the column width).
fn number_into(out: &mut Vec<u8>, n: f64) -> usize {
    let start = out.len();
    if n.fract() == 0.0 && n.abs() < 1e15 {
        out.extend_from_slice(itoa::Buffer::new().format(n as i64).as_bytes());
    } else {
        // Shortest round-trip digits; an exponent written as Excel writes it (`1E+20`, `1E-7`).
        let mut buf = ryu::Buffer::new();
        let s = buf.format_finite(n);
        match s.split_once('e') {
            Some((m, e)) => {
                out.extend_from_slice(m.as_bytes());
                out.push(b'E');
                if !e.starts_with('-') {
                    out.push(b'+');
                }
                out.extend_from_slice(e.as_bytes());
            }
            None => out.extend_from_slice(s.as_bytes()),
        }
    }
    out.len() - start
}

/// Excel's stored column width for a width of `w` characters (Calibri 11: 7-pixel digits, 5
/// pixels of padding, in 1/256ths).
fn excel_width(w: usize) -> f64 {
    ((w as f64 * 7.0 + 5.0) / 7.0 * 256.0).floor() / 256.0
}

/// A cell's opening tag: `<c r="B7"` with its style.
fn cell_open(out: &mut Vec<u8>, col: &str, row: &[u8], style: u8) {
    out.extend_from_slice(b"<c r=\"");
    out.extend_from_slice(col.as_bytes());
    out.extend_from_slice(row);
    out.push(b'"');
    if style != 0 {
        out.extend_from_slice(b" s=\"");
        out.extend_from_slice(itoa::Buffer::new().format(style).as_bytes());
        out.push(b'"');
    }
}

/// An inline text cell; returns its characters.
fn text_cell(out: &mut Vec<u8>, col: &str, row: &[u8], style: u8, text: &str) -> usize {
    let text = if text.len() > MAX_CELL_CHARS {
        match text.char_indices().nth(MAX_CELL_CHARS) {
            Some((i, _)) => &text[..i],
            None => text,
        }
    } else {
        text
    };
    cell_open(out, col, row, style);
    out.extend_from_slice(b" t=\"inlineStr\"><is>");
    let edge = |c: Option<char>| c.is_some_and(char::is_whitespace);
    if edge(text.chars().next()) || edge(text.chars().next_back()) {
        out.extend_from_slice(b"<t xml:space=\"preserve\">");
    } else {
        out.extend_from_slice(b"<t>");
    }
    let n = escape_into(out, text);
    out.extend_from_slice(b"</t></is></c>");
    n
}

/// One sheet as SpreadsheetML, with its last column and row (1-based) for the filter range.
fn sheet_xml(sheet: &Sheet, selected: bool) -> Vec<u8> {
    let ncols = sheet
        .rows
        .iter()
        .map(Vec::len)
        .chain([sheet.header.len(), 1])
        .max()
        .unwrap_or(1);
    let letters: Vec<String> = (0..ncols).map(column_letters).collect();
    let mut widths: Vec<usize> = sheet.header.iter().map(|h| h.chars().count() + 3).collect();
    widths.resize(ncols, 8);
    let mut data: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut row_buf = itoa::Buffer::new();
    // Banner lines, then the header.
    let top = sheet.banner.len();
    for (k, line) in sheet.banner.iter().enumerate() {
        let r = (k + 1).to_string();
        data.extend_from_slice(format!("<row r=\"{r}\">").as_bytes());
        text_cell(&mut data, "A", r.as_bytes(), STYLE_NOTE, line);
        data.extend_from_slice(b"</row>");
    }
    let head = (top + 1).to_string();
    data.extend_from_slice(format!("<row r=\"{head}\">").as_bytes());
    for (c, h) in sheet.header.iter().enumerate() {
        text_cell(&mut data, &letters[c], head.as_bytes(), STYLE_HEADER, h);
    }
    data.extend_from_slice(b"</row>");
    for (k, row) in sheet.rows.iter().enumerate() {
        let r = row_buf.format(k + 2 + top).as_bytes().to_vec();
        data.extend_from_slice(b"<row r=\"");
        data.extend_from_slice(&r);
        data.extend_from_slice(b"\">");
        for (c, v) in row.iter().enumerate() {
            let chars = match v {
                Value::Blank => 0,
                // Empty text is an empty cell, as in Excel (a filter's "blanks", COUNTA).
                Value::Text(t) if t.is_empty() => 0,
                Value::Text(t) => text_cell(&mut data, &letters[c], &r, 0, t),
                Value::Number(n) if n.is_finite() => {
                    cell_open(&mut data, &letters[c], &r, 0);
                    data.extend_from_slice(b"><v>");
                    let n = number_into(&mut data, *n);
                    data.extend_from_slice(b"</v></c>");
                    n
                }
                Value::Number(_) => 0,
                Value::Bool(b) => {
                    cell_open(&mut data, &letters[c], &r, 0);
                    data.extend_from_slice(if *b {
                        b" t=\"b\"><v>1</v></c>"
                    } else {
                        b" t=\"b\"><v>0</v></c>"
                    });
                    5
                }
                Value::Date(d) => {
                    cell_open(&mut data, &letters[c], &r, STYLE_DATE);
                    data.extend_from_slice(b"><v>");
                    number_into(&mut data, f64::from(d + EXCEL_EPOCH_OFFSET));
                    data.extend_from_slice(b"</v></c>");
                    10
                }
            };
            widths[c] = widths[c].max(chars + 1);
        }
        data.extend_from_slice(b"</row>");
    }
    let last_data = sheet.rows.len() + 1 + top;
    let mut last_row = last_data;
    for (k, n) in sheet.notes.iter().enumerate() {
        // A blank row, then the notes.
        let r = (last_data + 2 + k).to_string();
        data.extend_from_slice(format!("<row r=\"{r}\">").as_bytes());
        text_cell(&mut data, "A", r.as_bytes(), STYLE_NOTE, n);
        data.extend_from_slice(b"</row>");
        last_row = last_data + 2 + k;
    }
    let last_col = &letters[ncols - 1];
    let mut xml = Vec::with_capacity(data.len() + 4096);
    xml.extend_from_slice(XML_DECL.as_bytes());
    let _ = write!(
        xml,
        "<worksheet xmlns=\"{NS_MAIN}\" xmlns:r=\"{NS_REL}\"><dimension ref=\"A1:{last_col}{last_row}\"/><sheetViews><sheetView {}workbookViewId=\"0\"><pane ySplit=\"{}\" topLeftCell=\"A{}\" activePane=\"bottomLeft\" state=\"frozen\"/><selection pane=\"bottomLeft\"/></sheetView></sheetViews><sheetFormatPr defaultRowHeight=\"15\"/><cols>",
        if selected { "tabSelected=\"1\" " } else { "" },
        top + 1,
        top + 2
    );
    for (c, w) in widths.iter().enumerate() {
        let _ = write!(
            xml,
            "<col min=\"{0}\" max=\"{0}\" width=\"{1}\" customWidth=\"1\"/>",
            c + 1,
            excel_width((*w).clamp(6, MAX_WIDTH))
        );
    }
    xml.extend_from_slice(b"</cols><sheetData>");
    xml.extend_from_slice(&data);
    let _ = write!(
        xml,
        "</sheetData><autoFilter ref=\"A{head}:{last_col}{last_data}\"/><pageMargins left=\"0.7\" right=\"0.7\" top=\"0.75\" bottom=\"0.75\" header=\"0.3\" footer=\"0.3\"/></worksheet>"
    );
    xml
}

/// A sheet name as used in a formula or defined name: in single quotes, quotes doubled.
fn quoted_sheet(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

/// The package's fixed parts around the sheets: content types, relationships, the workbook
/// (sheet names and filter ranges), document properties.
fn package_parts(sheets: &[Sheet], title: &str, created: &str) -> Vec<(String, Vec<u8>)> {
    let n = sheets.len();
    let mut types = format!(
        "{XML_DECL}<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/docProps/app.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.extended-properties+xml\"/><Override PartName=\"/docProps/core.xml\" ContentType=\"application/vnd.openxmlformats-package.core-properties+xml\"/><Override PartName=\"/xl/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/><Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>"
    );
    for k in 1..=n {
        types.push_str(&format!("<Override PartName=\"/xl/worksheets/sheet{k}.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>"));
    }
    types.push_str("</Types>");
    let rels = format!(
        "{XML_DECL}<Relationships xmlns=\"{NS_PKG_REL}\"><Relationship Id=\"rId1\" Type=\"{NS_REL}/officeDocument\" Target=\"xl/workbook.xml\"/><Relationship Id=\"rId2\" Type=\"http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties\" Target=\"docProps/core.xml\"/><Relationship Id=\"rId3\" Type=\"{NS_REL}/extended-properties\" Target=\"docProps/app.xml\"/></Relationships>"
    );
    let mut titles = String::new();
    for s in sheets {
        titles.push_str(&format!("<vt:lpstr>{}</vt:lpstr>", escaped(&s.name)));
    }
    let app = format!(
        "{XML_DECL}<Properties xmlns=\"http://schemas.openxmlformats.org/officeDocument/2006/extended-properties\" xmlns:vt=\"http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes\"><Application>Microsoft Excel</Application><DocSecurity>0</DocSecurity><ScaleCrop>false</ScaleCrop><HeadingPairs><vt:vector size=\"2\" baseType=\"variant\"><vt:variant><vt:lpstr>Worksheets</vt:lpstr></vt:variant><vt:variant><vt:i4>{n}</vt:i4></vt:variant></vt:vector></HeadingPairs><TitlesOfParts><vt:vector size=\"{n}\" baseType=\"lpstr\">{titles}</vt:vector></TitlesOfParts><Company></Company><LinksUpToDate>false</LinksUpToDate><SharedDoc>false</SharedDoc><HyperlinksChanged>false</HyperlinksChanged><AppVersion>12.0000</AppVersion></Properties>"
    );
    let core = format!(
        "{XML_DECL}<cp:coreProperties xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:dcterms=\"http://purl.org/dc/terms/\" xmlns:dcmitype=\"http://purl.org/dc/dcmitype/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><dc:title>{}</dc:title><dc:creator>strata</dc:creator><cp:lastModifiedBy>strata</cp:lastModifiedBy><dcterms:created xsi:type=\"dcterms:W3CDTF\">{created}T00:00:00Z</dcterms:created><dcterms:modified xsi:type=\"dcterms:W3CDTF\">{created}T00:00:00Z</dcterms:modified></cp:coreProperties>",
        escaped(title)
    );
    let mut book = format!(
        "{XML_DECL}<workbook xmlns=\"{NS_MAIN}\" xmlns:r=\"{NS_REL}\"><fileVersion appName=\"xl\" lastEdited=\"4\" lowestEdited=\"4\" rupBuild=\"4505\"/><workbookPr defaultThemeVersion=\"124226\"/><bookViews><workbookView xWindow=\"240\" yWindow=\"15\" windowWidth=\"16095\" windowHeight=\"9660\"/></bookViews><sheets>"
    );
    for (k, s) in sheets.iter().enumerate() {
        book.push_str(&format!(
            "<sheet name=\"{}\" sheetId=\"{}\" r:id=\"rId{}\"/>",
            escaped(&s.name),
            k + 1,
            k + 1
        ));
    }
    book.push_str("</sheets><definedNames>");
    for (k, s) in sheets.iter().enumerate() {
        let ncols = s
            .rows
            .iter()
            .map(Vec::len)
            .chain([s.header.len(), 1])
            .max()
            .unwrap_or(1);
        book.push_str(&format!(
            "<definedName name=\"_xlnm._FilterDatabase\" localSheetId=\"{k}\" hidden=\"1\">{}!$A${}:${}${}</definedName>",
            escaped(&quoted_sheet(&s.name)),
            s.banner.len() + 1,
            column_letters(ncols - 1),
            s.rows.len() + 1 + s.banner.len()
        ));
    }
    book.push_str("</definedNames><calcPr calcId=\"124519\" fullCalcOnLoad=\"1\"/></workbook>");
    let mut wb_rels = format!("{XML_DECL}<Relationships xmlns=\"{NS_PKG_REL}\">");
    for k in 1..=n {
        wb_rels.push_str(&format!(
            "<Relationship Id=\"rId{k}\" Type=\"{NS_REL}/worksheet\" Target=\"worksheets/sheet{k}.xml\"/>"
        ));
    }
    wb_rels.push_str(&format!(
        "<Relationship Id=\"rId{}\" Type=\"{NS_REL}/styles\" Target=\"styles.xml\"/></Relationships>",
        n + 1
    ));
    vec![
        ("[Content_Types].xml".into(), types.into_bytes()),
        ("_rels/.rels".into(), rels.into_bytes()),
        ("docProps/app.xml".into(), app.into_bytes()),
        ("docProps/core.xml".into(), core.into_bytes()),
        ("xl/workbook.xml".into(), book.into_bytes()),
        ("xl/_rels/workbook.xml.rels".into(), wb_rels.into_bytes()),
        ("xl/styles.xml".into(), STYLES.as_bytes().to_vec()),
    ]
}

/// A zip archive built in memory: deflated entries, every one dated 1980-01-01 00:00 (so the
/// same parts give the same bytes), no ZIP64.
struct Zip {
    out: Vec<u8>,
    central: Vec<u8>,
    entries: u16,
}

impl Zip {
    /// MS-DOS date of 1980-01-01 (the zip epoch); the time is 00:00.
    const DOS_DATE: u16 = (1 << 5) | 1;

    fn new() -> Zip {
        Zip {
            out: Vec::new(),
            central: Vec::new(),
            entries: 0,
        }
    }

    fn add(&mut self, name: &str, data: &[u8]) -> Result<(), WorkbookError> {
        let too_large = || WorkbookError::TooLarge(name.to_string());
        let mut crc = Crc::new();
        crc.update(data);
        let mut enc = DeflateEncoder::new(
            Vec::with_capacity(data.len() / 4 + 64),
            Compression::new(DEFLATE_LEVEL),
        );
        let deflated = enc
            .write_all(data)
            .and_then(|()| enc.finish())
            .map_err(|source| WorkbookError::Deflate {
                part: name.to_string(),
                source,
            })?;
        let size = u32::try_from(data.len()).map_err(|_| too_large())?;
        let csize = u32::try_from(deflated.len()).map_err(|_| too_large())?;
        let offset = u32::try_from(self.out.len()).map_err(|_| too_large())?;
        let nlen = name.len() as u16;
        // Local file header.
        let o = &mut self.out;
        o.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        o.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0 (deflate)
        o.extend_from_slice(&0u16.to_le_bytes()); // flags
        o.extend_from_slice(&8u16.to_le_bytes()); // method: deflate
        o.extend_from_slice(&0u16.to_le_bytes()); // time 00:00
        o.extend_from_slice(&Self::DOS_DATE.to_le_bytes());
        o.extend_from_slice(&crc.sum().to_le_bytes());
        o.extend_from_slice(&csize.to_le_bytes());
        o.extend_from_slice(&size.to_le_bytes());
        o.extend_from_slice(&nlen.to_le_bytes());
        o.extend_from_slice(&0u16.to_le_bytes()); // extra field length
        o.extend_from_slice(name.as_bytes());
        o.extend_from_slice(&deflated);
        // Central directory entry.
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&20u16.to_le_bytes()); // made by: 2.0, MS-DOS
        c.extend_from_slice(&20u16.to_le_bytes()); // version needed
        c.extend_from_slice(&0u16.to_le_bytes()); // flags
        c.extend_from_slice(&8u16.to_le_bytes()); // method
        c.extend_from_slice(&0u16.to_le_bytes()); // time
        c.extend_from_slice(&Self::DOS_DATE.to_le_bytes());
        c.extend_from_slice(&crc.sum().to_le_bytes());
        c.extend_from_slice(&csize.to_le_bytes());
        c.extend_from_slice(&size.to_le_bytes());
        c.extend_from_slice(&nlen.to_le_bytes());
        c.extend_from_slice(&[0; 8]); // extra, comment lengths; disk; internal attributes
        c.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        self.entries += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<u8>, WorkbookError> {
        let too_large = || WorkbookError::TooLarge("central directory".into());
        let at = u32::try_from(self.out.len()).map_err(|_| too_large())?;
        let size = u32::try_from(self.central.len()).map_err(|_| too_large())?;
        self.out.extend_from_slice(&self.central);
        let o = &mut self.out;
        o.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        o.extend_from_slice(&[0; 4]); // this disk, disk with the directory
        o.extend_from_slice(&self.entries.to_le_bytes());
        o.extend_from_slice(&self.entries.to_le_bytes());
        o.extend_from_slice(&size.to_le_bytes());
        o.extend_from_slice(&at.to_le_bytes());
        o.extend_from_slice(&0u16.to_le_bytes()); // comment length
        Ok(self.out)
    }
}

/// The workbook of `sheets` as the bytes of an `.xlsx` file, its title `title` and its creation
/// date `created` (ISO `yyyy-mm-dd`, the run's as-of date). The first sheet is the one shown
/// on opening.
pub fn workbook(sheets: &[Sheet], title: &str, created: &str) -> Result<Vec<u8>, WorkbookError> {
    if crate::date::parse_days(created).is_none() {
        return Err(WorkbookError::BadDate(created.to_string()));
    }
    if sheets.len() > 60_000 {
        return Err(WorkbookError::TooManySheets(sheets.len()));
    }
    let mut zip = Zip::new();
    for (name, part) in package_parts(sheets, title, created) {
        zip.add(&name, &part)?;
    }
    for (k, sheet) in sheets.iter().enumerate() {
        zip.add(
            &format!("xl/worksheets/sheet{}.xml", k + 1),
            &sheet_xml(sheet, k == 0),
        )?;
    }
    zip.finish()
}

/// A sheet name Excel accepts, distinct from `taken`: forbidden characters become `_`, at most
/// 31 characters.
fn sheet_name(want: &str, taken: &[String]) -> String {
    // At most 31 characters, then no quote at either end (Excel refuses a name that starts or
    // ends with one); forbidden and control characters become '_'.
    let clean: String = want
        .chars()
        .map(|c| {
            if "[]:*?/\\".contains(c) || c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' {
                '_'
            } else {
                c
            }
        })
        .take(31)
        .collect::<String>()
        .trim_matches('\'')
        .to_string();
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

/// A frame's columns as cell values, column by column (text borrowed from the frame).
fn column_values(c: &Column) -> PolarsResult<Vec<Value<'_>>> {
    let s = c.as_materialized_series();
    Ok(match s.dtype() {
        DataType::String => s
            .str()?
            .iter()
            .map(|v| v.map_or(Value::Blank, |t| Value::Text(Cow::Borrowed(t))))
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
            .map(|v| v.map_or(Value::Blank, |t| Value::Text(Cow::Owned(t.to_string()))))
            .collect(),
    })
}

/// A published count as a cell: the number, or `[c]`.
fn count(c: Cell) -> Value<'static> {
    match c {
        Cell::Count(n) => Value::Number(n as f64),
        Cell::Suppressed => Value::Text(Cow::Borrowed("[c]")),
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
pub fn summary_sheet(pcn: &PcnSummary) -> Sheet<'static> {
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
            Value::Text(Cow::Owned(g.clone())),
            Value::Text(Cow::Borrowed(group)),
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
            Value::Text(Cow::Owned(d.clone())),
            Value::Text(Cow::Owned(g.clone())),
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
        banner: Vec::new(),
    }
}

/// The practice sheets: the list's rows of each practice, in rank order, practices in code
/// order, columns [`FIRST_COLUMNS`] first.
pub fn practice_sheets<'a>(
    list: &'a DataFrame,
    taken: &mut Vec<String>,
) -> PolarsResult<Vec<Sheet<'a>>> {
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
    let columns: Vec<Vec<Value<'a>>> = order
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
    // Risk figures from cards trained on synthetic data say so on every sheet too, in a line
    // above the header (every row also says it in its own column).
    let banner: Vec<String> = list
        .column(super::columns::RISK_SOURCE)
        .ok()
        .and_then(|c| c.str().ok()?.iter().next().flatten().map(str::to_string))
        .filter(|s| s.starts_with(super::columns::SYNTHETIC_SOURCE))
        .map(|s| {
            vec![format!(
                "Risk models trained on synthetic data: {s}: {}",
                super::columns::SYNTHETIC_ADVICE
            )]
        })
        .unwrap_or_default();
    let mut sheets = Vec::new();
    for (p, rows) in groups {
        for chunk in rows.chunks(MAX_ROWS - 1 - banner.len()) {
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
                banner: banner.clone(),
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
            banner: Vec::new(),
        });
    }
    Ok(sheets)
}

impl PcnWriter for Xlsx {
    fn extension(&self) -> &'static str {
        "xlsx"
    }

    fn encode(
        &self,
        w: &mut dyn Write,
        list: &DataFrame,
        pcn: &PcnSummary,
    ) -> Result<(), super::DocumentError> {
        let mut sheets = vec![summary_sheet(pcn)];
        let mut taken = vec![sheets[0].name.clone()];
        sheets.extend(practice_sheets(list, &mut taken)?);
        let title = format!("strata frailty list: PCN {}, as of {}", pcn.pcn, pcn.as_of);
        let bytes = workbook(&sheets, &title, &pcn.as_of)?;
        drop(sheets);
        w.write_all(&bytes)?;
        Ok(())
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
        // Cut to 31 characters first, then no quote left at the end.
        let cut = sheet_name(&("x".repeat(30) + "'y"), &taken);
        assert_eq!(cut, "x".repeat(30));
        assert_eq!(sheet_name("P1\tQ\n", &taken), "P1_Q_");
    }

    #[test]
    fn the_same_sheets_give_the_same_bytes_and_dates_are_excel_dates() {
        let sheet = Sheet {
            name: "S".into(),
            header: vec!["when".into(), "what".into()],
            rows: vec![vec![
                Value::Date(20_179),
                Value::Text("a < b & \u{1} _x0041_".into()),
                Value::Text("".into()),
                Value::Bool(true),
            ]],
            notes: vec!["note".into()],
            banner: Vec::new(),
        };
        let a = workbook(std::slice::from_ref(&sheet), "t", "2025-04-01").unwrap();
        let b = workbook(std::slice::from_ref(&sheet), "t", "2025-04-01").unwrap();
        assert_eq!(a, b, "byte-identical");
        assert_eq!(&a[..2], b"PK");
        // 2025-04-01 is day 20,179 since 1970, Excel serial 45,748.
        assert_eq!(20_179 + EXCEL_EPOCH_OFFSET, 45_748);
        let xml = String::from_utf8(sheet_xml(&sheet, true)).unwrap();
        assert!(xml.contains(r#"<c r="A2" s="3"><v>45748</v></c>"#), "{xml}");
        assert!(
            xml.contains(r#"<c r="B2" t="inlineStr"><is><t>a &lt; b &amp; _x0001_ _x005F_x0041_</t></is></c>"#),
            "{xml}"
        );
        // A blank row after the table, then the note; the filter covers the table only.
        assert!(xml.contains(
            r#"<row r="4"><c r="A4" s="2" t="inlineStr"><is><t>note</t></is></c></row>"#
        ));
        assert!(
            xml.contains(r#"<dimension ref="A1:D4"/>"#)
                && xml.contains(r#"<autoFilter ref="A1:D2"/>"#)
        );
        // Empty text is no cell at all; TRUE is a boolean cell.
        assert!(!xml.contains(r#"r="C2""#), "{xml}");
        assert!(xml.contains(r#"<c r="D2" t="b"><v>1</v></c>"#), "{xml}");
        assert!(xml.contains(r#"<sheetView tabSelected="1" workbookViewId="0"><pane ySplit="1""#));

        // A banner line above the header: the header, the frozen pane and the filter move down.
        let with = Sheet {
            banner: vec!["caveat".into()],
            ..sheet.clone()
        };
        let xml = String::from_utf8(sheet_xml(&with, false)).unwrap();
        assert!(xml.contains(
            r#"<row r="1"><c r="A1" s="2" t="inlineStr"><is><t>caveat</t></is></c></row><row r="2"><c r="A2" s="1""#
        ), "{xml}");
        assert!(xml.contains(r#"<c r="A3" s="3"><v>45748</v></c>"#), "{xml}");
        assert!(
            xml.contains(r#"<pane ySplit="2" topLeftCell="A3""#),
            "{xml}"
        );
        assert!(xml.contains(r#"<autoFilter ref="A2:D3"/>"#), "{xml}");
        let book = workbook(std::slice::from_ref(&with), "t", "2025-04-01").unwrap();
        assert_ne!(book, a);
    }

    #[test]
    fn columns_numbers_widths_and_text_are_written_as_excel_reads_them() {
        let l: Vec<String> = [0, 25, 26, 51, 52, 701, 702].map(column_letters).to_vec();
        assert_eq!(l, ["A", "Z", "AA", "AZ", "BA", "ZZ", "AAA"]);
        let num = |n: f64| {
            let mut v = Vec::new();
            let w = number_into(&mut v, n);
            assert_eq!(w, v.len());
            String::from_utf8(v).unwrap()
        };
        assert_eq!(num(12.0), "12");
        assert_eq!(num(-3.0), "-3");
        assert_eq!(num(0.1234), "0.1234");
        assert_eq!(num(1e20), "1E+20");
        assert_eq!(num(1.5e-7), "1.5E-7");
        assert_eq!(num(0.1234).parse::<f64>().unwrap(), 0.1234);
        // Calibri 11 widths as Excel stores them (7 characters: 7.7109375).
        assert_eq!(excel_width(7), 7.7109375);
        assert_eq!(excel_width(70), 70.7109375);
        let mut v = Vec::new();
        assert_eq!(escape_into(&mut v, "é \"x\" >"), 7, "characters, not bytes");
        assert_eq!(String::from_utf8(v).unwrap(), "é &quot;x&quot; &gt;");
        let mut v = Vec::new();
        escape_into(&mut v, "a\r\nb\u{FFFE}\u{FFFF}\u{FFFD}");
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "a_x000D_\nb_xFFFE__xFFFF_\u{FFFD}"
        );
        let mut v = Vec::new();
        text_cell(&mut v, "C", b"9", 0, " padded");
        assert_eq!(
            String::from_utf8(v).unwrap(),
            r#"<c r="C9" t="inlineStr"><is><t xml:space="preserve"> padded</t></is></c>"#
        );
        let mut v = Vec::new();
        let long = "é".repeat(MAX_CELL_CHARS + 5);
        assert_eq!(text_cell(&mut v, "A", b"1", 0, &long), MAX_CELL_CHARS);
    }

    #[test]
    fn a_bad_creation_date_is_refused() {
        assert!(matches!(
            workbook(&[], "t", "2025-13-01"),
            Err(WorkbookError::BadDate(_))
        ));
    }
}
