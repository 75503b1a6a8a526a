//! The `device` setting as a user meets it: `cuda` on a machine without CUDA is a one-line
//! error (exit 2) before anything is created, `auto` means the CPU there, `rlpg doctor` says
//! which devices exist, and a run checkpointed with one device setting resumes and evaluates
//! with another.

use std::path::{Path, PathBuf};

mod common;
use common::{Scratch, path, rlpg, text};

const PENDULUM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pathwise_pendulum.toml");

#[test]
fn cuda_without_a_cuda_device_is_a_one_line_error_and_creates_nothing() {
    if tch::Cuda::is_available() {
        eprintln!("skipped: this machine has CUDA, so device = \"cuda\" is valid here");
        return;
    }
    let root = Scratch::new("device-cuda");
    let out = root.join("runs");
    let output = rlpg(&["train", common::PRESET, "--set", "device=cuda", "--out", path(&out)]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("--set device=cuda") && stderr.contains("CUDA"), "{stderr}");
    assert!(!out.exists(), "nothing may be created: {stderr}");

    // Written in a file, the error points at the line.
    let file = root.join("cuda.toml");
    std::fs::write(&file, "env = \"CartPole-v1\"\nagent = \"reinforce\"\ndevice = \"cuda\"\n")
        .expect("write config");
    let output = rlpg(&["train", path(&file), "--out", path(&out)]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cuda.toml:3:"), "the error names the file and line: {stderr}");
    assert!(!out.exists());

    // A sweep refuses the grid point before launching anything.
    let output = rlpg(&["sweep", common::PRESET, "--grid", "device=cpu,cuda", "--out", path(&out)]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("grid point device=cuda"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn an_unknown_device_is_refused_with_the_choices() {
    let output = rlpg(&["train", common::PRESET, "--set", "device=gpu"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for word in ["device", "gpu", "cpu", "cuda", "auto"] {
        assert!(stderr.contains(word), "`{word}` missing: {stderr}");
    }
}

#[test]
fn doctor_reports_the_devices_and_what_auto_means() {
    let output = rlpg(&["doctor", "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let devices: Vec<&str> =
        report["devices"].as_array().expect("devices").iter().filter_map(|d| d.as_str()).collect();
    assert_eq!(devices.first(), Some(&"cpu"), "{report}");
    if tch::Cuda::is_available() {
        assert_eq!(report["auto_device"], "cuda:0", "{report}");
    } else {
        assert_eq!(devices, ["cpu"], "{report}");
        assert_eq!(report["auto_device"], "cpu", "{report}");
    }
    let output = rlpg(&["doctor"]);
    assert!(text(&output.stdout).contains("devices: cpu"), "{}", text(&output.stdout));
}

/// The single run directory under `out`.
fn only_run(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("out")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn a_run_checkpointed_on_one_device_setting_resumes_and_evaluates_with_another() {
    let root = Scratch::new("device-resume");
    let out = root.join("runs");
    let sets = [
        "total_timesteps=600",
        "pathwise.learning_starts=200",
        "eval_every=0",
        "eval_episodes=1",
        "device=cpu",
    ];
    let mut args = vec!["train", PENDULUM, "--quiet", "--out", path(&out)];
    for set in &sets {
        args.extend(["--set", set]);
    }
    let trained = rlpg(&args);
    assert!(trained.status.success(), "{}", text(&trained.stderr));
    let run = only_run(&out);

    // Extended with device = "auto" (the CPU here, the GPU on a CUDA machine).
    let resumed = rlpg(&[
        "train",
        "--resume",
        path(&run),
        "--set",
        "total_timesteps=1000",
        "--set",
        "device=auto",
        "--quiet",
        "--json",
    ]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(text(&resumed.stdout).lines().last().expect("json")).expect("json");
    assert_eq!(summary["steps"], 1000, "{summary}");
    let changes = std::fs::read_to_string(run.join("changes.jsonl")).expect("changes.jsonl");
    assert!(changes.contains(r#""device":{"from":"cpu","to":"auto"}"#), "{changes}");
    let config = std::fs::read_to_string(run.join("config.toml")).expect("config");
    assert!(config.contains("device = \"auto\""), "{config}");

    // Evaluation loads the checkpoint on the CPU whatever the run's device.
    let evaluated = rlpg(&["eval", path(&run), "--episodes", "1", "--json"]);
    assert!(evaluated.status.success(), "{}", text(&evaluated.stderr));
}
