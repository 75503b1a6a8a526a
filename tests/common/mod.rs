//! Helpers shared by the tests that drive the `rlpg` binary.
// Each test crate that includes this module uses only some of its helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The REINFORCE CartPole preset the CLI tests train.
pub const PRESET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/reinforce_cartpole.toml");

/// A scratch directory a test owns: `{tmp}/rlpg-{name}-{pid}`, created fresh and empty by
/// [`Scratch::new`] (a leftover of that name is removed first) and removed with everything in
/// it when the `Scratch` is dropped. If it is dropped while the thread panics (a failed
/// assertion), the directory is kept for inspection and its path printed to stderr.
///
/// It dereferences to [`Path`], so `root.join(..)`, `&root` and `root.display()` work as on a
/// path. Keep it alive as long as anything (a child process too) uses the directory.
pub struct Scratch(PathBuf);

impl Scratch {
    /// Creates the empty directory `{tmp}/rlpg-{name}-{pid}`. Tests that run in parallel in one
    /// process must use distinct names.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rlpg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: kept its scratch directory {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Arguments of `rlpg train PRESET --seed SEED --set K=V... --quiet --out OUT`, with two-episode
/// evaluations.
pub fn train_args(seed: u64, sets: &[String], out: &Path) -> Vec<String> {
    let mut args: Vec<String> =
        ["train", PRESET, "--seed", &seed.to_string()].map(str::to_owned).to_vec();
    for set in sets.iter().map(String::as_str).chain(["eval_episodes=2"]) {
        args.extend(["--set".to_owned(), set.to_owned()]);
    }
    args.extend(["--quiet", "--out", out.to_str().expect("utf-8 path")].map(str::to_owned));
    args
}

/// Runs the `rlpg` binary under test with `args` and waits for it. `LD_LIBRARY_PATH` is
/// removed, so every CLI test also proves that the binary finds libtorch through its rpath.
pub fn rlpg<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rlpg"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run rlpg")
}

/// Bytes of a process's output as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `p` as `&str` (test paths are UTF-8).
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Copies the directory `from` (files and folders, recursively) to `to`, created if missing.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
