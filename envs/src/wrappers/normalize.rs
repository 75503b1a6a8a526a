//! [`NormalizeObservation`]: running observation normalisation for one environment.

use crate::core::{
    Action, BoxSpace, Env, EnvError, EnvSnapshot, Observation, Space, Step, StepInfo,
};
use crate::running_mean_std::RunningMeanStd;

/// Stable-Baselines3's default `epsilon` under the square root of the variance.
pub const DEFAULT_NORM_EPSILON: f64 = 1e-8;
/// Stable-Baselines3's default clip of normalised observations.
pub const DEFAULT_NORM_CLIP: f32 = 10.0;

/// Normalises observations with running statistics:
/// `clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`.
///
/// While training (the default), every observation (from `reset` and `step`) first updates the
/// [`RunningMeanStd`], then is normalised with the updated statistics, as Gymnasium's
/// `NormalizeObservation` and Stable-Baselines3's `VecNormalize` do. For evaluation, call
/// [`NormalizeObservation::set_training`]`(false)` to freeze the statistics; to resume or
/// evaluate a saved agent, restore them with [`NormalizeObservation::set_running_mean_std`].
///
/// The observation space becomes `Box(-clip, clip)` in every dimension.
#[derive(Clone, Debug)]
pub struct NormalizeObservation<E> {
    env: E,
    rms: RunningMeanStd,
    epsilon: f64,
    clip: f32,
    training: bool,
    observation_space: Space,
}

impl<E: Env> NormalizeObservation<E> {
    /// Wraps `env` with Stable-Baselines3's defaults: `epsilon = 1e-8`, `clip = 10`.
    pub fn new(env: E) -> Self {
        Self::with_params(env, DEFAULT_NORM_EPSILON, DEFAULT_NORM_CLIP)
    }

    /// Wraps `env` with the given `epsilon` and `clip` (use `f32::INFINITY` for no clipping).
    ///
    /// # Panics
    /// If `clip` is not positive or `epsilon` is negative (a programming error).
    pub fn with_params(env: E, epsilon: f64, clip: f32) -> Self {
        assert!(clip > 0.0, "clip {clip} must be positive");
        assert!(epsilon >= 0.0, "epsilon {epsilon} must be >= 0");
        let dim = env.observation_space().flat_dim();
        Self {
            env,
            rms: RunningMeanStd::new(dim),
            epsilon,
            clip,
            training: true,
            observation_space: Space::Box(BoxSpace::uniform(dim, -clip, clip)),
        }
    }

    /// Whether observations update the statistics.
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Turns statistics updates on (training) or off (evaluation: statistics frozen).
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// The running statistics, for saving.
    pub fn running_mean_std(&self) -> &RunningMeanStd {
        &self.rms
    }

    /// Replaces the running statistics, for example with saved ones. Fails if their dimension is
    /// not the observation dimension.
    pub fn set_running_mean_std(&mut self, rms: RunningMeanStd) -> Result<(), EnvError> {
        if rms.dim() != self.rms.dim() {
            return Err(EnvError::Other {
                env: self.env.id().to_owned(),
                message: format!(
                    "observation statistics have dimension {} but observations have {}",
                    rms.dim(),
                    self.rms.dim()
                ),
            });
        }
        self.rms = rms;
        Ok(())
    }

    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.env
    }

    /// The wrapped environment, mutably.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.env
    }

    /// Unwraps the environment.
    pub fn into_inner(self) -> E {
        self.env
    }

    fn process(&mut self, mut obs: Observation) -> Result<Observation, EnvError> {
        self.process_in_place(&mut obs)?;
        Ok(obs)
    }

    /// Updates the statistics with `obs` (while training) and normalises it in place.
    fn process_in_place(&mut self, obs: &mut [f32]) -> Result<(), EnvError> {
        if obs.len() != self.rms.dim() {
            return Err(EnvError::InvalidOutput {
                env: self.env.id().to_owned(),
                message: format!(
                    "observation {obs:?} has {} values but the observation space {} has {}",
                    obs.len(),
                    self.env.observation_space(),
                    self.rms.dim()
                ),
            });
        }
        if self.training {
            self.rms.update(obs);
        }
        let raw = Observation::from_slice(obs);
        self.rms.normalize(&raw, obs, self.epsilon, self.clip);
        Ok(())
    }
}

impl<E: Env> Env for NormalizeObservation<E> {
    fn id(&self) -> &str {
        self.env.id()
    }

    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        self.env.action_space()
    }

    forward_env_queries!();

    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        let obs = self.env.reset(seed)?;
        self.process(obs)
    }

    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let mut step = self.env.step(action)?;
        step.obs = self.process(step.obs)?;
        Ok(step)
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        let info = self.env.step_into(action, obs)?;
        self.process_in_place(obs)?;
        Ok(info)
    }

    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        let inner = self.env.snapshot()?;
        EnvSnapshot::new(self.id(), &(&self.rms, self.training, inner))
    }

    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        let (rms, training, inner): (RunningMeanStd, bool, EnvSnapshot) =
            snapshot.state(self.id())?;
        self.env.restore(&inner)?;
        self.set_running_mean_std(rms)?;
        self.training = training;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pendulum;

    #[test]
    fn normalises_with_the_statistics_updated_by_the_same_observation() {
        let mut env = NormalizeObservation::new(Pendulum::new());
        let obs = env.reset(Some(0)).expect("reset");
        let raw = env.inner().state();
        let mut expected_rms = RunningMeanStd::new(3);
        let raw_obs = [raw[0].cos() as f32, raw[0].sin() as f32, raw[1] as f32];
        expected_rms.update(&raw_obs);
        let mut expected = [0.0; 3];
        expected_rms.normalize(&raw_obs, &mut expected, DEFAULT_NORM_EPSILON, DEFAULT_NORM_CLIP);
        assert_eq!(obs.as_slice(), expected, "first observation");
        assert_eq!(env.running_mean_std(), &expected_rms);
    }

    #[test]
    fn frozen_statistics_do_not_change_in_evaluation() {
        let mut env = NormalizeObservation::new(Pendulum::new());
        env.reset(Some(0)).expect("reset");
        for _ in 0..10 {
            env.step(Action::Continuous(&[1.0])).expect("step");
        }
        env.set_training(false);
        let frozen = env.running_mean_std().clone();
        env.reset(Some(1)).expect("reset");
        for _ in 0..10 {
            let step = env.step(Action::Continuous(&[-1.0])).expect("step");
            assert!(step.obs.iter().all(|x| x.abs() <= DEFAULT_NORM_CLIP), "clip violated");
        }
        assert_eq!(env.running_mean_std(), &frozen, "statistics moved while frozen");
    }

    #[test]
    fn restored_statistics_must_have_the_observation_dimension() {
        let mut env = NormalizeObservation::new(Pendulum::new());
        let err = env.set_running_mean_std(RunningMeanStd::new(4)).expect_err("dimension 4");
        assert!(err.to_string().contains("dimension 4 but observations have 3"), "{err}");
        env.set_running_mean_std(RunningMeanStd::with_initial_count(3, 5.0)).expect("dim 3");
        assert_eq!(env.running_mean_std().count(), 5.0);
    }

    #[test]
    fn a_restored_snapshot_continues_with_the_same_statistics() {
        let mut env =
            NormalizeObservation::new(crate::RecordEpisodeStatistics::new(Pendulum::new()));
        env.reset(Some(2)).expect("reset");
        for _ in 0..4 {
            env.step(Action::Continuous(&[1.0])).expect("step");
        }
        let snapshot = env.snapshot().expect("snapshot");
        let mut copy =
            NormalizeObservation::new(crate::RecordEpisodeStatistics::new(Pendulum::new()));
        copy.restore(&snapshot).expect("restore");
        assert_eq!(copy.running_mean_std(), env.running_mean_std());
        assert_eq!(copy.inner().current_length(), 4, "episode statistics must be restored");
        for _ in 0..3 {
            let (a, b) =
                (env.step(Action::Continuous(&[-1.0])), copy.step(Action::Continuous(&[-1.0])));
            assert_eq!(a, b, "steps differ after restore");
        }
    }

    #[test]
    fn observation_space_is_the_clip_box() {
        let env = NormalizeObservation::with_params(Pendulum::new(), 1e-8, 5.0);
        assert_eq!(env.observation_space(), &Space::Box(BoxSpace::uniform(3, -5.0, 5.0)));
    }
}
