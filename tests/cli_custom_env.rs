//! A user's own environment through the whole command line: `rlpg::cli::main_with` with a
//! registry that has GridReach-v0 (the environment of the template project,
//! `templates/custom-env/src/main.rs`, compiled here as a module), from a TOML
//! config to train, runs, eval, resume and bench; and the ways it can go wrong (a bad registry,
//! an environment the program does not register), which are clear errors with exit code 2.

#[path = "../templates/custom-env/src/main.rs"]
#[allow(dead_code)]
mod grid_reach_cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use grid_reach_cli::{GridReach, registry};
use rlpg::checkpoint::{BEST_CHECKPOINT, Checkpoint, checkpoint_dir};
use rlpg::envs::{Env, Registry};
use rlpg::run::{EnvSource, RunError, RunOutcome, TrainOptions, evaluate_run, train_with};
use rlpg::runs::{RunStatus, list_runs};
use rlpg::{Config, Override};

mod common;
use common::{Scratch, path, rlpg, text};

const CONFIG: &str = r#"
env = "GridReach-v0"
agent = "reinforce"
seed = 3
total_timesteps = 1200
num_envs = 2
eval_every = 400
eval_episodes = 2
checkpoint_every = 400
log_every = 400

[reinforce]
n_steps = 20
"#;

/// The user's program, called in this process with `args` after the program name.
fn grid_cli(args: &[&str]) -> ExitCode {
    let args = std::iter::once("grid_reach_cli").chain(args.iter().copied());
    rlpg::cli::main_with_args(registry(), args)
}

fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| rd.map(|e| e.expect("entry").path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

#[test]
fn a_custom_env_goes_from_a_toml_config_through_train_runs_eval_resume_and_bench() {
    let dir = Scratch::new("custom-e2e");
    let config_path = dir.join("grid.toml");
    std::fs::write(&config_path, CONFIG).expect("write config");
    let out = dir.join("runs");

    // train, with --set, from a TOML file naming the user's environment
    let code = grid_cli(&[
        "train",
        path(&config_path),
        "--set",
        "reinforce.gamma=0.95",
        "--out",
        path(&out),
        "--quiet",
    ]);
    assert_eq!(code, ExitCode::SUCCESS, "train failed (stderr above)");
    let runs = run_dirs(&out);
    assert_eq!(runs.len(), 1, "one run directory: {runs:?}");
    let run = &runs[0];

    // the run reads back without its environment: listed as complete, config and checkpoint load
    let listed = list_runs(&out).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, RunStatus::Complete, "{listed:?}");
    assert_eq!(listed[0].env.as_deref(), Some(GridReach::ID));
    let best = checkpoint_dir(run).join(BEST_CHECKPOINT);
    let config = Checkpoint::read(&best).and_then(|c| c.config(&best)).expect("checkpoint config");
    assert_eq!(config.env, GridReach::ID);
    assert_eq!(config.reinforce.gamma, 0.95, "the --set override is in the run's config");
    // ... also by the `rlpg` binary, which does not know GridReach-v0
    let listing = rlpg(&["runs", "--dir", path(&out)]);
    assert!(listing.status.success(), "{}", text(&listing.stderr));
    let table = text(&listing.stdout);
    assert!(table.contains("GridReach-v0") && table.contains("complete"), "{table}");
    assert!(!table.contains("broken"), "{table}");

    // eval: through the program, and through the library with its registry
    assert_eq!(grid_cli(&["eval", path(run), "--episodes", "3"]), ExitCode::SUCCESS);
    let result = evaluate_run(run, 3, 0, EnvSource::Registry(&registry())).expect("eval");
    assert_eq!(result.returns.len(), 3);
    // bench on the same config
    let bench = ["bench", path(&config_path), "--seeds", "0", "--target-recent", "-100"];
    assert_eq!(grid_cli(&bench), ExitCode::SUCCESS);
    assert_eq!(grid_cli(&["envs"]), ExitCode::SUCCESS);
    let specs = registry().specs().expect("every entry builds");
    let grid = specs.iter().find(|s| s.id == GridReach::ID).expect("listed by envs");
    assert_eq!(
        (grid.action_space.clone(), grid.max_episode_steps),
        (rlpg::envs::Space::Discrete(2), Some(50))
    );

    // resume: a run stopped at its first step continues to the end through the program
    let config = Config::load_checked(&config_path, &[], &registry()).expect("config");
    let stop = AtomicBool::new(true);
    let options = TrainOptions {
        envs: EnvSource::Registry(&registry()),
        stop: Some(&stop),
        ..TrainOptions::default()
    };
    let stopped_root = dir.join("stopped");
    let outcome = train_with(&config, &stopped_root, options).expect("train until stopped");
    let RunOutcome::Interrupted { run_dir, .. } = outcome else {
        panic!("a stop flag set from the start interrupts the run")
    };
    let listed = list_runs(&stopped_root).expect("list");
    assert_eq!(listed[0].status, RunStatus::Resumable, "{listed:?}");
    // the `rlpg` binary cannot build GridReach-v0: a clear error, exit 2, no impossible advice
    let refused = rlpg(&["train", "--resume", path(run_dir.path())]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let message = text(&refused.stderr);
    assert!(
        message.contains("environment `GridReach-v0` is not registered in this program")
            && message.contains("registered: CartPole-v1, Pendulum-v1"),
        "{message}"
    );
    assert!(!message.contains("--resume"), "suggests a command that cannot work: {message}");
    assert_eq!(grid_cli(&["train", "--resume", path(run_dir.path())]), ExitCode::SUCCESS);
    let listed = list_runs(&stopped_root).expect("list");
    assert_eq!(listed[0].status, RunStatus::Complete, "{listed:?}");
    assert_eq!(listed[0].steps, 1200);
    // a complete run has nothing to resume: exit 2
    assert_eq!(grid_cli(&["train", "--resume", path(run_dir.path())]), ExitCode::from(2));
}

#[test]
fn a_run_whose_env_is_not_registered_lists_and_loads_but_does_not_train_or_evaluate() {
    let dir = Scratch::new("custom-unregistered");
    let config_path = dir.join("grid.toml");
    std::fs::write(&config_path, CONFIG).expect("write config");
    let out = dir.join("runs");
    let set = ["total_timesteps=200", "eval_every=0"].map(|a| Override::parse(a).expect("parses"));
    let config = Config::load_checked(&config_path, &set, &registry()).expect("config");
    let options = TrainOptions { envs: EnvSource::Registry(&registry()), ..Default::default() };
    train_with(&config, &out, options).expect("train");
    let run = run_dirs(&out).pop().expect("a run");

    // list and load: yes
    assert_eq!(list_runs(&out).expect("list")[0].status, RunStatus::Complete);
    // evaluate with the built-in registry (as the `rlpg` binary does): a clear error
    let err = evaluate_run(&run, 2, 0, EnvSource::Builtin).expect_err("GridReach-v0 is unknown");
    assert!(matches!(&err, RunError::NotRegistered { id, .. } if id == GridReach::ID), "{err:?}");
    assert!(err.is_usage_error(), "exit code 2");
    let eval = rlpg(&["eval", path(&run)]);
    assert_eq!(eval.status.code(), Some(2), "{}", text(&eval.stderr));
    assert!(text(&eval.stderr).contains("GridReach-v0"), "{}", text(&eval.stderr));

    // train from a config naming it, with the `rlpg` binary: exit 2, file:line, known ids
    let train = rlpg(&["train", path(&config_path), "--out", path(&out), "--quiet"]);
    assert_eq!(train.status.code(), Some(2), "{}", text(&train.stderr));
    let message = text(&train.stderr);
    assert!(
        message.contains("grid.toml:2:7: env: unknown environment `GridReach-v0`")
            && message.contains("known: CartPole-v1"),
        "{message}"
    );
    assert_eq!(run_dirs(&out).len(), 1, "a refused config makes no run directory");
}

#[test]
fn a_run_of_an_unregistered_env_exports_and_loads_from_the_spaces_its_checkpoints_record() {
    let dir = Scratch::new("custom-export");
    let config_path = dir.join("grid.toml");
    std::fs::write(&config_path, CONFIG).expect("write config");
    let out = dir.join("runs");
    let config = Config::load_checked(&config_path, &[], &registry()).expect("config");
    let options = TrainOptions { envs: EnvSource::Registry(&registry()), ..Default::default() };
    train_with(&config, &out, options).expect("train");
    let run = run_dirs(&out).pop().expect("a run");
    let best = checkpoint_dir(&run).join(BEST_CHECKPOINT);
    let spaces = Checkpoint::read(&best).expect("best").meta.spaces.expect("spaces recorded");
    assert_eq!(spaces.observation_space(), *GridReach::new().observation_space());
    assert_eq!(spaces.action_space(), *GridReach::new().action_space());

    // The `rlpg` binary does not register GridReach-v0, and exports it anyway.
    let export_dir = dir.join("export");
    let export = rlpg(&["export", path(&run), "--out", path(&export_dir)]);
    assert_eq!(export.status.code(), Some(0), "{}", text(&export.stderr));
    let listed = text(&export.stdout);
    for file in ["policy.json", "policy.safetensors", "policy.onnx"] {
        assert!(export_dir.join(file).is_file(), "{file} written");
        assert!(listed.contains(file), "{file} listed on stdout: {listed}");
    }
    // So does rlpg::Policy::load (no factory) from the run, and both agree with the export.
    let torch = rlpg::Policy::load(&run).expect("rlpg::Policy from the run");
    let light = rlpg::deploy::Policy::load(&export_dir).expect("rlpg_policy::Policy");
    assert_eq!(torch.action_space(), GridReach::new().action_space());
    for cell in 0..GridReach::CELLS {
        let obs = [cell as f32 / (GridReach::CELLS - 1) as f32];
        assert_eq!(torch.act(&obs).expect("act"), light.act(&obs).expect("act"), "cell {cell}");
    }

    // Bad input: one line on stderr, exit code 2, nothing written.
    let missing = dir.join("no-such-run");
    let bad_run = rlpg(&["export", path(&missing), "--out", path(&dir.join("x"))]);
    assert_eq!(bad_run.status.code(), Some(2), "{}", text(&bad_run.stderr));
    assert_eq!(text(&bad_run.stderr).trim_end().lines().count(), 1, "{}", text(&bad_run.stderr));
    assert!(text(&bad_run.stderr).contains("no-such-run"), "{}", text(&bad_run.stderr));
    assert!(!dir.join("x").exists(), "nothing written for a missing run");
    let bad_checkpoint =
        rlpg(&["export", path(&run), "--checkpoint", "step-7.safetensors", "--out", path(&dir)]);
    assert_eq!(bad_checkpoint.status.code(), Some(2), "{}", text(&bad_checkpoint.stderr));
    assert_eq!(text(&bad_checkpoint.stderr).trim_end().lines().count(), 1);
}

#[test]
fn a_registry_with_a_duplicate_or_malformed_id_is_refused_at_start_with_exit_code_2() {
    let duplicate = Registry::builtin().with("CartPole-v1", GridReach::new);
    let malformed = Registry::builtin().with("Grid Reach", GridReach::new);
    let empty = Registry::builtin().with("", GridReach::new);
    for registry in [duplicate, malformed, empty] {
        let code = rlpg::cli::main_with_args(registry, ["grid_reach_cli", "envs"]);
        assert_eq!(code, ExitCode::from(2));
    }
    // Bad arguments are clap's exit code 2, returned rather than exiting the process.
    assert_eq!(grid_cli(&["train", "--no-such-flag"]), ExitCode::from(2));
}

#[test]
fn an_unused_agent_section_is_exit_code_2_with_its_line() {
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/bad_configs/unused_reinforce_section.toml"
    );
    let unused = Scratch::new("custom-unused");
    let out = rlpg(&["train", config, "--quiet", "--out", path(&unused)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("unused_reinforce_section.toml:5:2: reinforce: the [reinforce] section"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_env_is_a_command_of_the_users_program_checking_the_registrys_env() {
    assert_eq!(grid_cli(&["check-env", "GridReach-v0"]), ExitCode::SUCCESS);
    assert_eq!(grid_cli(&["check-env", "GridReach-v0", "--json"]), ExitCode::SUCCESS);
    assert_eq!(grid_cli(&["check-env", "Elsewhere-v0"]), ExitCode::from(2), "not registered");
    let out = rlpg(&["check-env", "CartPole-v1", "--json"]);
    let report: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).expect("json");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["env"], "CartPole-v1");
}
