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

/// Size and SHA-256 (hex) of the file at `path`, hashed from a read-only mapping (no copy).
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let f = std::fs::File::open(path)?;
    // SAFETY: read-only mapping; a file changed while it is hashed is outside the contract
    // (the run reads the same mapping's pages).
    let map = unsafe { memmap2::Mmap::map(&f) }?;
    Ok((map.len() as u64, sha256_hex(&map)))
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
