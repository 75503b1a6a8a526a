//! The command line fitted to a practitioner's habits (issue 18), as a user runs it: extending a
//! finished run, training without a config file, what eval says it loaded, one exit-code table,
//! the doctor's report, completions and JSON output.

mod common;

use std::path::{Path, PathBuf};

use common::{PRESET, Scratch, path, rlpg, text};
use rlpg::checkpoint::{Checkpoint, step_checkpoints, step_file_name};
use rlpg::{Config, Override, read_scalars};

/// Runs `rlpg args` and asserts exit code 2 with one line on stderr naming `needle`.
fn assert_usage_error(args: &[&str], needle: &str) {
    let out = rlpg(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "rlpg {args:?}: stderr:\n{err}");
    assert!(err.contains(needle), "rlpg {args:?}: stderr does not name {needle:?}:\n{err}");
    // `train --resume` first says which run it resumes; the error itself is one line.
    let lines: Vec<&str> =
        err.trim().lines().filter(|l| !l.starts_with("rlpg: resuming ")).collect();
    assert_eq!(lines.len(), 1, "rlpg {args:?}: not one line:\n{err}");
    assert!(lines[0].starts_with("rlpg: error: "), "rlpg {args:?}:\n{err}");
    assert!(!err.contains("panicked"), "rlpg {args:?} panicked:\n{err}");
}

/// Trains the CartPole preset for `steps` (seed 4, evaluations every 1000 steps) and returns the
/// run directory from the last stdout line.
fn train_preset(out_root: &Path, steps: u64) -> PathBuf {
    let total = format!("total_timesteps={steps}");
    let out = rlpg(&[
        "train",
        PRESET,
        "--seed",
        "4",
        "--set",
        &total,
        "--set",
        "eval_every=1000",
        "--set",
        "eval_episodes=2",
        "--set",
        "checkpoint_every=1000",
        "--out",
        path(out_root),
        "--quiet",
    ]);
    assert!(out.status.success(), "train failed: {}", text(&out.stderr));
    PathBuf::from(text(&out.stdout).lines().last().expect("stdout"))
}

fn final_checkpoint(run_dir: &Path) -> Checkpoint {
    let (_, path) = step_checkpoints(run_dir).expect("list").pop().expect("a checkpoint");
    Checkpoint::read(&path).expect("final checkpoint loads")
}

/// Every `(tag, step, value bits)` logged in the run except the timing-dependent `charts/SPS`.
fn curves(run_dir: &Path) -> Vec<(String, u64, u32)> {
    let mut all = Vec::new();
    for file in rlpg::event_files(run_dir).expect("event files") {
        for s in read_scalars(&file).expect("readable").scalars {
            if s.tag != "charts/SPS" {
                all.push((s.tag, s.step, s.value.to_bits()));
            }
        }
    }
    all.sort();
    all
}

#[test]
fn a_finished_run_extended_with_a_larger_budget_ends_as_one_trained_to_it_at_once() {
    let root = Scratch::new("habits-extend");
    let full = train_preset(&root.join("full"), 6_000);
    let short = train_preset(&root.join("short"), 3_000);
    let short_dir = path(&short).to_owned();

    // Without a larger budget a finished run has nothing to resume, and says how to extend it.
    assert_usage_error(&["train", "--resume", &short_dir], "--set total_timesteps=N");
    // Settings that would change the experiment are refused by name; so is a smaller budget.
    for (set, needle) in [
        ("seed=3", "`seed` cannot change"),
        ("num_envs=4", "`num_envs` cannot change"),
        ("reinforce.learning_rate=1e-3", "`reinforce.learning_rate` cannot change"),
        ("env=Pendulum-v1", "`env` cannot change"),
        ("total_timesteps=2000", "has done 3000 steps"),
        ("total_timesteps=3000", "has done 3000 steps"),
    ] {
        assert_usage_error(&["train", "--resume", &short_dir, "--set", set, "--quiet"], needle);
    }
    let config_before = std::fs::read_to_string(short.join("config.toml")).expect("config");
    assert!(config_before.contains("total_timesteps = 3000"), "{config_before}");

    let out = rlpg(&[
        "train",
        "--resume",
        &short_dir,
        "--set",
        "total_timesteps=6000",
        "--set",
        "keep_checkpoints=5",
        "--quiet",
    ]);
    assert!(out.status.success(), "extension failed: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().last(), Some(short_dir.as_str()));

    // The run's config says the new budget, and the change is on record.
    let config = Config::load(&short.join("config.toml"), &[]).expect("config loads");
    assert_eq!((config.total_timesteps, config.keep_checkpoints), (6_000, 5));
    let changes = std::fs::read_to_string(short.join(rlpg::run::CHANGES_FILE)).expect("changes");
    let line: serde_json::Value = serde_json::from_str(changes.trim()).expect("one JSON line");
    assert_eq!(line["step"], 3000, "{line}");
    assert_eq!(line["changes"]["total_timesteps"], serde_json::json!({"from": 3000, "to": 6000}));
    assert_eq!(line["changes"]["keep_checkpoints"]["to"], 5, "{line}");

    // REINFORCE depends on no budget: the parameters, optimizer state, evaluations and curves
    // are those of the run trained for 6000 steps at once (eval_every divides the old budget).
    let (a, b) = (final_checkpoint(&full), final_checkpoint(&short));
    assert_eq!(a.meta.step, 6_000);
    assert_eq!(b.meta.step, 6_000);
    assert!(b.meta.loop_state.finished);
    for (what, x, y) in [("agent", &a.agent, &b.agent), ("training", &a.training, &b.training)] {
        assert_eq!(x.len(), y.len(), "{what}: tensor counts differ");
        for ((name, s), (_, t)) in x.iter().zip(y.iter()) {
            assert!(s.equal(t), "{what}: '{name}' differs from the run trained at once");
        }
    }
    assert_eq!(a.meta.loop_state.evals, b.meta.loop_state.evals, "evaluations differ");
    assert_eq!(a.meta.loop_state.episodes, b.meta.loop_state.episodes);
    assert_eq!(curves(&full), curves(&short), "the extended run's curves differ");
    assert_eq!(rlpg::event_files(&short).expect("files").len(), 2, "one more event file");
}

#[test]
fn train_without_a_config_file_uses_the_preset_of_the_pair() {
    let root = Scratch::new("habits-nofile");
    let out = rlpg(&[
        "train",
        "--set",
        "env=CartPole-v1",
        "--set",
        "agent=reinforce",
        "--set",
        "total_timesteps=400",
        "--set",
        "eval_episodes=1",
        "--seed",
        "2",
        "--out",
        path(&root),
        "--quiet",
    ]);
    assert!(out.status.success(), "train failed: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("configs/reinforce_cartpole.toml"), "{}", text(&out.stderr));
    let run_dir = PathBuf::from(text(&out.stdout).lines().last().expect("stdout"));
    let written = Config::load(&run_dir.join("config.toml"), &[]).expect("run config");
    let sets = ["total_timesteps=400", "eval_episodes=1", "seed=2"]
        .map(|s| Override::parse(s).expect("parses"));
    let expected = Config::load(Path::new(PRESET), &sets).expect("preset");
    assert_eq!(written, expected, "the run's settings are not the preset's plus the overrides");

    // A pair without a preset trains from the defaults, and says so.
    let out = rlpg(&[
        "train",
        "--set",
        "env=Acrobot-v1",
        "--set",
        "agent=reinforce",
        "--set",
        "total_timesteps=200",
        "--set",
        "eval_episodes=1",
        "--out",
        path(&root),
        "--quiet",
    ]);
    assert!(out.status.success(), "train failed: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("using the defaults"), "{}", text(&out.stderr));

    // Without env (or agent) it is a usage error naming the missing key.
    let before = std::fs::read_dir(&root).expect("root").count();
    assert_usage_error(&["train", "--set", "agent=pathwise", "--out", path(&root)], "env");
    assert_usage_error(&["train", "--out", path(&root)], "--set env=");
    assert_eq!(std::fs::read_dir(&root).expect("root").count(), before, "a run dir was left");
    let help = text(&rlpg(&["train", "--help"]).stdout);
    assert!(help.contains("[CONFIG]") && help.contains("built-in preset"), "{help}");
}

#[test]
fn train_json_and_eval_name_what_they_did() {
    let root = Scratch::new("habits-json");
    let out = rlpg(&[
        "train",
        PRESET,
        "--set",
        "total_timesteps=800",
        "--set",
        "eval_episodes=2",
        "--out",
        path(&root),
        "--quiet",
        "--json",
    ]);
    assert!(out.status.success(), "train failed: {}", text(&out.stderr));
    let last = text(&out.stdout).lines().last().expect("stdout").to_owned();
    let summary: serde_json::Value = serde_json::from_str(&last).expect("one JSON object");
    let run_dir = PathBuf::from(summary["run_dir"].as_str().expect("run_dir"));
    assert!(run_dir.join("config.toml").is_file(), "{summary}");
    assert_eq!(summary["steps"], 800, "{summary}");
    assert_eq!(summary["final_eval_returns"].as_array().map(Vec::len), Some(2), "{summary}");
    for key in ["episodes", "final_eval_mean_return", "final_eval_std_return", "steps_per_second"] {
        assert!(summary[key].is_number(), "{key} missing: {summary}");
    }

    let eval = rlpg(&["eval", path(&run_dir), "--episodes", "3", "--json"]);
    assert!(eval.status.success(), "eval failed: {}", text(&eval.stderr));
    let result: serde_json::Value = serde_json::from_str(text(&eval.stdout).trim()).expect("json");
    let returns: Vec<f64> = result["returns"]
        .as_array()
        .expect("returns")
        .iter()
        .map(|r| r.as_f64().expect("number"))
        .collect();
    assert_eq!(returns.len(), 3, "{result}");
    let mean = returns.iter().sum::<f64>() / 3.0;
    assert!((mean - result["mean_return"].as_f64().expect("mean")).abs() < 1e-9, "{result}");
    let checkpoint = result["checkpoint"].as_str().expect("checkpoint");
    assert!(checkpoint.ends_with("best.safetensors"), "{result}");
    let step = result["step"].as_u64().expect("step");
    assert!(step > 0 && step <= 800, "{result}");
    // best.safetensors was saved by an evaluation: its score during training is given too.
    assert!(result["training_eval_return"].is_number(), "{result}");
    let said = text(&eval.stderr);
    assert!(said.contains("training's evaluation at that step gave"), "{said}");
    assert!(said.contains(checkpoint) && said.contains(&format!("step {step}")), "{said}");

    let latest = rlpg(&["eval", path(&run_dir), "--checkpoint", "latest", "--episodes", "1"]);
    assert!(latest.status.success(), "{}", text(&latest.stderr));
    assert!(text(&latest.stderr).contains(&step_file_name(800)), "{}", text(&latest.stderr));
    assert!(text(&latest.stderr).contains("(step 800;"), "{}", text(&latest.stderr));
}

#[test]
fn every_user_mistake_exits_2_and_help_shows_the_table() {
    let root = Scratch::new("habits-codes");
    let missing = root.join("nope");
    let missing = path(&missing);
    assert_usage_error(&["eval", missing], missing);
    assert_usage_error(&["runs", "--dir", missing], missing);
    assert_usage_error(&["train", "--resume", missing], missing);
    // A folder that is not a run, and a checkpoint that does not exist.
    assert_usage_error(&["eval", path(&root)], "not an rlpg run directory");
    assert_usage_error(&["train", "--resume", path(&root)], "not an rlpg run directory");
    let run = train_preset(&root.join("runs"), 200);
    assert_usage_error(&["eval", path(&run), "--checkpoint", "nope.safetensors"], "nope");
    // Argument errors are clap's, also 2.
    assert_eq!(rlpg(&["eval"]).status.code(), Some(2));
    assert_eq!(rlpg(&["completions", "tcsh"]).status.code(), Some(2));
    for args in [&["--help"][..], &["train", "--help"], &["eval", "--help"]] {
        let help = text(&rlpg(args).stdout);
        for line in ["0    success", "2    bad input", "130", "143"] {
            assert!(help.contains(line), "rlpg {args:?} lacks {line:?}:\n{help}");
        }
    }
}

#[test]
fn completions_envs_json_and_doctor() {
    for shell in ["bash", "zsh", "fish"] {
        let out = rlpg(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["train", "--resume", "completions", "doctor"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    assert!(text(&rlpg(&["completions", "bash"]).stdout).contains("complete -F"));
    assert!(text(&rlpg(&["completions", "zsh"]).stdout).starts_with("#compdef rlpg"));

    let out = rlpg(&["envs", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let envs: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).expect("json");
    let cartpole = envs
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["id"] == "CartPole-v1")
        .expect("CartPole-v1 listed");
    assert_eq!(cartpole["action_space"], "Discrete(2)");
    assert_eq!(cartpole["max_episode_steps"], 500);

    let out = rlpg(&["doctor", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).expect("json");
    assert_eq!(report["rlpg_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["libtorch_ok"], true);
    assert_eq!(report["libtorch_build"], "CPU");
    assert_eq!(report["cuda_available"], false);
    let lib = PathBuf::from(report["libtorch_path"].as_str().expect("libtorch_path"));
    assert!(lib.join("libtorch_cpu.so").is_file(), "{report}");
    let version = std::fs::read_to_string(lib.parent().expect("parent").join("build-version"))
        .expect("build-version beside the library");
    assert_eq!(report["libtorch_version"], version.trim());
    assert!(report["torch_threads"].as_i64().is_some_and(|t| t >= 1), "{report}");
}
