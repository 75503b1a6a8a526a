//! The NaN/Inf guard: a non-finite loss, gradient norm or parameter stops training with a
//! message naming the quantity and the step, keeps the last good checkpoint, exits non-zero.

use std::path::PathBuf;

use rlpg::agents::{ActMode, Actions, Agent, AgentError, BackendKind, Metrics, Transition};
use rlpg::checkpoint::{Checkpoint, step_checkpoints};
use rlpg::run::{loop_settings, registry_factory};
use rlpg::trainer::{
    CheckpointSaver, LoopControl, MemorySink, SavePoint, TrainError, train_loop_with,
};
use rlpg::{AgentKind, Config};
use tch::{Device, Kind, Tensor};

mod common;
use common::{Scratch, rlpg, text};

const PRESET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/reinforce_cartpole.toml");
/// The pathwise case starts from a pathwise preset: a [reinforce] section is refused with
/// agent = "pathwise".
const PATHWISE_PRESET: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pathwise_pendulum.toml");

/// Trains with `sets` (absurd learning rates) and checks the failure and what is left.
fn check_blow_up(name: &str, preset: &str, sets: &[&str], quantity_prefix: &str) {
    let root = Scratch::new(&format!("nan-{name}"));
    let out = root.to_str().expect("utf-8").to_owned();
    let mut args = vec!["train", preset, "--quiet", "--out", &out];
    for set in sets {
        args.extend(["--set", set]);
    }
    let output = rlpg(&args);
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "exit code; stderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("non-finite") && err.contains(quantity_prefix) && err.contains(" at step "),
        "the message must name the non-finite quantity and the step: {err}"
    );
    // A non-finite loss marks the run failed (resuming would replay the same steps into it),
    // and the message names the last checkpoint written.
    assert!(
        err.contains("marked failed")
            && err.contains("last checkpoint")
            && err.contains(".safetensors"),
        "the message must name the checkpoint: {err}"
    );
    // Resuming would replay the same steps into the same error, so it is not what is advised.
    assert!(err.contains("Resuming replays the same steps"), "{err}");
    assert!(!err.contains("train --resume") && !err.contains("  "), "{err}");
    let run_dir: PathBuf = std::fs::read_dir(&root)
        .expect("out root")
        .next()
        .expect("a run directory")
        .expect("entry")
        .path();
    let (_, path) = step_checkpoints(&run_dir).expect("list").pop().expect("a kept checkpoint");
    let checkpoint = Checkpoint::read(&path).expect("the kept checkpoint loads");
    for (tensor_name, t) in checkpoint.agent.iter().chain(&checkpoint.training) {
        if matches!(t.kind(), Kind::Float | Kind::Double) {
            let finite = t.isfinite().all().int64_value(&[]) != 0;
            assert!(finite, "kept checkpoint has a non-finite '{tensor_name}'");
        }
    }
    let eval = rlpg(&["eval", run_dir.to_str().expect("utf-8"), "--episodes", "1"]);
    assert!(eval.status.success(), "the kept checkpoint must evaluate");
}

#[test]
fn reinforce_with_an_absurd_learning_rate_stops_on_a_non_finite_loss() {
    check_blow_up(
        "reinforce",
        PRESET,
        &[
            "reinforce.learning_rate=1e30",
            "reinforce.value_learning_rate=1e30",
            "total_timesteps=20000",
            "checkpoint_every=1000",
        ],
        "losses/",
    );
}

#[test]
fn pathwise_with_an_absurd_learning_rate_stops_on_a_non_finite_loss() {
    check_blow_up(
        "pathwise",
        PATHWISE_PRESET,
        &[
            "agent=pathwise",
            "env=Pendulum-v1",
            "num_envs=2",
            "pathwise.actor_learning_rate=1e30",
            "pathwise.critic_learning_rate=1e30",
            "total_timesteps=4000",
            "checkpoint_every=50",
        ],
        "losses/",
    );
}

/// An agent that acts at random on CartPole and whose single parameter becomes NaN after
/// `poison_after` observed steps, with finite losses: only the parameter check can catch it.
struct Poisoned {
    observed: usize,
    poison_after: usize,
    weight: Tensor,
}

impl Agent for Poisoned {
    fn name(&self) -> &'static str {
        "poisoned"
    }
    fn backend(&self) -> BackendKind {
        BackendKind::Libtorch
    }
    fn act(&mut self, obs: &[f32], _mode: ActMode, out: &mut Actions) -> Result<(), AgentError> {
        let rows = obs.len() / 4;
        let draws = Tensor::randint(2, [rows as i64], (Kind::Int64, Device::Cpu));
        draws.f_copy_data(out.indices(rows, 1), rows)?;
        Ok(())
    }
    fn observe(&mut self, _t: &Transition<'_>) -> Result<Option<Metrics>, AgentError> {
        self.observed += 1;
        if self.observed == self.poison_after {
            let _ = self.weight.fill_(f64::NAN);
        }
        Ok(None)
    }
    fn named_tensors(&self) -> Vec<(String, Tensor)> {
        vec![("policy/weight".to_owned(), self.weight.copy())]
    }
    fn load_named_tensors(&mut self, _tensors: &[(String, Tensor)]) -> Result<(), AgentError> {
        Ok(())
    }
}

/// Records the step of every checkpoint it is asked to write.
#[derive(Default)]
struct Steps(Vec<u64>);

impl CheckpointSaver for Steps {
    fn save(&mut self, point: &SavePoint<'_>) -> Result<(), String> {
        self.0.push(point.state.global_step);
        Ok(())
    }
}

#[test]
fn a_non_finite_parameter_is_caught_at_the_next_checkpoint_and_nothing_is_written() {
    let mut config = Config::new("CartPole-v1", AgentKind::Reinforce);
    config.num_envs = 4;
    config.total_timesteps = 2_000;
    config.checkpoint_every = 400;
    config.eval_every = 0;
    let factory = registry_factory(&config);
    let mut agent = Poisoned {
        observed: 0,
        poison_after: 150,
        weight: Tensor::ones([3], (Kind::Float, Device::Cpu)),
    };
    let mut saver = Steps::default();
    let control = LoopControl { saver: Some(&mut saver), ..LoopControl::default() };
    let settings = loop_settings(&config, false);
    let mut sink = MemorySink::default();
    let err = train_loop_with(&mut agent, &factory, &settings, &mut sink, control)
        .expect_err("a NaN parameter must stop training");
    // Poisoned at the 150th step = env step 600; the next checkpoint point is 800.
    match &err {
        TrainError::NonFinite { step, quantity } => {
            assert_eq!(*step, 800, "found at the checkpoint after the poisoning");
            assert!(quantity.contains("policy/weight"), "names the tensor: {quantity}");
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(err.to_string().contains("non-finite tensor 'policy/weight' at step 800"), "{err}");
    assert_eq!(saver.0, [0, 400], "no checkpoint may be written once a parameter is NaN");
}
