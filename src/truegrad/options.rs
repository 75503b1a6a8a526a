//! [`TrueGradOptions`]: how much a measurement plays and estimates.

use crate::run::RunError;

/// How much to measure. The defaults take about a minute on Pendulum-v1 on one core.
#[derive(Clone, Debug)]
pub struct TrueGradOptions {
    /// Episodes behind the ground truth.
    pub truth_episodes: usize,
    /// Episodes per ground-truth chunk (and per batch of lockstep rollouts): the truth's
    /// standard error comes from the spread of `truth_episodes / chunk_episodes` chunks.
    pub chunk_episodes: usize,
    /// Independent estimates per estimator.
    pub estimates: usize,
    /// The λ of the GAE estimators.
    pub lambdas: Vec<f64>,
    /// Random directions for the finite-difference cross-check, checked after the direction of
    /// the pilot batch's gradient (0: no cross-check).
    pub fd_directions: usize,
    /// Episode pairs per finite difference.
    pub fd_episodes: usize,
    /// Largest step `h` of the finite differences, along unit directions of the parameter
    /// vector; shorter where `J` is steep, so that `h ‖∇J‖ ≤ 0.01 |J|`.
    pub fd_step: f64,
    /// Episodes per score-function estimate; `None`: the agent's batch in steps over the mean
    /// episode length, rounded (at least 1).
    pub batch_episodes: Option<usize>,
    /// Longest episode allowed (the objective needs whole episodes).
    pub max_steps: usize,
    /// Seed of libtorch's generator and of the environments' resets.
    pub seed: u64,
    /// libtorch threads ([`measure`](super::measure) sets them).
    pub threads: usize,
}

impl Default for TrueGradOptions {
    fn default() -> Self {
        Self {
            truth_episodes: 32_768,
            chunk_episodes: 512,
            estimates: 100,
            lambdas: vec![0.0, 0.9, 0.97],
            fd_directions: 3,
            fd_episodes: 4096,
            fd_step: 0.01,
            batch_episodes: None,
            max_steps: 100_000,
            seed: 0,
            threads: 1,
        }
    }
}

impl TrueGradOptions {
    /// Checks the options, naming the first bad one.
    pub fn validate(&self) -> Result<(), RunError> {
        let bad = |what: String| Err(RunError::Usage(what));
        if self.chunk_episodes == 0 {
            return bad("--chunk-episodes must be at least 1".into());
        }
        if self.truth_episodes < 2 * self.chunk_episodes {
            return bad(format!(
                "--truth-episodes {} must be at least two chunks of --chunk-episodes {}",
                self.truth_episodes, self.chunk_episodes
            ));
        }
        if self.estimates < 2 {
            return bad(format!("--estimates {} must be at least 2", self.estimates));
        }
        if let Some(l) = self.lambdas.iter().find(|l| !(0.0..=1.0).contains(*l)) {
            return bad(format!("--lambdas: {l} is outside [0, 1]"));
        }
        if self.fd_directions > 0 && self.fd_episodes < 2 {
            return bad(format!("--fd-episodes {} must be at least 2", self.fd_episodes));
        }
        if !(self.fd_step.is_finite() && self.fd_step > 0.0) {
            return bad(format!("--fd-step {} must be a positive number", self.fd_step));
        }
        if self.batch_episodes == Some(0) {
            return bad("--batch-episodes must be at least 1".into());
        }
        if self.max_steps == 0 {
            return bad("--max-steps must be at least 1".into());
        }
        Ok(())
    }
}
