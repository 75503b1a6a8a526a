//! Helpers shared by the tests that drive the `rlpg` binary.
// Each test crate that includes this module uses only some of its helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The REINFORCE CartPole preset the CLI tests train.
pub const PRESET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/reinforce_cartpole.toml");

/// A fresh, empty directory `{tmp}/rlpg-{name}-{pid}`.
pub fn temp_root(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rlpg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
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
