//! Small data files: the TSV format of the definition files under `models/`, exact decimals,
//! and the FNV-1a hash that fingerprints the model files in the run manifest (output files are
//! fingerprinted with SHA-256 as they are written: `publish::OutFile`).
//!
//! Pipeline position: beneath the pipeline, no dependencies. `definitions` parses its files with
//! [`Tsv`] and fingerprints them with [`fnv1a64`].

use std::path::{Path, PathBuf};

/// A problem with a data file: which file, which line, what.
#[derive(Debug, thiserror::Error)]
pub enum DataFileError {
    /// The file could not be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A line of the file is not what its header says.
    #[error("{path}, line {line}: {message}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// FNV-1a 64-bit hash, used to fingerprint model and output files.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A TSV data file: '#' comment lines, one header line, then rows of tab-separated fields
/// (trimmed).
#[derive(Debug, Clone)]
pub struct Tsv {
    /// The file read.
    pub path: PathBuf,
    /// Column names.
    pub header: Vec<String>,
    /// (1-based line number, fields) of every data row.
    pub rows: Vec<(usize, Vec<String>)>,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// FNV-1a 64-bit hash of the file's bytes.
    pub fnv1a64: u64,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
}

impl Tsv {
    /// Read `dir/rel`: its bytes' size and hash, its header and its rows.
    pub fn read(dir: &Path, rel: &str) -> Result<Tsv, DataFileError> {
        let path = dir.join(rel);
        let bytes = std::fs::read(&path).map_err(|source| DataFileError::Io {
            path: path.clone(),
            source,
        })?;
        let (size, hash) = (bytes.len() as u64, fnv1a64(&bytes));
        let sha256 = crate::provenance::sha256_hex(&bytes);
        let text = String::from_utf8(bytes).map_err(|_| DataFileError::Parse {
            path: path.clone(),
            line: 0,
            message: "not UTF-8".into(),
        })?;
        let mut header = None;
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let fields: Vec<String> = line.split('\t').map(|s| s.trim().to_string()).collect();
            if header.is_none() {
                header = Some(fields);
            } else {
                rows.push((i + 1, fields));
            }
        }
        let header = header.ok_or_else(|| DataFileError::Parse {
            path: path.clone(),
            line: 0,
            message: "no header line".into(),
        })?;
        Ok(Tsv {
            path,
            header,
            rows,
            bytes: size,
            fnv1a64: hash,
            sha256,
        })
    }

    /// Index of the column `name`.
    pub fn col(&self, name: &str) -> Result<usize, DataFileError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DataFileError::Parse {
                path: self.path.clone(),
                line: 0,
                message: format!("header has no column '{name}'"),
            })
    }

    /// A parse error at `line` of this file (0: the file as a whole).
    pub fn err(&self, line: usize, message: impl Into<String>) -> DataFileError {
        DataFileError::Parse {
            path: self.path.clone(),
            line,
            message: message.into(),
        }
    }

    /// Field `col` of a row, or an error naming the line.
    pub fn field<'a>(
        &self,
        row: &'a (usize, Vec<String>),
        col: usize,
    ) -> Result<&'a str, DataFileError> {
        row.1
            .get(col)
            .map(|s| s.as_str())
            .ok_or_else(|| self.err(row.0, format!("missing field {}", col + 1)))
    }

    /// All values of a key/value file for `key`.
    pub fn values(&self, key: &str) -> Result<Vec<(usize, String)>, DataFileError> {
        let (k, v) = (self.col("key")?, self.col("value")?);
        let mut out = Vec::new();
        for row in &self.rows {
            if self.field(row, k)? == key {
                out.push((row.0, self.field(row, v)?.to_string()));
            }
        }
        Ok(out)
    }

    /// The single value of a key/value file for `key`, with its line.
    pub fn value(&self, key: &str) -> Result<(usize, String), DataFileError> {
        let mut v = self.values(key)?;
        if v.len() != 1 {
            return Err(self.err(
                0,
                format!("expected exactly one '{key}' row, found {}", v.len()),
            ));
        }
        Ok(v.remove(0))
    }

    /// The single value for `key` as a whole number.
    pub fn value_u32(&self, key: &str) -> Result<u32, DataFileError> {
        let (line, v) = self.value(key)?;
        v.parse()
            .map_err(|_| self.err(line, format!("'{key}' must be a whole number, got '{v}'")))
    }
}

/// Parse a non-negative decimal like `7.1` or `0.12` into (numerator, denominator) exactly.
pub fn parse_decimal(s: &str) -> Option<(u64, u64)> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 9 || int.len() > 9 {
        return None;
    }
    let den = 10u64.pow(frac.len() as u32);
    let num = format!("{int}{frac}").parse::<u64>().ok()?;
    Some((num, den))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("0.12"), Some((12, 100)));
        assert_eq!(parse_decimal("7.1"), Some((71, 10)));
        assert_eq!(parse_decimal("15"), Some((15, 1)));
        assert_eq!(parse_decimal("-1"), None);
        assert_eq!(parse_decimal("."), None);
    }
}
