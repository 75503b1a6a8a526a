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

/// The pids of the worker processes of the rlpg process `parent` (their command line holds
/// their config, which names the parent).
fn workers_of(parent: u32) -> Vec<u32> {
    let marker = format!("\"parent\":{parent}");
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&marker)
        })
        .collect()
}

/// `rlpg train` of CartPole through the bridge with 4 envs in 2 worker processes, long enough to
/// be stopped, in a process group of its own (as a terminal's foreground job is).
fn spawn_worker_run(out: &Path) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let sets = [
        "env=gymnasium:CartPole-v1",
        "agent=reinforce",
        "num_envs=4",
        "env_workers=2",
        "total_timesteps=2000000",
        "checkpoint_every=2000",
        "eval_every=0",
    ];
    Command::new(env!("CARGO_BIN_EXE_rlpg"))
        .arg("train")
        .args(sets.iter().flat_map(|s| ["--set", s]))
        .args(["--quiet", "--out", out.to_str().expect("utf-8 path")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn rlpg")
}

/// Waits until the run under `out` has a checkpoint after its first and two workers are up.
fn wait_until_training(out: &Path, child: &mut std::process::Child) -> Vec<u32> {
    let start = std::time::Instant::now();
    loop {
        let run = std::fs::read_dir(out).ok().and_then(|mut d| d.next()).and_then(Result::ok);
        let progressed = run.is_some_and(|run| count(&run.path().join("checkpoints")) >= 2);
        let workers = workers_of(child.id());
        if progressed && workers.len() == 2 {
            return workers;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("rlpg train exited ({status}) before training was under way");
        }
        assert!(start.elapsed().as_secs() < 120, "training not under way after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn worker_processes_train_as_the_in_process_bridge_does() {
    let out_dir = Scratch::new("gym-workers-same");
    let summary = |workers: &str| {
        let out = rlpg(&[
            "train",
            "--set",
            "env=gymnasium:CartPole-v1",
            "--set",
            "agent=reinforce",
            "--set",
            "total_timesteps=3000",
            "--set",
            "eval_every=1500",
            "--set",
            "eval_episodes=3",
            "--set",
            &format!("env_workers={workers}"),
            "--json",
            "--quiet",
            "--out",
            out_dir.to_str().expect("utf-8 path"),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let line = text(&out.stdout).lines().last().expect("JSON").to_owned();
        serde_json::from_str::<serde_json::Value>(&line).expect("JSON summary")
    };
    let (one, two) = (summary("0"), summary("2"));
    assert_eq!(two["env_workers"], 2, "{two}");
    assert_eq!(one["env_workers"], 0, "{one}");
    for key in ["episodes", "recent_mean_return", "final_eval_returns", "best_eval"] {
        assert_eq!(
            one[key], two[key],
            "{key} differs between the bridge in this process and its workers"
        );
    }
}

#[test]
fn ctrl_c_stops_a_run_with_worker_processes_cleanly() {
    let out_dir = Scratch::new("gym-workers-sigint");
    let mut child = spawn_worker_run(&out_dir);
    let workers = wait_until_training(&out_dir, &mut child);
    // Ctrl-C in a terminal signals the foreground process group: rlpg's own (its workers have
    // groups of their own, so they finish their step and are closed by rlpg).
    let pgid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our child's process group, with a valid signal: no memory effects.
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("wait for rlpg");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    for pid in workers {
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(!alive || state.contains(") Z "), "worker {pid} outlived rlpg: {state}");
    }
}

#[test]
fn a_worker_killed_mid_run_stops_the_run_naming_the_env_and_its_step() {
    let out_dir = Scratch::new("gym-workers-kill");
    let mut child = spawn_worker_run(&out_dir);
    let workers = wait_until_training(&out_dir, &mut child);
    let parent = child.id();
    let victim = i32::try_from(workers[1]).expect("pid");
    // SAFETY: kill(2) with a valid signal on a worker pid we just read: no memory effects.
    assert_eq!(unsafe { libc::kill(victim, libc::SIGKILL) }, 0);
    let start = std::time::Instant::now();
    let out = child.wait_with_output().expect("wait for rlpg");
    assert!(start.elapsed().as_secs() < 60, "rlpg took {:?} to notice", start.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for part in
        ["gymnasium:CartPole-v1", "worker process 1 of 2", "killed by signal 9", "checkpoint"]
    {
        assert!(stderr.contains(part), "`{part}` missing from: {stderr}");
    }
    let left = workers_of(parent);
    assert!(left.is_empty(), "the other worker outlived rlpg: {left:?}");
}
