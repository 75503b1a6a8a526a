//! The `gymnasium` feature from the command line: `rlpg envs` lists the bridge's ids; a
//! `gymnasium:<ID>` run trains with `[env_kwargs]`, resumes with fresh episodes (saying so
//! once); an unknown id is exit 2 quoting Gymnasium; a Python exception in `step` stops the run
//! as any env fault does (checkpoint, message, exit 1). Needs the venv of
//! `scripts/setup.sh --gymnasium`.

use std::path::Path;
use std::process::Command;

mod common;
use common::{Scratch, rlpg, text};

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[test]
fn envs_lists_the_bridge_id_syntax() {
    let out = rlpg(&["envs"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).lines().any(|l| l.starts_with("gymnasium:<ID>: ")),
        "{}",
        text(&out.stdout)
    );
    let out = rlpg(&["envs", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert!(list.iter().any(|e| e["id"] == "gymnasium:<ID>"), "{list:?}");
}

#[test]
fn a_gymnasium_run_trains_with_env_kwargs_and_resumes_with_fresh_episodes() {
    let out_dir = Scratch::new("gym-train");
    let out = out_dir.to_str().expect("utf-8 path");
    let train = rlpg(&[
        "train",
        "--set",
        "env=gymnasium:CartPole-v1",
        "--set",
        "agent=reinforce",
        "--set",
        "env_kwargs.sutton_barto_reward=true",
        "--set",
        "total_timesteps=2000",
        "--set",
        "eval_every=1000",
        "--set",
        "num_envs=4",
        "--quiet",
        "--out",
        out,
    ]);
    assert!(train.status.success(), "{}", text(&train.stderr));
    let run_dir = text(&train.stdout).lines().last().expect("run dir").to_owned();
    let config = std::fs::read_to_string(Path::new(&run_dir).join("config.toml")).expect("config");
    assert!(
        config.contains("[env_kwargs]") && config.contains("sutton_barto_reward = true"),
        "{config}"
    );
    // With Sutton and Barto's reward, CartPole pays 0 per step and -1 at the end: the bridge
    // passed the keyword argument through (rlpg's own CartPole has no such option).
    assert!(text(&train.stdout).contains("final eval -1.0"), "{}", text(&train.stdout));
    let resume = rlpg(&["train", "--resume", &run_dir, "--set", "total_timesteps=3000", "--quiet"]);
    assert!(resume.status.success(), "{}", text(&resume.stderr));
    let stderr = text(&resume.stderr);
    let says = stderr.matches("fresh episodes").count();
    assert_eq!(says, 1, "the resume says once that episodes start afresh: {stderr}");
}

#[test]
fn an_unknown_gymnasium_id_is_exit_2_quoting_gymnasium() {
    let out_dir = Scratch::new("gym-unknown");
    let out = rlpg(&[
        "train",
        "--set",
        "env=gymnasium:NoSuchEnv-v0",
        "--set",
        "agent=reinforce",
        "--out",
        out_dir.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("NameNotFound") && stderr.contains("NoSuchEnv"), "{stderr}");
    assert_eq!(count(&out_dir), 0, "nothing is written before training starts");
    // env_kwargs for an env that takes none is refused too.
    let out = rlpg(&[
        "train",
        "--set",
        "env=CartPole-v1",
        "--set",
        "agent=reinforce",
        "--set",
        "env_kwargs.x=1",
        "--out",
        out_dir.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("env_kwargs"), "{}", text(&out.stderr));
}

#[test]
fn a_python_exception_in_step_stops_the_run_with_a_checkpoint_and_exit_1() {
    let out_dir = Scratch::new("gym-raise");
    // Pendulum with a string for `g`: `make` and `reset` accept it, `step` raises TypeError.
    let out = rlpg(&[
        "train",
        "--set",
        "env=gymnasium:Pendulum-v1",
        "--set",
        "agent=pathwise",
        "--set",
        "env_kwargs.g=\"not a number\"",
        "--set",
        "total_timesteps=1000",
        "--quiet",
        "--out",
        out_dir.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for part in ["gymnasium:Pendulum-v1", "Python exception in step", "TypeError", "checkpoint"] {
        assert!(stderr.contains(part), "`{part}` missing from: {stderr}");
    }
    let run = std::fs::read_dir(&out_dir).expect("out").next().expect("a run dir").expect("entry");
    assert!(count(&run.path().join("checkpoints")) >= 1, "a checkpoint was written");
}

#[test]
fn without_its_python_a_run_is_exit_2_naming_the_setup_command_and_doctor_says_so() {
    let out_dir = Scratch::new("gym-nopython");
    let out = Command::new(env!("CARGO_BIN_EXE_rlpg"))
        .args(["train", "--set", "env=gymnasium:CartPole-v1", "--set", "agent=reinforce"])
        .args(["--out", out_dir.to_str().expect("utf-8 path")])
        .env("RLPG_PYTHON", out_dir.join("no-such-python"))
        .output()
        .expect("run rlpg");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("scripts/setup.sh --gymnasium"), "{}", text(&out.stderr));
    assert_eq!(count(&out_dir), 0);
    let doctor = rlpg(&["doctor"]);
    let stdout = text(&doctor.stdout);
    assert!(stdout.contains("gymnasium bridge: gymnasium 1.4.0"), "{stdout}");
}
