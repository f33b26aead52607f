//! SHA-256 digests as lower-case hex, for the manifest's record of every file read and written.
//!
//! Pipeline position: the bottom layer, used by `provenance` (inputs, models), `datafile` (code
//! lists) and `sink` (outputs as they are written).

use std::path::Path;

use sha2::{Digest, Sha256};

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Size and SHA-256 (hex) of the file at `path`, read a mebibyte at a time: the hash, not the
/// copy, sets the pace, and the process's resident memory does not grow by the file's size, as
/// it did with a mapping of it (a cohort's events file is hundreds of megabytes).
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(&hasher.finalize())))
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
