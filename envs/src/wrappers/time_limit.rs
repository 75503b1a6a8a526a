//! [`TimeLimit`]: the one mechanism that truncates episodes.

use crate::core::{Action, Env, EnvError, EnvSnapshot, Observation, Space, Step, StepInfo};

/// Truncates episodes after `max_episode_steps` steps, as Gymnasium's `TimeLimit`.
///
/// On the step that reaches the limit, `truncated` is set to `true`; `terminated` is passed
/// through unchanged, so a step that both ends the task and reaches the limit reports **both**
/// flags (Gymnasium's behaviour). After any step that ends the episode, further steps are an
/// [`EnvError::EpisodeOver`] until `reset`, even if the inner environment would accept them.
///
/// This is the only place where rlpg truncates: the built-in environments never set
/// `truncated` themselves, and [`crate::make`] adds the registered limit with this wrapper.
#[derive(Clone, Debug)]
pub struct TimeLimit<E> {
    env: E,
    max_episode_steps: usize,
    elapsed_steps: usize,
    episode_over: bool,
}

impl<E: Env> TimeLimit<E> {
    /// Wraps `env`. The episode counter starts at 0, so an `env` already placed in a state (for
    /// example by `CartPole::from_state`) can be stepped right away.
    pub fn new(env: E, max_episode_steps: usize) -> Self {
        Self { env, max_episode_steps, elapsed_steps: 0, episode_over: false }
    }

    /// The number of steps after which episodes are truncated.
    pub fn max_episode_steps(&self) -> usize {
        self.max_episode_steps
    }

    /// Steps taken in the current episode.
    pub fn elapsed_steps(&self) -> usize {
        self.elapsed_steps
    }

    /// Sets the number of steps already taken in the current episode, so that a state restored
    /// mid-episode (a checkpoint, or a parity test starting at step `t` of a reference
    /// trajectory) is truncated at the same step as the original episode.
    pub fn set_elapsed_steps(&mut self, elapsed_steps: usize) {
        self.elapsed_steps = elapsed_steps;
    }

    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.env
    }

    /// The wrapped environment, mutably (for example to place it in a state).
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.env
    }

    /// Unwraps the environment.
    pub fn into_inner(self) -> E {
        self.env
    }
}

impl<E: Env> Env for TimeLimit<E> {
    fn id(&self) -> &str {
        self.env.id()
    }

    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }

    fn action_space(&self) -> &Space {
        self.env.action_space()
    }

    forward_env_queries!();

    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        let obs = self.env.reset(seed)?;
        self.elapsed_steps = 0;
        self.episode_over = false;
        Ok(obs)
    }

    #[inline]
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        if self.episode_over {
            return Err(EnvError::EpisodeOver { env: self.env.id().to_owned() });
        }
        // The inner result is updated in place and returned as it is, rather than unpacked with
        // `?` and repacked: that lets the compiler build it directly in the caller's slot. The
        // copy would read the step back with wide loads over narrower fresh stores, which the CPU
        // cannot forward, and stall every caller that reads the reward or observation.
        let mut result = self.env.step(action);
        // A rejected action is not a step: the counter only moves when the inner env accepts it.
        if let Ok(step) = &mut result {
            self.elapsed_steps += 1;
            if self.elapsed_steps >= self.max_episode_steps {
                step.truncated = true;
            }
            self.episode_over = step.done();
        }
        result
    }

    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        if self.episode_over {
            return Err(EnvError::EpisodeOver { env: self.env.id().to_owned() });
        }
        let StepInfo { reward, terminated, truncated } = self.env.step_into(action, obs)?;
        self.elapsed_steps += 1;
        // Built field by field (and `|` rather than `||`): updating the inner result in place
        // copies its padding bytes too, with shifts and partial stores.
        let truncated = truncated | (self.elapsed_steps >= self.max_episode_steps);
        self.episode_over = terminated | truncated;
        Ok(StepInfo { reward, terminated, truncated })
    }

    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        let inner = self.env.snapshot()?;
        EnvSnapshot::new(self.id(), &(self.elapsed_steps, self.episode_over, inner))
    }

    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        let (elapsed, over, inner): (usize, bool, EnvSnapshot) = snapshot.state(self.id())?;
        self.env.restore(&inner)?;
        (self.elapsed_steps, self.episode_over) = (elapsed, over);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CartPole, Pendulum};

    #[test]
    fn truncates_exactly_at_the_limit() {
        let mut env = TimeLimit::new(Pendulum::new(), 5);
        env.reset(Some(0)).expect("reset");
        for t in 1..=5 {
            let step = env.step(Action::Continuous(&[0.0])).expect("step");
            assert_eq!(step.truncated, t == 5, "step {t}: truncated flag {}", step.truncated);
            assert!(!step.terminated, "Pendulum never terminates");
            assert_eq!(env.elapsed_steps(), t);
        }
        let err = env.step(Action::Continuous(&[0.0])).expect_err("step after truncation");
        assert_eq!(err, EnvError::EpisodeOver { env: "Pendulum-v1".into() });
        env.reset(None).expect("reset");
        assert_eq!(env.elapsed_steps(), 0, "reset must clear the counter");
        env.step(Action::Continuous(&[0.0])).expect("step after reset");
    }

    #[test]
    fn termination_on_the_last_step_reports_both_flags() {
        // x just inside the edge, pushed right: terminates on the first step.
        let mut env = TimeLimit::new(CartPole::from_state([2.39, 1.0, 0.0, 0.0]), 1);
        let step = env.step(Action::Discrete(1)).expect("step");
        assert!(step.terminated && step.truncated, "both flags expected, got {step:?}");
    }

    #[test]
    fn rejected_actions_do_not_count_as_steps() {
        let mut env = TimeLimit::new(CartPole::from_state([0.0; 4]), 10);
        env.step(Action::Discrete(7)).expect_err("invalid action");
        assert_eq!(env.elapsed_steps(), 0);
    }

    #[test]
    fn a_restored_snapshot_keeps_the_step_count_and_truncates_on_time() {
        let mut env = TimeLimit::new(Pendulum::new(), 5);
        env.reset(Some(1)).expect("reset");
        for _ in 0..3 {
            env.step(Action::Continuous(&[0.5])).expect("step");
        }
        let snapshot = env.snapshot().expect("snapshot");
        let mut copy = TimeLimit::new(Pendulum::new(), 5);
        copy.restore(&snapshot).expect("restore");
        assert_eq!(copy.elapsed_steps(), 3);
        for t in 4..=5 {
            let (a, b) =
                (env.step(Action::Continuous(&[0.5])), copy.step(Action::Continuous(&[0.5])));
            assert_eq!(a, b, "step {t} differs after restore");
        }
        assert!(copy.step(Action::Continuous(&[0.5])).is_err(), "the restored episode is over");
    }

    #[test]
    fn set_elapsed_steps_resumes_mid_episode() {
        let mut env = TimeLimit::new(CartPole::from_state([0.0; 4]), 500);
        env.set_elapsed_steps(499);
        let step = env.step(Action::Discrete(0)).expect("step");
        assert!(step.truncated && !step.terminated, "step 500 must truncate: {step:?}");
    }
}
