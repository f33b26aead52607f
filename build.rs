//! Build script: records the git commit strata is built from as `STRATA_GIT_COMMIT` (for the run
//! manifest), or "unknown" when there is no git or no repository (a source tarball, a vendored
//! copy). It never fails the build.

use std::path::PathBuf;
use std::process::Command;

/// `git <args>` in the package folder, its trimmed output if it succeeded.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Only strata's own repository: a copy vendored inside another repository is not at the top
    // of one, and that repository's commit would say nothing about strata's code.
    let own_repo = git(&["rev-parse", "--show-toplevel"])
        .and_then(|top| std::fs::canonicalize(top).ok())
        .zip(std::fs::canonicalize(env!("CARGO_MANIFEST_DIR")).ok())
        .is_some_and(|(top, here)| top == here);
    let commit = git(&["rev-parse", "HEAD"])
        .filter(|c| own_repo && c.len() >= 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=STRATA_GIT_COMMIT={commit}");
    // Build again when HEAD moves: HEAD itself (a checkout), the branch it points at (a commit)
    // and packed-refs (a gc). Only files that exist, or cargo would rebuild every time.
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watch.into_iter().flatten() {
        let mut p = PathBuf::from(&path);
        if p.is_relative() {
            p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p);
        }
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}
