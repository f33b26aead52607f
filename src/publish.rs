//! Atomic publication of an output folder, and its manifest: the temporary folder, the swap
//! into place, the `latest` pointer of an output root, the JSON manifest and the record (size,
//! hashes) of every file written.
//!
//! Pipeline position: last. `run` publishes a scoring run's folder (filled by `output`) and
//! `synth` a synthetic cohort's. Everything is written into a temporary folder beside the
//! destination and swapped into place only when complete, so a failed or killed run never
//! leaves a half-written list where yesterday's good one was, and there is no moment with no
//! folder at all (on Linux; elsewhere the old folder is renamed aside just before).
//!
//! Two destinations ([`Destination`]): a plain folder (`--out DIR`, replaced as a whole), or an
//! output root (`--root ROOT`) holding one folder per as-of date, `ROOT/<as-of>/`, and a symlink
//! `ROOT/latest` that is moved to a run's folder, in one rename, only after that folder is in
//! place. Temporary entries are named `.tmp-<what>-<pid>-<nanos>`: never a date, so nothing
//! reading the root takes them for a run, and a later run removes those whose process is gone.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use crate::sink::{io_err, FileDigest, OutFile, OutputError, Written};

/// Record `rel` (a file under `dir` holding `rows` data rows, written as `digest`) for the
/// manifest.
pub fn record(rel: &str, rows: usize, digest: FileDigest) -> Written {
    pause_point("wrote");
    Written {
        path: rel.to_string(),
        rows: rows as u64,
        bytes: digest.bytes,
        sha256: digest.sha256,
    }
}

/// Write `value` as pretty JSON to `path`, synced.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), OutputError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    let text =
        serde_json::to_string_pretty(value).map_err(|e| io_err(path)(std::io::Error::other(e)))?;
    f.write_all(text.as_bytes()).map_err(io_err(path))?;
    f.write_all(b"\n").map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Where a run's outputs go.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// This folder, replaced as a whole (`--out DIR`).
    Folder(PathBuf),
    /// An output root: the run goes to `ROOT/<as-of>/` and `ROOT/latest` then points at it
    /// (`--root ROOT`).
    Root(PathBuf),
}

impl Destination {
    /// The folder a run named `name` (its as-of date) is published as.
    pub fn folder(&self, name: &str) -> PathBuf {
        match self {
            Destination::Folder(p) => p.clone(),
            Destination::Root(root) => root.join(name),
        }
    }
}

/// The name of the symlink in an output root that points at the last successful run.
pub const LATEST: &str = "latest";

/// The prefix of every temporary entry strata makes beside an output: folders being filled,
/// old folders swapped out, symlinks about to replace `latest`.
pub const TMP_PREFIX: &str = ".tmp-";

/// Publish a run named `name` to `dest`: to the folder itself, or to `ROOT/<name>` and then
/// `ROOT/latest` (see [`publish_run`]).
pub fn publish_to<T, E: From<OutputError>>(
    dest: &Destination,
    name: &str,
    fill: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, E> {
    match dest {
        Destination::Folder(out) => publish(out, fill),
        Destination::Root(root) => publish_run(root, name, fill),
    }
}

/// Publish a run into an output root: clean up what dead runs left, build `root/<name>`
/// atomically with [`publish`] (replacing an earlier run of the same name in one step), then
/// move `root/latest` to it with [`point_latest`]. `latest` never moves unless the folder is
/// complete and in place, and never backwards: a run for an earlier as-of date than the one
/// `latest` points at (a back-test) is published beside it and leaves `latest` alone (names are
/// as-of dates, `YYYY-MM-DD`, which sort as they read).
pub fn publish_run<T, E: From<OutputError>>(
    root: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, E> {
    std::fs::create_dir_all(root).map_err(|e| E::from(io_err(root)(e)))?;
    clean_stale(root, "");
    let value = publish(&root.join(name), fill)?;
    pause_point("published");
    if latest(root).is_none_or(|current| current.as_str() <= name) {
        point_latest(root, name).map_err(E::from)?;
    }
    Ok(value)
}

/// Build an output folder atomically: `fill` writes into a fresh temporary folder beside `out`;
/// only when it succeeds does the folder take `out`'s place, in one step where the platform
/// allows (Linux `renameat2(RENAME_EXCHANGE)`: `out` is never missing), else by renaming the old
/// `out` aside first. The old folder is then removed. On failure the temporary folder is
/// removed and `out` is left as it was; if the process dies, what it left is named
/// `.tmp-<name>-<pid>-...` and the next publication beside it removes it.
pub fn publish<T, E: From<OutputError>>(
    out: &Path,
    fill: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, E> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| E::from(io_err(&parent)(e)))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    if out.exists() && !out.join("manifest.json").is_file() && !is_empty_dir(out) {
        return Err(E::from(OutputError::NotOurs(out.to_path_buf())));
    }
    clean_stale(&parent, &name);
    let tmp = tmp_path(&parent, &name);
    std::fs::create_dir(&tmp).map_err(|e| E::from(io_err(&tmp)(e)))?;
    pause_point("created");
    let value = match fill(&tmp) {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    // The files are synced as they are written; their folders' entries too, before the swap.
    sync_dirs(&tmp);
    pause_point("filled");
    let aside = tmp_path(&parent, &name);
    match replace_dir(&tmp, out, &aside) {
        Ok(old) => {
            sync_dir(&parent);
            if let Some(old) = old {
                pause_point("swapped");
                let _ = std::fs::remove_dir_all(&old);
            }
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(E::from(io_err(out)(e)));
        }
    }
    Ok(value)
}

/// Point `root/latest` at `root/name` in one step: a new relative symlink is made under a
/// temporary name and renamed over `latest`. Refuses to replace a `latest` that is not a
/// symlink.
pub fn point_latest(root: &Path, name: &str) -> Result<(), OutputError> {
    let latest = root.join(LATEST);
    if let Ok(meta) = std::fs::symlink_metadata(&latest) {
        if !meta.file_type().is_symlink() {
            return Err(OutputError::NotALink(latest));
        }
    }
    let tmp = tmp_path(root, LATEST);
    symlink_dir(Path::new(name), &tmp).map_err(io_err(&tmp))?;
    pause_point("linked");
    if let Err(e) = std::fs::rename(&tmp, &latest) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&latest)(e));
    }
    sync_dir(root);
    Ok(())
}

/// The run `root/latest` points at (its folder name), if any.
pub fn latest(root: &Path) -> Option<String> {
    let target = std::fs::read_link(root.join(LATEST)).ok()?;
    let name = target.file_name()?.to_string_lossy().to_string();
    root.join(&name).is_dir().then_some(name)
}

/// The process id recorded in a temporary entry's name (`.tmp-<what>-<pid>-<nanos>`), or None
/// if the name is not one of strata's temporary names.
pub fn tmp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TMP_PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    let nanos = parts.next()?;
    let pid = parts.next()?;
    let what = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if what.is_empty() || !digits(nanos) || !digits(pid) {
        return None;
    }
    pid.parse().ok()
}

/// Remove temporary entries in `dir` whose name starts with `.tmp-<what>` and whose process no
/// longer runs: what a killed run left (a half-written folder, an old folder swapped out, a
/// symlink). Entries of live processes (a concurrent run) are left alone, as is everything when
/// liveness cannot be told (not Unix). Failures are ignored: the entry is retried next time and
/// is never mistaken for a run. Returns how many entries were removed.
pub fn clean_stale(dir: &Path, what: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let prefix = format!("{TMP_PREFIX}{what}");
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with(&prefix) {
            continue;
        }
        let Some(pid) = tmp_owner(&name) else {
            continue;
        };
        if process_alive(pid) {
            continue;
        }
        let path = entry.path();
        let gone = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) => Err(e),
        };
        if gone.is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` exists (Unix: `kill(pid, 0)`); elsewhere always true, so nothing is
/// cleaned up that might belong to a running process.
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// A fresh temporary path in `parent` for `what`.
fn tmp_path(parent: &Path, what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        + u128::from(SEQ.fetch_add(1, Ordering::Relaxed));
    parent.join(format!("{TMP_PREFIX}{what}-{}-{nanos}", std::process::id()))
}

/// Put the folder `new` at `dest`. If `dest` existed, returns where its old content now is
/// (to be removed): `new`'s path after an exchange, else `aside`.
fn replace_dir(new: &Path, dest: &Path, aside: &Path) -> std::io::Result<Option<PathBuf>> {
    if std::fs::symlink_metadata(dest).is_err() {
        std::fs::rename(new, dest)?;
        return Ok(None);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    match exchange(new, dest) {
        Ok(()) => return Ok(Some(new.to_path_buf())),
        // A file system without RENAME_EXCHANGE: the two-rename way below.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
            ) => {}
        Err(e) => return Err(e),
    }
    std::fs::rename(dest, aside)?;
    if let Err(e) = std::fs::rename(new, dest) {
        let _ = std::fs::rename(aside, dest);
        return Err(e);
    }
    Ok(Some(aside.to_path_buf()))
}

/// Swap two paths in one step (Linux `renameat2(RENAME_EXCHANGE)`).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let a = CString::new(a.as_os_str().as_bytes())?;
    let b = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(unix)]
fn symlink_dir(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink_dir(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_dir(target, link)
}

#[cfg(not(any(unix, windows)))]
fn symlink_dir(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other("symlinks are not supported here"))
}

/// Flush the entries of `dir` and of every folder under it to disk; best effort.
fn sync_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                sync_dirs(&e.path());
            }
        }
    }
    sync_dir(dir);
}

/// Flush a folder's entries (renames) to disk where the platform allows; best effort.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// The environment variable naming a stage at which a debug build stops (see [`pause_point`]).
pub const PAUSE_ENV: &str = "STRATA_TEST_PAUSE_AT";

/// A named point of publication where tests kill the process: in debug builds only, when
/// `STRATA_TEST_PAUSE_AT` names this stage, print `strata: paused at <stage>` to stderr and
/// sleep until killed. Release builds never pause. Stages, in order: `created` (empty temporary
/// folder), `wrote` (an output file written, others maybe not yet; see [`record`]), `filled`
/// (complete temporary
/// folder), `swapped` (new folder in place, old one not yet removed), `published` (before
/// `latest` moves), `linked` (new symlink made, not yet renamed over `latest`).
pub fn pause_point(stage: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    if std::env::var_os(PAUSE_ENV).is_some_and(|v| v == stage) {
        eprintln!("strata: paused at {stage}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strata-publish-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn replacing_a_folder_swaps_it_in_one_step() {
        let d = scratch("swap");
        let (new, dest, aside) = (d.join("new"), d.join("dest"), d.join("aside"));
        std::fs::create_dir_all(&new).unwrap();
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(new.join("f"), b"new").unwrap();
        std::fs::write(dest.join("f"), b"old").unwrap();
        let old = replace_dir(&new, &dest, &aside).unwrap();
        // An exchange: the old folder now has the new one's name; nothing was renamed aside,
        // so `dest` was never missing.
        assert_eq!(old.as_deref(), Some(new.as_path()));
        assert!(!aside.exists());
        assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"new");
        assert_eq!(std::fs::read(new.join("f")).unwrap(), b"old");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn temporary_names_carry_their_process_and_are_never_dates() {
        assert_eq!(tmp_owner(".tmp-2025-04-01-123-456"), Some(123));
        assert_eq!(tmp_owner(".tmp-latest-9-1"), Some(9));
        assert_eq!(tmp_owner(".tmp--9-1"), None);
        assert_eq!(tmp_owner("2025-04-01"), None);
        assert_eq!(tmp_owner(".tmp-x-y-1"), None);
        let t = tmp_path(Path::new("r"), "2025-04-01");
        let name = t.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(tmp_owner(&name), Some(std::process::id()));
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept() {
        let d = scratch("stale");
        // 4294967 is above Linux's largest pid: no such process.
        let dead = d.join(".tmp-2025-04-01-4294967-1");
        let mine = tmp_path(&d, "2025-04-01");
        let link = d.join(".tmp-latest-4294967-2");
        std::fs::create_dir_all(dead.join("lists")).unwrap();
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::create_dir_all(d.join("2025-04-01")).unwrap();
        symlink_dir(Path::new("2025-04-01"), &link).unwrap();
        let removed = clean_stale(&d, "");
        #[cfg(unix)]
        {
            assert_eq!(removed, 2);
            assert!(!dead.exists() && std::fs::symlink_metadata(&link).is_err());
        }
        #[cfg(not(unix))]
        assert_eq!(removed, 0);
        assert!(mine.is_dir(), "a live process's folder is kept");
        assert!(d.join("2025-04-01").is_dir(), "runs are never touched");
        let _ = std::fs::remove_dir_all(&d);
    }
}
