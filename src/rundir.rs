//! Run directories, named as CleanRL names them: `{out_root}/{env}__{agent}__{seed}__{unix_time}`,
//! holding the run's resolved `config.toml`, its TensorBoard event files and its checkpoints.
//!
//! A directory is never reused: it is made with `create_dir`, which fails if the name exists,
//! and a taken name gets a suffix `-1`, `-2`, ... So two runs started in the same second, in one
//! process or in two, get two directories.
//!
//! A failed setup leaves nothing behind by removing what it made: [`RunDir::create_with_config`]
//! removes the new directory if writing the config fails, and [`RunDir::discard`] does the same
//! for a caller whose later setup steps fail. (Building the directory under a hidden name and
//! renaming it into place was the alternative; it was not chosen because renaming a directory
//! silently replaces an *empty* directory of the same name, so it cannot promise "never reused"
//! portably, and because the path would change under a caller that already holds it.) Only a
//! process killed in the few milliseconds between creating the directory and writing its config
//! can leave a directory without `config.toml`.
//!
//! Files are written with [`atomic_write`] (temporary file, fsync, rename, fsync of the
//! directory), so a reader sees the old file or the new one, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Config, ConfigError};

/// The name of the resolved config inside a run directory.
pub const CONFIG_FILE: &str = "config.toml";

/// How many suffixes (`-1`, `-2`, ...) to try before giving up on a name.
const MAX_SUFFIX: u32 = 10_000;

/// A run's output directory, created by this process (or opened for a resumed run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

/// Why a run directory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// Creating the output root or the run directory failed.
    #[error("cannot create run directory {}: {source}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Every name from the plain one to suffix `-10000` exists already.
    #[error("no free run directory name: {} and its suffixes -1 to -{MAX_SUFFIX} all exist", base.display())]
    NoFreeName {
        /// The plain name that was taken.
        base: PathBuf,
    },
    /// Writing a file in the run directory failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// An existing path given to [`RunDir::open`] is not a directory.
    #[error("{} is not a run directory: {reason}", path.display())]
    NotARunDir {
        /// The path.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// The config could not be written as TOML.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl RunDir {
    /// Creates `{out_root}/{env}__{agent}__{seed}__{now}` (and `out_root` if needed); if that
    /// name exists, the first free one of `...-1`, `...-2`, and so on. `env` and `agent` have
    /// every character other than ASCII letters, digits, `-`, `_` and `.` replaced by `_`, so
    /// an id can never make a nested or hidden path.
    pub fn create(
        out_root: &Path,
        env: &str,
        agent: &str,
        seed: u64,
    ) -> Result<RunDir, RunDirError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Self::create_at(out_root, env, agent, seed, now)
    }

    /// [`RunDir::create`] with a given Unix time in the name (for reproducible names in tests
    /// and tools).
    pub fn create_at(
        out_root: &Path,
        env: &str,
        agent: &str,
        seed: u64,
        unix_time: u64,
    ) -> Result<RunDir, RunDirError> {
        fs::create_dir_all(out_root)
            .map_err(|source| RunDirError::Create { path: out_root.to_owned(), source })?;
        let base = format!("{}__{}__{seed}__{unix_time}", path_safe(env), path_safe(agent));
        for suffix in 0..=MAX_SUFFIX {
            let name = if suffix == 0 { base.clone() } else { format!("{base}-{suffix}") };
            let path = out_root.join(name);
            match fs::create_dir(&path) {
                Ok(()) => return Ok(RunDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(RunDirError::Create { path, source }),
            }
        }
        Err(RunDirError::NoFreeName { base: out_root.join(base) })
    }

    /// Creates the run directory for `config` (named from its env, agent and seed) and writes
    /// the resolved config into it as `config.toml`. If writing fails, the new directory is
    /// removed again, so a failed setup leaves nothing behind.
    pub fn create_with_config(out_root: &Path, config: &Config) -> Result<RunDir, RunDirError> {
        Self::create_with_config_labelled(out_root, config, None)
    }

    /// [`RunDir::create_with_config`] with `label` (when given and not empty) after the agent's
    /// name: `{env}__{agent}-{label}__{seed}__{now}`, the slot CleanRL fills with its
    /// experiment name. `rlpg sweep` labels each run with its grid point.
    pub fn create_with_config_labelled(
        out_root: &Path,
        config: &Config,
        label: Option<&str>,
    ) -> Result<RunDir, RunDirError> {
        // Render first: a config that cannot be written should not create a directory at all.
        let text = config.to_toml_string()?;
        let name = match label.filter(|l| !l.is_empty()) {
            Some(label) => format!("{}-{label}", config.agent.name()),
            None => config.agent.name().to_owned(),
        };
        let run = Self::create(out_root, &config.env, &name, config.seed)?;
        let config_path = run.config_path();
        if let Err(source) = atomic_write(&config_path, text.as_bytes()) {
            // The write error is what the caller needs; a failed cleanup is secondary.
            let _ = run.discard();
            return Err(RunDirError::Write { path: config_path, source });
        }
        Ok(run)
    }

    /// Opens an existing run directory (to resume a run or inspect it).
    pub fn open(path: impl Into<PathBuf>) -> Result<RunDir, RunDirError> {
        let path = path.into();
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(RunDir { path }),
            Ok(_) => Err(RunDirError::NotARunDir { path, reason: "not a directory".to_owned() }),
            Err(e) => Err(RunDirError::NotARunDir { path, reason: e.to_string() }),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's own name, e.g. `CartPole-v1__reinforce__1__1764201600`.
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    /// Where the resolved config is (or will be) written.
    pub fn config_path(&self) -> PathBuf {
        self.path.join(CONFIG_FILE)
    }

    /// Writes `config` as `config.toml` in this directory, atomically (replacing any previous
    /// one as a whole).
    pub fn write_config(&self, config: &Config) -> Result<(), RunDirError> {
        let text = config.to_toml_string()?;
        let path = self.config_path();
        atomic_write(&path, text.as_bytes()).map_err(|source| RunDirError::Write { path, source })
    }

    /// Removes the directory and everything in it. For a run whose setup failed after
    /// [`RunDir::create`]; never call it on a run that has produced results worth keeping.
    pub fn discard(self) -> io::Result<()> {
        fs::remove_dir_all(&self.path)
    }
}

/// `s` with every character that could change the path's meaning replaced by `_`; a leading
/// `.` too, so that a name is never hidden or `..`.
fn path_safe(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out
}

/// Distinguishes temporary files of concurrent [`atomic_write`]s within one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Replaces (or creates) the file at `path` with `bytes` so that readers and crashes see either
/// the old content or the new, never a mix: the bytes go to a temporary file in the same
/// directory, which is synced, renamed over `path`, and the directory synced so the rename
/// itself survives a crash. For configs and checkpoints.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} has no file name", path.display()))
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let (mut file, temp) = loop {
        let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
        let temp =
            dir.join(format!(".{}.tmp-{}-{n}", file_name.to_string_lossy(), std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => break (file, temp),
            // Left by a crashed process with a recycled pid: pick the next number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let written =
        file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Makes a rename or creation in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    // Other systems cannot open a directory as a file; their rename is as durable as they make it.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_safe_keeps_ids_and_neutralizes_separators_and_dots() {
        assert_eq!(path_safe("CartPole-v1"), "CartPole-v1");
        assert_eq!(path_safe("a/b\\c d"), "a_b_c_d");
        assert_eq!(path_safe(".."), "_..");
        assert_eq!(path_safe(""), "_");
    }
}
