//! `rlpg eval` evaluates what was trained: on the run's own evaluation seeds it reproduces, to
//! the last bit, the evaluation the run logged when it saved its best checkpoint; the same
//! checkpoint with its weights zeroed, or with its observation normalisation dropped, evaluates
//! clearly differently (so a bug that ignored either would show here).

use std::path::{Path, PathBuf};

use rlpg::checkpoint::{Checkpoint, step_checkpoints};

mod common;
use common::{Scratch, rlpg, text};

/// Seed of the run; the trainer evaluates on seeds `SEED + 1_000_000 + i`.
const SEED: u64 = 2;
const EPISODES: &str = "5";

/// `rlpg eval RUN --checkpoint WHICH` on the training run's evaluation seeds; the mean return.
fn eval(run_dir: &Path, which: &str) -> f64 {
    let eval_seed = (SEED + 1_000_000).to_string();
    let run = run_dir.to_str().expect("utf-8");
    let out = rlpg(&[
        "eval",
        run,
        "--checkpoint",
        which,
        "--episodes",
        EPISODES,
        "--seed",
        &eval_seed,
        "--json",
    ]);
    assert!(out.status.success(), "eval failed: {}", text(&out.stderr));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("eval prints one JSON object");
    json["mean_return"].as_f64().expect("mean_return")
}

/// Writes `checkpoint`, changed by `change`, next to the run's checkpoints; returns its path.
fn altered(run_dir: &Path, name: &str, change: impl FnOnce(&mut Checkpoint)) -> PathBuf {
    let best = run_dir.join("checkpoints").join("best.safetensors");
    let mut checkpoint = Checkpoint::read(&best).expect("best checkpoint");
    change(&mut checkpoint);
    let path = run_dir.join(format!("{name}.safetensors"));
    checkpoint.write(&path).expect("write altered checkpoint");
    path
}

#[test]
fn eval_reproduces_the_logged_evaluation_and_notices_zeroed_weights_or_dropped_normalisation() {
    let root = Scratch::new("eval-correct");
    // REINFORCE on CartPole with observation normalisation, stopped part-way so that the
    // evaluations are not all the 500 ceiling.
    let seed = SEED.to_string();
    let episodes = format!("eval_episodes={EPISODES}");
    let mut args = vec!["train", common::PRESET, "--seed", &seed, "--quiet"];
    args.extend(["--out", root.to_str().expect("utf-8")]);
    for set in [
        "total_timesteps=30000",
        "eval_every=10000",
        &episodes,
        "checkpoint_every=10000",
        "normalize_obs=true",
    ] {
        args.extend(["--set", set]);
    }
    let out = rlpg(&args);
    assert!(out.status.success(), "train failed: {}", text(&out.stderr));
    let run_dir = PathBuf::from(text(&out.stdout).lines().last().expect("dir"));

    let best = Checkpoint::read(&run_dir.join("checkpoints").join("best.safetensors"))
        .expect("best checkpoint");
    let logged = best.meta.eval_return.expect("the best checkpoint holds its evaluation");
    assert!(
        best.meta.loop_state.evals.contains(&(best.meta.step, logged)),
        "the run's evaluations {:?} lack the best one ({}, {logged})",
        best.meta.loop_state.evals,
        best.meta.step
    );
    let reproduced = eval(&run_dir, "best");
    assert_eq!(
        reproduced.to_bits(),
        logged.to_bits(),
        "eval of the best checkpoint (step {}) gives {reproduced}, the run logged {logged}",
        best.meta.step
    );

    // Every interval checkpoint written at an evaluation step holds the weights that evaluation
    // used (the loop evaluates before it checkpoints), including the ones below the ceiling.
    let mut compared = Vec::new();
    for (step, path) in step_checkpoints(&run_dir).expect("list checkpoints") {
        let Some(&(_, logged)) = best.meta.loop_state.evals.iter().find(|(s, _)| *s == step) else {
            continue;
        };
        let reproduced = eval(&run_dir, path.to_str().expect("utf-8"));
        assert_eq!(
            reproduced.to_bits(),
            logged.to_bits(),
            "eval of the step-{step} checkpoint gives {reproduced}, the run logged {logged}"
        );
        compared.push((step, logged));
    }
    assert!(
        compared.iter().any(|&(_, r)| r < 500.0),
        "every compared evaluation is at the 500 ceiling: {compared:?}"
    );

    let zeroed = altered(&run_dir, "zeroed", |c| {
        for (_, tensor) in &mut c.agent {
            let _ = tensor.zero_();
        }
    });
    let zeroed = eval(&run_dir, zeroed.to_str().expect("utf-8"));
    let unnormalised = altered(&run_dir, "unnormalised", |c| {
        assert!(c.meta.config.contains("normalize_obs = true"), "{}", c.meta.config);
        c.meta.config = c.meta.config.replace("normalize_obs = true", "normalize_obs = false");
    });
    let unnormalised = eval(&run_dir, unnormalised.to_str().expect("utf-8"));
    eprintln!(
        "best at step {}: logged {logged}, eval {reproduced}, zeroed weights {zeroed}, without \
         normalisation {unnormalised}",
        best.meta.step
    );
    for (what, value) in [("zeroed weights", zeroed), ("dropped normalisation", unnormalised)] {
        assert!(
            (value - logged).abs() > 0.25 * logged,
            "with {what} eval gives {value}, too close to the trained {logged} to tell them apart"
        );
    }
}
