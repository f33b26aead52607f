//! Provenance of a run, for its manifest: SHA-256 of files (inputs, model files, outputs), the
//! build that ran (version and git commit), hashed inputs computed beside the run.
//!
//! Pipeline position: beside the flow. `run` hashes the cohort's files while the cohort is read
//! and scored ([`InputHashes`]); `definitions` hashes each model file it reads and `publish` each
//! file it writes with [`sha256_hex`]; all of it lands in `manifest.json`.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

pub use crate::digest::{hex, sha256_file, sha256_hex};
use crate::input::contract::{ENCOUNTERS_FILE, EVENTS_FILE, MEDICATIONS_FILE, PATIENTS_FILE};
use crate::sink::OutputError;

/// The git commit strata was built from (`git rev-parse HEAD` at build time), or "unknown"
/// when it was built outside a git repository or without git.
pub const GIT_COMMIT: &str = env!("STRATA_GIT_COMMIT");

/// strata's version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The mark of a synthetic cohort's files (defined with the cohort contract).
pub use crate::input::contract::SYNTHETIC_KEY;

/// One file and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileHash {
    /// File name (relative to the folder it was read from).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
}

/// The cohort files a run reads from a folder, in contract order: patients, events, encounters
/// and, when present, medications.
pub fn cohort_files(dir: &Path) -> Vec<&'static str> {
    [
        PATIENTS_FILE,
        EVENTS_FILE,
        ENCOUNTERS_FILE,
        MEDICATIONS_FILE,
    ]
    .into_iter()
    .filter(|f| *f != MEDICATIONS_FILE || dir.join(f).exists())
    .collect()
}

/// Hash `files` of `dir`, in order.
pub fn hash_files(dir: &Path, files: &[&str]) -> Result<Vec<FileHash>, OutputError> {
    files
        .iter()
        .map(|f| {
            let path = dir.join(f);
            let (bytes, sha256) = sha256_file(&path).map_err(|source| OutputError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(FileHash {
                path: f.to_string(),
                bytes,
                sha256,
            })
        })
        .collect()
}

/// The cohort's files being hashed on a thread of their own, so hashing overlaps reading and
/// scoring instead of adding to them.
#[derive(Debug)]
pub struct InputHashes {
    dir: PathBuf,
    handle: JoinHandle<Result<Vec<FileHash>, OutputError>>,
}

impl InputHashes {
    /// Start hashing the cohort files of `dir`.
    pub fn start(dir: &Path) -> InputHashes {
        let owned = dir.to_path_buf();
        let handle = std::thread::spawn(move || hash_files(&owned, &cohort_files(&owned)));
        InputHashes {
            dir: dir.to_path_buf(),
            handle,
        }
    }

    /// Wait for the hashes.
    pub fn finish(self) -> Result<Vec<FileHash>, OutputError> {
        match self.handle.join() {
            Ok(r) => r,
            Err(_) => Err(OutputError::Io {
                path: self.dir,
                source: std::io::Error::other("the hashing thread panicked"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn files_hash_to_the_published_digests() {
        // FIPS 180-2's test vectors: "abc", the empty message, and a million 'a's.
        let dir = std::env::temp_dir().join(format!("strata-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases: [(&str, Vec<u8>, &str); 3] = [
            (
                "abc",
                b"abc".to_vec(),
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                "empty",
                Vec::new(),
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                "million",
                vec![b'a'; 1_000_000],
                "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
            ),
        ];
        for (name, bytes, want) in cases {
            let path = dir.join(name);
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(
                sha256_file(&path).unwrap(),
                (bytes.len() as u64, want.to_string())
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
