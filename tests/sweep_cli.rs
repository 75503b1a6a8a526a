//! `rlpg sweep` as a user runs it: a grid times seeds as separate processes into labelled run
//! directories that `rlpg runs` and `rlpg plot` read, the final table and record, validation
//! before anything is created, `--emit commands` / `--emit slurm`, and Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{path, rlpg, text};

use common::{PRESET, Scratch};

/// The run directories (holding a config.toml) directly under `out`, by name.
fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("config.toml").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

const TINY: [&str; 6] =
    ["--set", "total_timesteps=1024", "--set", "eval_every=0", "--set", "eval_episodes=2"];

#[test]
fn a_grid_times_seeds_runs_as_labelled_run_directories_with_a_table() {
    let root = Scratch::new("sweep-grid");
    let out = root.join("sweep");
    let mut args = vec!["sweep", PRESET, "--seeds", "0..1", "--jobs", "2", "--out", path(&out)];
    args.extend(TINY);
    args.extend(["--grid", "reinforce.learning_rate=1e-3,3e-4", "--target-recent", "1000"]);
    let output = rlpg(&args);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "sweep failed:\n{stderr}");

    // 2 grid points x 2 seeds, each a normal run directory named with its point and seed.
    let dirs = run_dirs(&out);
    let names: Vec<String> =
        dirs.iter().map(|d| d.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for (lr, seed) in [("1e-3", 0), ("1e-3", 1), ("3e-4", 0), ("3e-4", 1)] {
        let prefix = format!("CartPole-v1__reinforce-learning_rate-{lr}__{seed}__");
        let dir = dirs
            .iter()
            .find(|d| d.file_name().unwrap().to_string_lossy().starts_with(&prefix))
            .unwrap_or_else(|| panic!("no run dir {prefix}*: {names:?}"));
        let config = std::fs::read_to_string(dir.join("config.toml")).expect("config");
        let want = if lr == "1e-3" { "learning_rate = 0.001" } else { "learning_rate = 0.0003" };
        assert!(config.contains(want), "{prefix}: {want} missing from its config");
        assert!(config.contains(&format!("seed = {seed}")), "{prefix}: wrong seed");
        assert!(dir.join("summary.json").is_file(), "{prefix}: not finished");
    }

    // The table: a row per run and a summary line per grid point, then the folder.
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| reinforce.")).collect();
    assert_eq!(rows.len(), 4, "rows:\n{stdout}");
    assert!(stdout.starts_with("| grid point | seed | steps to target |"), "{stdout}");
    for point in ["reinforce.learning_rate=1e-3", "reinforce.learning_rate=3e-4"] {
        assert!(
            stdout.contains(&format!(
                "{point}: target (mean of last 100 episodes >= 1000) reached by 0 of 2 seeds"
            )),
            "summary of {point} missing:\n{stdout}"
        );
    }
    assert!(stdout.contains("4 of 4 runs finished"), "{stdout}");
    assert_eq!(stdout.lines().last(), Some(path(&out)), "the folder is the last line");
    assert_eq!(stderr.matches("] reinforce.learning_rate=").count(), 4, "progress:\n{stderr}");

    // The record.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).expect("record"))
            .expect("record JSON");
    let runs = record["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 4);
    for run in runs {
        assert_eq!(run["status"], "finished", "{run}");
        assert_eq!(run["result"]["steps"], 1024, "{run}");
        assert!(run["result"]["steps_per_second"].as_f64().is_some_and(|s| s > 0.0), "{run}");
    }

    // `rlpg runs` and `rlpg plot` read the folder like any other.
    let listed = rlpg(&["runs", "--dir", path(&out), "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("runs JSON");
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed.iter().all(|r| r["status"] == "complete"), "{listed:?}");
    let png = root.join("curves.png");
    let plotted = rlpg(&[
        "plot",
        path(&out),
        "--out",
        path(&png),
        "--group-by",
        "reinforce.learning_rate",
        "--metric",
        "charts/episodic_return",
    ]);
    assert!(plotted.status.success(), "plot: {}", text(&plotted.stderr));
    assert_eq!(
        text(&plotted.stdout).lines().filter(|l| l.contains(": 2 seeds,")).count(),
        2,
        "{}",
        text(&plotted.stdout)
    );
}

#[test]
fn bad_grids_are_refused_with_exit_2_before_anything_is_created() {
    let root = Scratch::new("sweep-bad");
    let out = root.join("sweep");
    for (grid, expected) in [
        ("reinforce.learnin_rate=1e-3,3e-4", "learnin_rate"),
        ("reinforce.gamma=0.9,1.5", "grid point reinforce.gamma=1.5"),
        ("seed=1,2", "--seeds"),
        ("reinforce.gamma=0.9,", "empty value"),
    ] {
        let output = rlpg(&["sweep", PRESET, "--out", path(&out), "--grid", grid]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "--grid {grid}: {stderr}");
        assert!(stderr.contains(expected), "--grid {grid}: `{expected}` not in: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "--grid {grid}: one line: {stderr}");
        assert!(!out.exists(), "--grid {grid}: something was created");
    }
    let output = rlpg(&["sweep", PRESET, "--out", path(&out), "--seeds", "3..1"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(!out.exists());
}

#[test]
fn emitted_commands_and_slurm_scripts_run_the_same_plan() {
    let root = Scratch::new("sweep-emit");
    let out = root.join("sweep");
    let mut args =
        vec!["sweep", PRESET, "--seeds", "0,5", "--out", path(&out), "--emit", "commands"];
    args.extend(TINY);
    args.extend(["--grid", "reinforce.hidden=[16,16],[8]"]);
    let output = rlpg(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let commands = text(&output.stdout);
    let lines: Vec<&str> = commands.lines().collect();
    assert_eq!(lines.len(), 4, "{commands}");
    assert!(
        lines[0].contains(" train ") && lines[0].contains("--set 'reinforce.hidden=[16,16]'"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("--seed 0 ") && lines[1].contains("--seed 5 "), "{commands}");
    assert!(lines[2].contains("--label hidden-8 "), "{}", lines[2]);
    assert!(!out.exists(), "--emit must create nothing");

    // One emitted line, run by a shell as GNU parallel would, is a normal run.
    let ran = Command::new("sh").arg("-c").arg(lines[3]).output().expect("sh");
    assert!(ran.status.success(), "{}: {}", lines[3], text(&ran.stderr));
    let dirs = run_dirs(&out);
    assert_eq!(dirs.len(), 1);
    let name = dirs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("CartPole-v1__reinforce-hidden-8__5__"), "{name}");

    args.pop();
    args.pop();
    let slurm_args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "commands" { "slurm" } else { *a })
        .chain(["--grid", "reinforce.hidden=[16,16],[8]", "--jobs", "3"])
        .collect();
    let output = rlpg(&slurm_args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let script = text(&output.stdout);
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    assert!(script.contains("#SBATCH --array=0-3%3\n"), "{script}");
    assert!(script.contains("#SBATCH --cpus-per-task=1\n"), "{script}");
    for (i, line) in lines.iter().enumerate() {
        assert!(
            script.contains(&format!("  {i}) exec {line} ;;\n")),
            "task {i} differs:\n{script}"
        );
    }
}

/// Ctrl-C reaches the sweep, which forwards one SIGINT to each running child: both checkpoint
/// and stop (resumable), nothing more starts, and the sweep exits with 130.
#[test]
fn ctrl_c_stops_every_running_child_with_a_checkpoint_and_starts_no_more() {
    let root = Scratch::new("sweep-sigint");
    let out = root.join("sweep");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlpg"))
        .args([
            "sweep",
            PRESET,
            "--seeds",
            "0..3",
            "--jobs",
            "2",
            "--out",
            path(&out),
            "--set",
            "total_timesteps=50000000",
            "--set",
            "eval_episodes=2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sweep");
    // Wait until both first runs have their first checkpoint.
    let start = Instant::now();
    loop {
        let started = run_dirs(&out)
            .iter()
            .filter(|d| d.join("checkpoints").read_dir().is_ok_and(|mut e| e.next().is_some()))
            .count();
        if started == 2 {
            break;
        }
        assert!(child.try_wait().expect("wait").is_none(), "the sweep ended early");
        assert!(start.elapsed() < Duration::from_secs(120), "runs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid with a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let output = child.wait_with_output().expect("wait");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let dirs = run_dirs(&out);
    assert_eq!(dirs.len(), 2, "no run may start after Ctrl-C: {dirs:?}");
    let listed = rlpg(&["runs", "--dir", path(&out), "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("runs JSON");
    for run in listed.as_array().expect("array") {
        assert_eq!(run["status"], "resumable", "{run}");
        assert!(
            run["steps"].as_u64().is_some_and(|s| s > 0),
            "stopped without a checkpoint: {run}"
        );
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).expect("record"))
            .expect("record JSON");
    let statuses: Vec<&str> =
        record["runs"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["stopped", "stopped", "not started", "not started"], "{record}");
}

/// `train --target-recent` records when the target is first reached and trains on to the budget
/// (unlike `bench`, which stops there); the sweep's table reads it from `--json`.
#[test]
fn train_records_the_target_without_stopping() {
    let root = Scratch::new("sweep-target");
    let out = root.join("runs");
    let mut args = vec!["train", PRESET, "--seed", "2", "--out", path(&out), "--quiet", "--json"];
    // An untrained CartPole policy's episodes last about 10-30 steps: 100 of them end well
    // within 8192 steps, and their mean is above 5.
    args.extend([
        "--set",
        "total_timesteps=8192",
        "--set",
        "eval_every=0",
        "--set",
        "eval_episodes=2",
    ]);
    args.extend(["--target-recent", "5", "--label", "target-check"]);
    let output = rlpg(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: serde_json::Value =
        serde_json::from_str(text(&output.stdout).lines().last().expect("json")).expect("json");
    assert_eq!(json["steps"], 8192, "trained the whole budget: {json}");
    let reached = json["steps_to_target"].as_u64().expect("target reached");
    assert!(reached < 8192, "{json}");
    assert!(json["seconds_to_target"].as_f64().is_some_and(|s| s > 0.0), "{json}");
    let run_dir = PathBuf::from(json["run_dir"].as_str().expect("run_dir"));
    let name = run_dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("CartPole-v1__reinforce-target-check__2__"), "{name}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .expect("summary");
    assert_eq!(summary["reached_target"]["steps"], reached, "{summary}");
    // A label that would break the name's fields is refused.
    let output = rlpg(&["train", PRESET, "--label", "a__b", "--out", path(&out)]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}
