//! The `rlpg` binary as a user runs it: exit codes, stdout contract, files left behind.

use std::path::{Path, PathBuf};

mod common;
use common::{Scratch, rlpg, text};

fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.expect("entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

const PRESET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/reinforce_cartpole.toml");

#[test]
fn help_and_version_work_without_library_path() {
    let help = rlpg(&["--help"]);
    assert!(help.status.success(), "rlpg --help failed: {}", text(&help.stderr));
    for sub in ["train", "eval", "bench", "envs"] {
        assert!(
            text(&help.stdout).contains(sub),
            "--help does not list `{sub}`:\n{}",
            text(&help.stdout)
        );
    }
    let version = rlpg(&["--version"]);
    assert!(text(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn envs_lists_the_registry() {
    let out = rlpg(&["envs"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("CartPole-v1") && stdout.contains("Pendulum-v1"), "{stdout}");
    assert!(stdout.contains("Discrete(2)"), "{stdout}");
}

#[test]
fn train_prints_the_run_directory_last_and_eval_loads_it() {
    let out_root = Scratch::new("cli-train");
    let out = rlpg(&[
        "train",
        PRESET,
        "--seed",
        "5",
        "--set",
        "total_timesteps=3000",
        "--set",
        "eval_episodes=2",
        "--set",
        "reinforce.grad_diagnostics=true",
        "--out",
        out_root.to_str().expect("utf-8 path"),
        "--quiet",
    ]);
    assert!(out.status.success(), "train failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().expect("some stdout");
    let run_dir = PathBuf::from(last);
    assert!(run_dir.is_dir(), "last stdout line is not a directory: {last:?}");
    let name = run_dir.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(name.starts_with("CartPole-v1__reinforce__5__"), "run dir name {name}");
    for file in ["config.toml", "summary.json", "checkpoints/best.safetensors"] {
        assert!(run_dir.join(file).is_file(), "{file} missing in {}", run_dir.display());
    }
    let events = rlpg::event_files(&run_dir).expect("list event files");
    assert_eq!(events.len(), 1, "expected one event file, found {events:?}");
    let log = rlpg::read_scalars(&events[0]).expect("read events");
    for tag in [
        "charts/episodic_return",
        "losses/policy_loss",
        "eval/mean_return",
        "grad/variance",
        "grad/snr",
    ] {
        assert!(!log.series(tag).is_empty(), "event file lacks {tag}");
    }

    let eval = rlpg(&["eval", last, "--episodes", "3", "--json"]);
    assert!(eval.status.success(), "eval failed: {}", text(&eval.stderr));
    let json: serde_json::Value = serde_json::from_str(text(&eval.stdout).trim()).expect("json");
    assert_eq!(json["episodes"], 3);
    assert!(json["mean_return"].as_f64().is_some_and(|m| m >= 8.0), "{json}");

    // A second run in the same second gets its own directory.
    let again = rlpg(&[
        "train",
        PRESET,
        "--seed",
        "5",
        "--set",
        "total_timesteps=500",
        "--set",
        "eval_episodes=1",
        "--out",
        out_root.to_str().expect("utf-8 path"),
        "--quiet",
    ]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let second = text(&again.stdout).lines().last().expect("stdout").to_owned();
    assert_ne!(second, last, "two runs must not share a directory");
}

#[test]
fn bad_input_exits_2_with_one_line_and_no_run_directory() {
    let out_root = Scratch::new("cli-bad");
    let root = out_root.to_str().expect("utf-8 path");
    let cases: &[(&[&str], &str)] = &[
        (&["train", "/nonexistent/config.toml", "--out", root], "/nonexistent/config.toml"),
        (&["train", PRESET, "--set", "env=Nope-v0", "--out", root], "Nope-v0"),
        (&["train", PRESET, "--set", "agent=sarsa", "--out", root], "sarsa"),
        (&["train", PRESET, "--set", "reinforce.learning_rate=-1", "--out", root], "learning_rate"),
        (&["train", PRESET, "--set", "reinforce.gamma=1.5", "--out", root], "gamma"),
        (&["train", PRESET, "--set", "reinforce.n_steps=0", "--out", root], "n_steps"),
        (&["train", PRESET, "--set", "no_such_key=1", "--out", root], "no_such_key"),
        (&["eval", "/nonexistent/run"], "/nonexistent/run"),
    ];
    for (args, needle) in cases {
        let out = rlpg(args);
        let err = text(&out.stderr);
        let code = out.status.code();
        assert_eq!(code, Some(2), "rlpg {args:?}: exit code {code:?}, stderr:\n{err}");
        assert!(err.contains(needle), "rlpg {args:?}: stderr does not name {needle:?}:\n{err}");
        assert_eq!(err.trim().lines().count(), 1, "rlpg {args:?}: not one line:\n{err}");
        assert!(!err.contains("panicked"), "rlpg {args:?} panicked:\n{err}");
        assert!(entries(&out_root).is_empty(), "rlpg {args:?} left {:?}", entries(&out_root));
    }
}
