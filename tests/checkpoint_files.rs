//! Checkpoint files and run directories: what a run leaves, what `rlpg eval` says about
//! missing, incomplete and corrupt checkpoints, pruning, event-file trimming, `rlpg runs`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rlpg::checkpoint::{
    BEST_CHECKPOINT, Checkpoint, CheckpointError, checkpoint_dir, read_meta, step_checkpoints,
};
use rlpg::run::train;
use rlpg::runs::{RunStatus, list_runs};
use rlpg::trainer::SaveReason;
use rlpg::{AgentKind, Config, TbLogger, read_scalars, trim_event_files};

mod common;
use common::{Scratch, rlpg, text};

/// libtorch's generator is global to the process: training runs take turns.
static TORCH: Mutex<()> = Mutex::new(());

fn small_config() -> Config {
    let mut config = Config::new("CartPole-v1", AgentKind::Reinforce);
    config.total_timesteps = 3_000;
    config.checkpoint_every = 500;
    config.keep_checkpoints = 2;
    config.eval_every = 1_000;
    config.eval_episodes = 2;
    config
}

fn train_small(root: &Path) -> PathBuf {
    train_config(&small_config(), root)
}

fn train_config(config: &Config, root: &Path) -> PathBuf {
    let _turn = TORCH.lock().unwrap_or_else(|p| p.into_inner());
    let trained = train(config, root, None, false).expect("training");
    trained.run_dir.path().to_owned()
}

#[test]
fn a_finished_run_keeps_the_newest_checkpoints_and_the_best_one() {
    let root = Scratch::new("ckpt-prune");
    let run = train_small(&root);
    let steps: Vec<u64> =
        step_checkpoints(&run).expect("list").into_iter().map(|(s, _)| s).collect();
    // keep_checkpoints = 2: the last interval checkpoint (2504, the first step >= 2500 in steps
    // of 8 envs) and the final one.
    assert_eq!(steps, [2_504, 3_000], "kept step checkpoints");
    let best = checkpoint_dir(&run).join(BEST_CHECKPOINT);
    let best_meta = read_meta(&best).expect("best checkpoint loads");
    assert_eq!(best_meta.reason, SaveReason::NewBest);
    let (_, best_return) = best_meta.loop_state.best_eval.expect("best evaluation recorded");
    assert_eq!(best_meta.eval_return, Some(best_return), "best file must hold the best eval");
    let last = Checkpoint::read(&checkpoint_dir(&run).join("step-000000003000.safetensors"))
        .expect("final checkpoint loads");
    assert_eq!(last.meta.reason, SaveReason::Final);
    assert!(last.meta.loop_state.finished, "the final checkpoint must say training finished");
    assert!(last.meta.config.contains("CartPole-v1"), "the resolved config is saved");
    assert!(last.agent.iter().any(|(n, _)| n.starts_with("policy/")), "policy tensors saved");
    assert!(last.meta.torch_rng.contains("re-seeded"), "the RNG scheme is recorded");
    assert!(!run.join("policy.safetensors").exists(), "one mechanism: no policy.safetensors");
    let eval = rlpg(&["eval", run.to_str().expect("utf-8"), "--episodes", "2"]);
    assert!(eval.status.success(), "eval of the best checkpoint failed: {}", text(&eval.stderr));
}

#[test]
fn damaged_checkpoints_are_refused_with_a_message_naming_the_file() {
    let root = Scratch::new("ckpt-damage");
    let run = train_small(&root);
    let run_arg = run.to_str().expect("utf-8").to_owned();
    let best = checkpoint_dir(&run).join(BEST_CHECKPOINT);
    let good = std::fs::read(&best).expect("read");

    // (how the file is damaged, what the error must say)
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x40;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("a flipped data byte", flipped, "checksum mismatch"),
        ("cut in half", good[..good.len() / 2].to_vec(), "incomplete"),
        ("cut inside the header", good[..20].to_vec(), "incomplete"),
        ("replaced by text", b"{\"not\": \"a checkpoint\"}".to_vec(), "corrupt"),
    ];
    for (how, bytes, needle) in cases {
        std::fs::write(&best, &bytes).expect("damage");
        let err = Checkpoint::read(&best).expect_err(how);
        assert!(
            matches!(err, CheckpointError::Corrupt { .. } | CheckpointError::Incomplete { .. }),
            "{how}: {err:?}"
        );
        let out = rlpg(&["eval", &run_arg, "--episodes", "1"]);
        let msg = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{how}: exit code, stderr {msg}");
        assert!(msg.contains(needle) && msg.contains("best.safetensors"), "{how}: {msg}");
        assert_eq!(msg.trim().lines().count(), 1, "{how}: not one line: {msg}");
        assert!(!msg.contains("panicked"), "{how}: panicked: {msg}");
    }
    // A safetensors file that is not an rlpg checkpoint.
    let plain = tch::Tensor::from_slice(&[1.0f32, 2.0]);
    tch::Tensor::write_safetensors(&[("x", &plain)], &best).expect("write plain safetensors");
    let err = Checkpoint::read(&best).expect_err("plain safetensors");
    assert!(err.to_string().contains("not an rlpg checkpoint"), "{err}");

    // A sound checkpoint whose tensors do not fit the agent its config builds (as one written
    // before a default changed would be) names the tensor and says it does not fit.
    std::fs::write(&best, &good).expect("restore");
    let mut checkpoint = Checkpoint::read(&best).expect("the restored checkpoint reads");
    let (name, tensor) = checkpoint.agent.first_mut().expect("agent tensors");
    let name = name.clone();
    *tensor = tensor.flatten(0, -1).narrow(0, 0, 1);
    checkpoint.write(&best).expect("write the misfit");
    let out = rlpg(&["eval", &run_arg, "--episodes", "1"]);
    let msg = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "misfit: exit code, stderr {msg}");
    assert!(msg.contains("does not fit the agent") && msg.contains(&name), "misfit: {msg}");
    assert!(msg.contains("best.safetensors") && !msg.contains("panicked"), "misfit: {msg}");

    // The newest step checkpoint still evaluates when named.
    let out = rlpg(&["eval", &run_arg, "--checkpoint", "latest", "--episodes", "1"]);
    assert!(out.status.success(), "latest checkpoint: {}", text(&out.stderr));
}

#[test]
fn eval_of_a_run_without_checkpoints_says_so() {
    let root = Scratch::new("ckpt-missing");
    let run = train_small(&root);
    std::fs::remove_dir_all(checkpoint_dir(&run)).expect("remove checkpoints");
    let out = rlpg(&["eval", run.to_str().expect("utf-8")]);
    let msg = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("no checkpoint in") && msg.contains("checkpoints"), "{msg}");
    // Naming a checkpoint that does not exist is the user's mistake: exit 2, as for every other.
    let out = rlpg(&["eval", run.to_str().expect("utf-8"), "--checkpoint", "nope.safetensors"]);
    let msg = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("nope.safetensors") && msg.contains("no such checkpoint"), "{msg}");
}

#[test]
fn trimming_keeps_records_up_to_the_step_and_drops_a_torn_tail() {
    let dir = Scratch::new("ckpt-trim");
    let mut logger = TbLogger::create(&dir).expect("logger");
    for step in 0..10u64 {
        logger.scalar("charts/episodic_return", step as f64, step * 100).expect("write");
    }
    logger.flush().expect("flush");
    let path = logger.path().to_owned();
    drop(logger);
    // A record cut short by a crash.
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.extend_from_slice(&[42, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    std::fs::write(&path, &bytes).expect("write");
    assert!(read_scalars(&path).expect("read").truncated_at.is_some());

    let dropped = trim_event_files(&dir, 450).expect("trim");
    assert_eq!(dropped, 5, "records at steps 500..900 must be dropped");
    let log = read_scalars(&path).expect("trimmed file reads");
    assert_eq!(log.truncated_at, None, "the torn record must be gone");
    let steps: Vec<u64> = log.series("charts/episodic_return").iter().map(|p| p.0).collect();
    assert_eq!(steps, [0, 100, 200, 300, 400]);
    let again = trim_event_files(&dir, 450).expect("trim again");
    assert_eq!(again, 0, "trimming twice changes nothing");
}

#[test]
fn runs_lists_complete_resumable_and_broken_runs() {
    let root = Scratch::new("ckpt-runs");
    let complete = train_small(&root);
    let resumable = train_config(&Config { keep_checkpoints: 10, ..small_config() }, &root);
    // As if killed after step 1000: later checkpoints gone.
    for (step, path) in step_checkpoints(&resumable).expect("list") {
        if step > 1_000 {
            std::fs::remove_file(path).expect("remove");
        }
    }
    std::fs::remove_file(checkpoint_dir(&resumable).join(BEST_CHECKPOINT)).expect("remove best");
    let broken = train_small(&root);
    for (_, path) in step_checkpoints(&broken).expect("list") {
        std::fs::write(path, b"garbage").expect("damage");
    }
    std::fs::remove_file(checkpoint_dir(&broken).join(BEST_CHECKPOINT)).expect("remove best");
    let no_config = root.join("CartPole-v1__reinforce__9__1");
    std::fs::create_dir_all(checkpoint_dir(&no_config)).expect("mkdir");

    let runs = list_runs(&root).expect("list runs");
    let status =
        |dir: &Path| runs.iter().find(|r| r.dir == dir).map(|r| r.status.clone()).expect("listed");
    assert_eq!(status(&complete), RunStatus::Complete);
    assert_eq!(status(&resumable), RunStatus::Resumable);
    assert!(
        matches!(status(&broken), RunStatus::Broken(r) if r.contains("no loadable checkpoint"))
    );
    assert!(matches!(status(&no_config), RunStatus::Broken(r) if r.contains("config.toml")));
    let info = runs.iter().find(|r| r.dir == resumable).expect("listed");
    assert_eq!(info.steps, 1_000);
    assert_eq!(
        (info.env.as_deref(), info.agent.as_deref()),
        (Some("CartPole-v1"), Some("reinforce"))
    );
    assert!(runs.iter().find(|r| r.dir == complete).is_some_and(|r| r.best_eval.is_some()));

    let out = rlpg(&["runs", "--dir", root.to_str().expect("utf-8")]);
    let listing = text(&out.stdout);
    assert!(out.status.success(), "rlpg runs failed: {}", text(&out.stderr));
    for needle in ["complete", "resumable", "broken", "1000/3000", "best_eval"] {
        assert!(listing.contains(needle), "`rlpg runs` lacks {needle:?}:\n{listing}");
    }
    let json = rlpg(&["runs", "--dir", root.to_str().expect("utf-8"), "--json"]);
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(parsed.as_array().map(Vec::len), Some(4), "{parsed}");
}

#[test]
fn a_run_that_another_process_trains_cannot_be_resumed_at_the_same_time() {
    let root = Scratch::new("ckpt-lock");
    let run = train_config(&Config { keep_checkpoints: 10, ..small_config() }, &root);
    for (step, path) in step_checkpoints(&run).expect("list") {
        if step > 1_000 {
            std::fs::remove_file(path).expect("remove");
        }
    }
    let held = rlpg::run::RunLock::acquire(&run).expect("lock a run nobody trains");
    let out = rlpg(&["train", "--resume", run.to_str().expect("utf-8"), "--quiet"]);
    let msg = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("in use"), "the refusal must say the run is in use: {msg}");
    let newest = step_checkpoints(&run).expect("list").pop().map(|c| c.0);
    assert_eq!(newest, Some(1_000), "a refused resume must not touch the run");
    drop(held);
    let out = rlpg(&["train", "--resume", run.to_str().expect("utf-8"), "--quiet"]);
    assert!(out.status.success(), "resume once the lock is free: {}", text(&out.stderr));
}
