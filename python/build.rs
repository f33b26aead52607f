//! Embeds the repository's `models/` folder (code lists, weights, cut-points) in the extension,
//! so that an installed wheel scores without the source tree: `models.rs` in `OUT_DIR` lists
//! every file with its bytes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(&p, base, out)?;
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push((rel.to_string_lossy().replace('\\', "/"), p.clone()));
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let models = manifest.join("..").join("models").canonicalize()?;
    println!("cargo:rerun-if-changed={}", models.display());
    let mut files = Vec::new();
    walk(&models, &models, &mut files)?;
    let mut src = String::from("/// Every file of `models/`: path relative to it, and bytes.\npub const FILES: &[(&str, &[u8])] = &[\n");
    for (rel, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            src,
            "    ({rel:?}, include_bytes!({:?})),",
            path.display().to_string()
        )?;
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("models.rs");
    std::fs::write(out, src)?;
    Ok(())
}
