//! The scratch copy `series test --build` builds in, and the commands run
//! there, so that an interrupted run leaves nothing behind.
//!
//! - The scratch directory is `$TMPDIR/kvmtk-series-build-XXXXXX`, locked
//!   (`flock`) by the run that owns it for as long as it lives. A run
//!   killed before it could remove it (SIGKILL, power loss) leaves it
//!   unlocked: the next `series test --build` removes every such directory
//!   of the same user that no live run holds.
//! - A build command runs in its own process group (so that the terminal's
//!   SIGINT reaches kvmtk, not it). While a scratch copy exists, SIGINT and
//!   SIGTERM are caught: kvmtk sends the signal to the build's process
//!   group, kills what is left of it after [`GRACE`], removes the scratch
//!   copy, and then dies by the same signal ([`reraise_if_interrupted`]).
//!
//! A signal handler can only leave a mark for the code it interrupted, so
//! the signal received is one process-wide atomic: the only global state of
//! kvmtk, set by the handler and read by the code polling the build.

use std::fs;
use std::io::{Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::SeriesError;

/// The name of a scratch directory in use, after its random suffix.
pub const SCRATCH_PREFIX: &str = "kvmtk-series-build-";
/// A scratch directory being created (before it is locked and renamed).
const NEW_PREFIX: &str = "kvmtk-series-new-";
/// How long an unlocked directory being created is left alone: its run may
/// be between creating and locking it.
const NEW_GRACE: Duration = Duration::from_secs(60);
/// How long the build's process group has to exit after the signal is
/// forwarded, before it is killed.
pub const GRACE: Duration = Duration::from_secs(3);
/// How often a running build is checked for an interruption.
const POLL: Duration = Duration::from_millis(20);

/// The scratch directory, removed when dropped.
pub struct Scratch {
    path: PathBuf,
    /// Held while the directory is in use: an unlocked one is stale.
    _lock: fs::File,
}

impl Scratch {
    /// Removes stale scratch directories of earlier runs, then creates and
    /// locks a new one in the temporary directory.
    pub fn create() -> Result<Scratch, SeriesError> {
        let tmp = std::env::temp_dir();
        remove_stale_scratches(&tmp);
        let fail = |e: std::io::Error| SeriesError::new(format!("cannot create a scratch directory: {e}"));
        let new = tempfile::Builder::new().prefix(NEW_PREFIX).tempdir_in(&tmp).map_err(fail)?;
        let lock = match try_lock_dir(new.path()) {
            Ok(Some(lock)) => lock,
            Ok(None) => return Err(SeriesError::new("cannot lock the new scratch directory")),
            Err(e) => return Err(fail(e)),
        };
        let suffix = new.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let path = tmp.join(format!("{SCRATCH_PREFIX}{}", suffix.trim_start_matches(NEW_PREFIX)));
        let new = new.keep();
        if let Err(e) = fs::rename(&new, &path) {
            let _ = fs::remove_dir_all(&new);
            return Err(fail(e));
        }
        Ok(Scratch { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// An open lock on `dir` if no one else holds one, `None` if someone does.
fn try_lock_dir(dir: &Path) -> std::io::Result<Option<fs::File>> {
    let f = fs::File::open(dir)?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    Ok((r == 0).then_some(f))
}

/// Removes the scratch directories in `tmp` that killed runs of this user
/// left: those no running kvmtk holds locked.
pub fn remove_stale_scratches(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else { return };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let being_created = name.starts_with(NEW_PREFIX);
        if !being_created && !name.starts_with(SCRATCH_PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if !meta.is_dir() || meta.uid() != me {
            continue;
        }
        if being_created {
            let age = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok());
            if age.is_none_or(|a| a < NEW_GRACE) {
                continue;
            }
        }
        if let Ok(Some(_lock)) = try_lock_dir(&path) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// The signal received while a guard is installed (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// The signal (SIGINT or SIGTERM) received while an [`InterruptGuard`]
/// was installed, if any.
pub fn interrupted() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The error a run stopped by a signal returns (its cleanup is done by the
/// time the caller sees it).
pub fn interrupted_error(sig: i32) -> SeriesError {
    SeriesError::new(format!("interrupted by {}: the build was stopped and the scratch copy removed", signal_name(sig)))
}

/// Returns the error of an interruption, if one happened.
pub fn check_interrupted() -> Result<(), SeriesError> {
    match interrupted() {
        Some(sig) => Err(interrupted_error(sig)),
        None => Ok(()),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Catches SIGINT and SIGTERM while it lives (a signal ignored when kvmtk
/// started, as in a background job, stays ignored); restores the previous
/// actions when dropped.
pub struct InterruptGuard {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl InterruptGuard {
    pub fn install() -> InterruptGuard {
        SIGNAL.store(0, Ordering::SeqCst);
        let mut previous = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: sigaction with zeroed, then filled, structures; the
            // handler only stores to an atomic (async-signal-safe).
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                new.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                if libc::sigaction(sig, &new, std::ptr::null_mut()) == 0 {
                    previous.push((sig, old));
                }
            }
        }
        InterruptGuard { previous }
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        for (sig, old) in &self.previous {
            // SAFETY: restores an action read by sigaction.
            unsafe {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
    }
}

/// After a run stopped by SIGINT or SIGTERM has cleaned up: die by that
/// signal, as the shell that started kvmtk expects of an interrupted
/// command. Returns when there was no interruption.
pub fn reraise_if_interrupted() {
    if let Some(sig) = interrupted() {
        // SAFETY: restoring the default action and raising the signal.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// Runs `sh -c cmd` in `dir`, in a new process group, with stdin closed;
/// returns whether it succeeded and `exit status N` (or how it died)
/// followed by its standard output and error. Interrupted (see the module
/// documentation): the process group is stopped and the interruption
/// returned as an error.
pub fn run_shell(cmd: &str, dir: &Path) -> Result<(bool, String), SeriesError> {
    check_interrupted()?;
    let cannot = |e: std::io::Error| SeriesError::new(format!("cannot run `sh -c {cmd}`: {e}"));
    let mut stdout = tempfile::tempfile().map_err(cannot)?;
    let mut stderr = tempfile::tempfile().map_err(cannot)?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .env("KVMTK_SCRATCH", dir)
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().map_err(cannot)?)
        .stderr(stderr.try_clone().map_err(cannot)?)
        .process_group(0)
        .spawn()
        .map_err(cannot)?;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(cannot)? {
            break status;
        }
        if let Some(sig) = interrupted() {
            stop_group(&mut child, sig);
            return Err(interrupted_error(sig));
        }
        std::thread::sleep(POLL);
    };
    let mut text = String::new();
    for f in [&mut stdout, &mut stderr] {
        let mut bytes = Vec::new();
        f.rewind().and_then(|()| f.read_to_end(&mut bytes)).map_err(cannot)?;
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
    let what = match status.code() {
        Some(c) => format!("exit status {c}"),
        None => "killed by a signal".into(),
    };
    Ok((status.success(), format!("{what}\n{text}")))
}

/// Sends `sig` to the child's process group, then SIGKILL to what is left
/// of it after [`GRACE`]; reaps the child.
fn stop_group(child: &mut Child, sig: i32) {
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else { return };
    // SAFETY: kill() on our child's process group (its id is the child's
    // pid: process_group(0)).
    unsafe {
        libc::kill(-pgid, sig);
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        // A zombie still counts in its group: reap the child first.
        let _ = child.try_wait();
        // SAFETY: signal 0 only checks that the group still has members.
        if unsafe { libc::kill(-pgid, 0) } != 0 {
            break;
        }
        std::thread::sleep(POLL);
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}
