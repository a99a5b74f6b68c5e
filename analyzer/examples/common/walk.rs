//! What the examples share: finding the C files under a directory.

use std::path::{Path, PathBuf};

/// Every `.c`/`.h` file under `dir` (not following symbolic links), added
/// to `out` in directory order.
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&p, out);
        } else if ft.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("c" | "h")) {
            out.push(p);
        }
    }
}
