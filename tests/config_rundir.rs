//! Run directories: CleanRL naming, never reused, the resolved config written atomically, and
//! nothing left behind by a failed setup.

use std::path::Path;

use rlpg::{AgentKind, CONFIG_FILE, Config, RunDir, RunDirError, atomic_write};

mod common;
use common::Scratch;

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_name_follows_cleanrl_and_collisions_get_numbered_suffixes() {
    let scratch = Scratch::new("config-rundir-names");
    let root = scratch.join("runs");
    let make =
        || RunDir::create_at(&root, "CartPole-v1", "reinforce", 3, 1_700_000_000).expect("create");
    let first = make();
    let second = make();
    let third = make();
    assert_eq!(first.name(), "CartPole-v1__reinforce__3__1700000000");
    assert_eq!(second.name(), "CartPole-v1__reinforce__3__1700000000-1");
    assert_eq!(third.name(), "CartPole-v1__reinforce__3__1700000000-2");
    assert!(first.path().is_dir() && second.path().is_dir() && third.path().is_dir());
    assert_eq!(
        first.path().parent(),
        Some(root.as_path()),
        "created under out_root (made if missing)"
    );
}

#[test]
fn two_runs_created_in_a_row_get_distinct_directories() {
    let root = Scratch::new("config-rundir-in-a-row");
    let a = RunDir::create(&root, "Pendulum-v1", "pathwise", 1).expect("first");
    let b = RunDir::create(&root, "Pendulum-v1", "pathwise", 1).expect("second");
    assert_ne!(a.path(), b.path(), "a directory must never be reused");
    assert!(a.name().starts_with("Pendulum-v1__pathwise__1__"), "{}", a.name());
    assert_eq!(entries(&root).len(), 2);
}

#[test]
fn ids_cannot_escape_or_hide_the_run_directory() {
    let root = Scratch::new("config-rundir-escape");
    let run = RunDir::create_at(&root, "../evil/env", ".hidden", 0, 5).expect("create");
    assert_eq!(run.path().parent(), Some(&*root), "the run stays directly under out_root");
    assert_eq!(run.name(), "_.._evil_env___.hidden__0__5");
}

#[test]
fn the_resolved_config_is_written_and_reads_back() {
    let root = Scratch::new("config-rundir-with-config");
    let mut config = Config::new("CartPole-v1", AgentKind::Reinforce);
    config.seed = 9;
    config.reinforce.learning_rate = 2.5e-4;
    let run = RunDir::create_with_config(&root, &config).expect("setup");
    assert!(run.name().starts_with("CartPole-v1__reinforce__9__"), "{}", run.name());
    assert_eq!(entries(run.path()), [CONFIG_FILE], "only the config, no temporary files left");
    let reread = Config::load(&run.config_path(), &[]).expect("the written config loads");
    assert_eq!(reread, config);
}

#[test]
fn a_setup_that_cannot_write_its_config_leaves_no_directory() {
    let root = Scratch::new("config-rundir-failed-setup");
    let mut config = Config::new("CartPole-v1", AgentKind::Reinforce);
    config.seed = u64::MAX; // cannot be written as a TOML integer
    match RunDir::create_with_config(&root, &config) {
        Err(RunDirError::Config(_)) => {}
        other => panic!("an unwritable config must fail setup, got {other:?}"),
    }
    assert!(entries(&root).is_empty(), "a failed setup must leave nothing: {:?}", entries(&root));
}

#[test]
fn discard_removes_a_run_whose_later_setup_failed() {
    let root = Scratch::new("config-rundir-discard");
    let run = RunDir::create(&root, "CartPole-v1", "reinforce", 1).expect("create");
    std::fs::write(run.path().join("partial.bin"), b"x").expect("write");
    run.discard().expect("discard");
    assert!(entries(&root).is_empty(), "{:?}", entries(&root));
}

#[test]
fn open_accepts_directories_only() {
    let root = Scratch::new("config-rundir-open");
    let run = RunDir::create(&root, "CartPole-v1", "reinforce", 1).expect("create");
    assert_eq!(RunDir::open(run.path()).expect("existing run"), run);
    let file = root.join("file");
    std::fs::write(&file, b"").expect("write");
    assert!(matches!(RunDir::open(&file), Err(RunDirError::NotARunDir { .. })));
    assert!(matches!(RunDir::open(root.join("missing")), Err(RunDirError::NotARunDir { .. })));
}

#[test]
fn atomic_write_replaces_the_whole_file_and_leaves_no_temporaries() {
    let dir = Scratch::new("config-rundir-atomic");
    let path = dir.join("checkpoint.bin");
    atomic_write(&path, b"first version, longer than the second").expect("first write");
    atomic_write(&path, b"second").expect("second write");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        b"second",
        "the new content replaces the old entirely"
    );
    assert_eq!(entries(&dir), ["checkpoint.bin"], "no temporary file is left behind");
}

#[test]
fn atomic_write_into_a_missing_directory_fails_and_creates_nothing() {
    let dir = Scratch::new("config-rundir-atomic-missing");
    let e = atomic_write(&dir.join("absent").join("f"), b"x").expect_err("no such directory");
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    assert!(entries(&dir).is_empty());
    let e = atomic_write(Path::new("/"), b"x").expect_err("a path without a file name");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
}
