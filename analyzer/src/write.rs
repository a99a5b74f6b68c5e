//! Writing files without losing anything: every output (reports, baselines,
//! cache entries) goes to a temporary file beside its target and is renamed
//! into place, so a crash or an interrupt leaves the old contents or the
//! new, never a torn file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Write `bytes` to a path the user named (`-o FILE`, a baseline)
/// atomically, keeping what the path is: a symbolic link stays a link (its
/// target is replaced), and a target that is not a regular file
/// (`-o /dev/null`, a FIFO, `/dev/stdout`) is written in place, since
/// renaming over a device would replace it with a plain file.
pub fn write_output(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let target = resolve_links(path);
    if let Ok(m) = std::fs::metadata(&target) {
        if !m.is_file() && !m.is_dir() {
            let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&target)?;
            return f.write_all(bytes);
        }
    }
    write_atomic(&target, bytes)
}

/// Write `bytes` to `path` atomically: into a temporary file in the same
/// directory (a name no other writer uses: process id and a counter,
/// created exclusively), then renamed over `path`. On error the temporary
/// file is removed and `path` is untouched. For files kvmtk names itself
/// (cache entries); what a user names goes through [`write_output`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        // No fsync: a torn cache entry after a crash is rejected and
        // re-parsed, which costs less than syncing hundreds of files.
        f.write_all(bytes)?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `path` with symbolic links followed (a bounded number of hops, relative
/// targets taken from the link's directory); `path` itself when it is not
/// a link or cannot be read.
fn resolve_links(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..16 {
        let Ok(m) = std::fs::symlink_metadata(&p) else { break };
        if !m.file_type().is_symlink() {
            break;
        }
        let Ok(to) = std::fs::read_link(&p) else { break };
        p = match p.parent() {
            Some(dir) if to.is_relative() => dir.join(to),
            _ => to,
        };
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_kept_and_their_targets_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("report.json");
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("latest.json");
        std::os::unix::fs::symlink("report.json", &link).unwrap();
        write_output(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    #[test]
    fn a_fifo_is_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_output(&fifo, b"report\n").unwrap();
        // Checked before joining: a replaced FIFO would leave the reader waiting.
        use std::os::unix::fs::FileTypeExt as _;
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
        assert_eq!(reader.join().unwrap(), b"report\n");
    }
}
