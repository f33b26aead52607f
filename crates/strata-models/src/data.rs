//! The in-memory table models are fitted on and applied to.

use crate::error::{ModelError, Result};
use std::io::{Read, Write};

/// A numeric feature table with binary labels.
///
/// Layout: **column-major** `f32` — column `j` is the contiguous slice
/// `x[j * n_rows .. (j + 1) * n_rows]`. Column-major suits what the models do most (per-feature
/// standardisation and quantile binning, and strata builds features column by column), and a row is
/// cheap to gather when one is needed (prediction, explanation). `NaN` means missing; infinite
/// values are refused (features are counts, ages, measurements: an infinity is an upstream bug).
///
/// Labels `y` are 0/1 with **1 = the event** (admission, fall, death): every model and metric in
/// this crate treats 1 as the positive class. A table built for prediction only may have no labels
/// (`y` empty); fitting or scoring such a table is an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    n_rows: usize,
    feature_names: Vec<String>,
    x: Vec<f32>,
    y: Vec<u8>,
}

impl Dataset {
    /// Builds a table from a column-major matrix (`x.len() == n_rows * feature_names.len()`) and
    /// labels (`y.len() == n_rows`, values 0/1; or empty for an unlabelled table).
    pub fn new(feature_names: Vec<String>, x: Vec<f32>, y: Vec<u8>) -> Result<Self> {
        let p = feature_names.len();
        if p == 0 {
            return Err(ModelError::Shape("no features".into()));
        }
        if x.len() % p != 0 {
            return Err(ModelError::Shape(format!(
                "matrix length {} is not a multiple of {} features",
                x.len(),
                p
            )));
        }
        let n_rows = x.len() / p;
        if !y.is_empty() && y.len() != n_rows {
            return Err(ModelError::Shape(format!(
                "{} labels for {} rows",
                y.len(),
                n_rows
            )));
        }
        if let Some(row) = y.iter().position(|&v| v > 1) {
            return Err(ModelError::BadLabel { row, value: y[row] });
        }
        if let Some(k) = x.iter().position(|v| v.is_infinite()) {
            return Err(ModelError::Shape(format!(
                "infinite value at row {}, feature {}",
                k % n_rows,
                feature_names[k / n_rows]
            )));
        }
        Ok(Self {
            n_rows,
            feature_names,
            x,
            y,
        })
    }

    /// Builds a table from row-major data (`rows[i * p + j]` = row `i`, feature `j`), transposing
    /// it into the column-major layout.
    pub fn from_row_major(feature_names: Vec<String>, rows: &[f32], y: Vec<u8>) -> Result<Self> {
        let p = feature_names.len();
        if p == 0 || rows.len() % p != 0 {
            return Err(ModelError::Shape(format!(
                "row-major length {} does not fit {} features",
                rows.len(),
                p
            )));
        }
        let n = rows.len() / p;
        let mut x = vec![0f32; rows.len()];
        for i in 0..n {
            for j in 0..p {
                x[j * n + i] = rows[i * p + j];
            }
        }
        Self::new(feature_names, x, y)
    }

    /// Number of rows (patients).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Feature names, in column order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The whole column-major matrix.
    pub fn x(&self) -> &[f32] {
        &self.x
    }

    /// Column `j` as a contiguous slice of length `n_rows`.
    pub fn column(&self, j: usize) -> &[f32] {
        &self.x[j * self.n_rows..(j + 1) * self.n_rows]
    }

    /// Value at row `i`, feature `j`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.x[j * self.n_rows + i]
    }

    /// Copies row `i` into `buf` (length `n_features`).
    pub fn row_into(&self, i: usize, buf: &mut [f32]) {
        for (j, b) in buf.iter_mut().enumerate().take(self.n_features()) {
            *b = self.x[j * self.n_rows + i];
        }
    }

    /// Labels (1 = event); empty for an unlabelled table.
    pub fn y(&self) -> &[u8] {
        &self.y
    }

    /// True if the table carries labels.
    pub fn is_labelled(&self) -> bool {
        !self.y.is_empty() || self.n_rows == 0
    }

    /// Labels, or an error naming `what` if the table is unlabelled or empty.
    pub(crate) fn labels_for(&self, what: &'static str) -> Result<&[u8]> {
        if self.n_rows == 0 {
            return Err(ModelError::Empty(what));
        }
        if self.y.is_empty() {
            return Err(ModelError::Shape(format!("{what}: table has no labels")));
        }
        Ok(&self.y)
    }

    /// A new table with the given rows, in the given order (used for train/test splits and
    /// cross-validation folds).
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.n_rows) {
            return Err(ModelError::Shape(format!(
                "row {bad} out of range ({} rows)",
                self.n_rows
            )));
        }
        let p = self.n_features();
        let m = rows.len();
        let mut x = vec![0f32; m * p];
        for j in 0..p {
            let col = self.column(j);
            let dst = &mut x[j * m..(j + 1) * m];
            for (d, &r) in dst.iter_mut().zip(rows) {
                *d = col[r];
            }
        }
        let y = if self.y.is_empty() {
            Vec::new()
        } else {
            rows.iter().map(|&r| self.y[r]).collect()
        };
        Self::new(self.feature_names.clone(), x, y)
    }

    /// Splits into rows `[0, at)` and `[at, n_rows)` (a time-ordered split keeps the later rows for
    /// validation).
    pub fn split_at(&self, at: usize) -> Result<(Self, Self)> {
        if at > self.n_rows {
            return Err(ModelError::Shape(format!(
                "split at {at} beyond {} rows",
                self.n_rows
            )));
        }
        let a: Vec<usize> = (0..at).collect();
        let b: Vec<usize> = (at..self.n_rows).collect();
        Ok((self.select_rows(&a)?, self.select_rows(&b)?))
    }

    /// Writes the table in the crate's raw binary format (see [`Dataset::read_raw`]).
    pub fn write_raw(&self, path: &std::path::Path) -> Result<()> {
        let io = |e| ModelError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let f = std::fs::File::create(path).map_err(io)?;
        let mut w = std::io::BufWriter::new(f);
        let mut head = Vec::new();
        head.extend_from_slice(RAW_MAGIC);
        head.extend_from_slice(&(self.n_rows as u64).to_le_bytes());
        head.extend_from_slice(&(self.n_features() as u64).to_le_bytes());
        head.push(u8::from(!self.y.is_empty()));
        for name in &self.feature_names {
            head.extend_from_slice(&(name.len() as u32).to_le_bytes());
            head.extend_from_slice(name.as_bytes());
        }
        w.write_all(&head).map_err(io)?;
        let mut buf = Vec::with_capacity(1 << 20);
        for chunk in self.x.chunks(1 << 18) {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&buf).map_err(io)?;
        }
        w.write_all(&self.y).map_err(io)?;
        w.flush().map_err(io)
    }

    /// Reads a table written by [`Dataset::write_raw`] (or by `py/compare.py`).
    ///
    /// Format (all little-endian): 8-byte magic `STRATAX1`; `u64` n_rows; `u64` n_features;
    /// `u8` has_labels; per feature a `u32` byte length and its UTF-8 name; the column-major `f32`
    /// matrix; if has_labels, `n_rows` label bytes (0/1). It is a deliberately trivial format so
    /// that a benchmark needs neither Parquet nor polars on the Rust side.
    pub fn read_raw(path: &std::path::Path) -> Result<Self> {
        let io = |e| ModelError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, f);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(io)?;
        if &magic != RAW_MAGIC {
            return Err(ModelError::Shape(format!(
                "{} is not a raw table (bad magic)",
                path.display()
            )));
        }
        let mut u64b = [0u8; 8];
        r.read_exact(&mut u64b).map_err(io)?;
        let n = u64::from_le_bytes(u64b) as usize;
        r.read_exact(&mut u64b).map_err(io)?;
        let p = u64::from_le_bytes(u64b) as usize;
        let mut flag = [0u8; 1];
        r.read_exact(&mut flag).map_err(io)?;
        let mut names = Vec::with_capacity(p);
        for _ in 0..p {
            let mut lb = [0u8; 4];
            r.read_exact(&mut lb).map_err(io)?;
            let mut nb = vec![0u8; u32::from_le_bytes(lb) as usize];
            r.read_exact(&mut nb).map_err(io)?;
            names.push(
                String::from_utf8(nb)
                    .map_err(|_| ModelError::Shape("feature name is not UTF-8".into()))?,
            );
        }
        let total = n
            .checked_mul(p)
            .ok_or_else(|| ModelError::Shape("table too large".into()))?;
        let mut bytes = vec![0u8; total * 4];
        r.read_exact(&mut bytes).map_err(io)?;
        let x: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        drop(bytes);
        let mut y = Vec::new();
        if flag[0] != 0 {
            y = vec![0u8; n];
            r.read_exact(&mut y).map_err(io)?;
        }
        Self::new(names, x, y)
    }
}

const RAW_MAGIC: &[u8; 8] = b"STRATAX1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_roundtrip() {
        let names = vec!["a".to_string(), "b".to_string()];
        let d = Dataset::from_row_major(names, &[1.0, 2.0, 3.0, f32::NAN, 5.0, 6.0], vec![0, 1, 0])
            .unwrap();
        assert_eq!(d.n_rows(), 3);
        assert_eq!(d.column(0), &[1.0, 3.0, 5.0]);
        assert!(d.get(1, 1).is_nan());
        let dir = std::env::temp_dir().join(format!("models-raw-{}", std::process::id()));
        d.write_raw(&dir).unwrap();
        let e = Dataset::read_raw(&dir).unwrap();
        std::fs::remove_file(&dir).ok();
        assert_eq!(e.y(), d.y());
        assert_eq!(e.feature_names(), d.feature_names());
        assert_eq!(
            e.x().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            d.x().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let (a, b) = d.split_at(2).unwrap();
        assert_eq!(a.n_rows(), 2);
        assert_eq!(b.column(1), &[6.0]);
    }

    #[test]
    fn rejects_bad_labels_and_shapes() {
        let names = vec!["a".to_string()];
        assert!(matches!(
            Dataset::new(names.clone(), vec![1.0, 2.0], vec![0, 2]),
            Err(ModelError::BadLabel { row: 1, value: 2 })
        ));
        assert!(Dataset::new(names, vec![1.0, 2.0], vec![0]).is_err());
    }
}
