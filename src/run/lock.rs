//! The lock a training process holds on its run directory ([`RunLock`]).

use std::path::Path;

use super::RunError;

/// File in a run directory that the process training the run holds locked.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a run directory, held by the process that trains the run and released
/// when dropped or when the process ends in any way (the kernel drops `flock` locks with the
/// process, `kill -9` included), so that a second `rlpg train --resume` of a run that is still
/// training is refused instead of interleaving two runs' checkpoints and event files.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Takes the lock of `run_dir`, or fails at once if another process holds it.
    pub fn acquire(run_dir: &Path) -> Result<RunLock, RunError> {
        let path = run_dir.join(LOCK_FILE);
        let file_err = |message: String| RunError::File { path: path.clone(), message };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| file_err(format!("cannot open the run's lock file: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
            let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if locked != 0 {
                let error = std::io::Error::last_os_error();
                return Err(if error.kind() == std::io::ErrorKind::WouldBlock {
                    RunError::InUse { run_dir: run_dir.to_owned() }
                } else {
                    file_err(format!("cannot lock the run: {error}"))
                });
            }
        }
        Ok(RunLock { _file: file })
    }
}
