//! [`RecordEpisodeStatistics`] and the [`EpisodeRecord`] it reports.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::core::{Action, Env, EnvError, EnvSnapshot, Observation, Space, Step, StepInfo};

/// The return and length of one finished episode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    /// Index of the environment that ran the episode in its [`crate::VecEnv`]; 0 for a single
    /// environment.
    pub env: usize,
    /// Undiscounted sum of the episode's rewards.
    pub ret: f64,
    /// Number of steps in the episode.
    pub length: usize,
}

/// How many finished episodes [`RecordEpisodeStatistics`] keeps by default, as Gymnasium's
/// `buffer_length`.
pub const DEFAULT_EPISODE_BUFFER: usize = 100;

/// Tracks the return and length of each episode and reports them when it ends, as Gymnasium's
/// `RecordEpisodeStatistics` (which puts them in `info["episode"]`).
///
/// After the step that ends an episode, [`RecordEpisodeStatistics::finished_episode`] holds its
/// record until the next `step` or `reset`; the last [`DEFAULT_EPISODE_BUFFER`] records are kept
/// in [`RecordEpisodeStatistics::recent_episodes`].
#[derive(Clone, Debug)]
pub struct RecordEpisodeStatistics<E> {
    env: E,
    episode_return: f64,
    episode_length: usize,
    finished: Option<EpisodeRecord>,
    recent: VecDeque<EpisodeRecord>,
    buffer_length: usize,
    episode_count: u64,
}

impl<E: Env> RecordEpisodeStatistics<E> {
    /// Wraps `env`, keeping the last [`DEFAULT_EPISODE_BUFFER`] episodes.
    pub fn new(env: E) -> Self {
        Self::with_buffer_length(env, DEFAULT_EPISODE_BUFFER)
    }

    /// Wraps `env`, keeping the last `buffer_length` episodes.
    pub fn with_buffer_length(env: E, buffer_length: usize) -> Self {
        Self {
            env,
            episode_return: 0.0,
            episode_length: 0,
            finished: None,
            recent: VecDeque::with_capacity(buffer_length),
            buffer_length,
            episode_count: 0,
        }
    }

    /// The episode that ended on the last step, if it did.
    pub fn finished_episode(&self) -> Option<EpisodeRecord> {
        self.finished
    }

    /// The most recent finished episodes, oldest first.
    pub fn recent_episodes(&self) -> &VecDeque<EpisodeRecord> {
        &self.recent
    }

    /// Number of episodes finished since the wrapper was created.
    pub fn episode_count(&self) -> u64 {
        self.episode_count
    }

    /// Return accumulated so far in the current episode.
    pub fn current_return(&self) -> f64 {
        self.episode_return
    }

    /// Steps taken so far in the current episode.
    pub fn current_length(&self) -> usize {
        self.episode_length
    }

    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.env
    }

    /// The wrapped environment, mutably.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.env
    }

    /// Counts a step with `reward` into the running episode and, if it ended the episode (`done`),
    /// records the episode (shared by `step` and `step_into`).
    fn record(&mut self, reward: f64, done: bool) {
        self.episode_return += reward;
        self.episode_length += 1;
        self.finished = None;
        if done {
            let record =
                EpisodeRecord { env: 0, ret: self.episode_return, length: self.episode_length };
            self.finished = Some(record);
            self.episode_count += 1;
            if self.buffer_length > 0 {
                if self.recent.len() == self.buffer_length {
                    self.recent.pop_front();
                }
                self.recent.push_back(record);
            }
        }
    }

    /// Unwraps the environment.
    pub fn into_inner(self) -> E {
        self.env
    }
}

impl<E: Env> Env for RecordEpisodeStatistics<E> {
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
        self.episode_return = 0.0;
        self.episode_length = 0;
        self.finished = None;
        Ok(obs)
    }

    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let step = self.env.step(action)?;
        self.record(step.reward, step.done());
        Ok(step)
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        let info = self.env.step_into(action, obs)?;
        self.record(info.reward, info.done());
        Ok(info)
    }

    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        let inner = self.env.snapshot()?;
        let fields = (
            self.episode_return,
            self.episode_length,
            self.finished,
            &self.recent,
            self.episode_count,
            inner,
        );
        EnvSnapshot::new(self.id(), &fields)
    }

    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        type Fields =
            (f64, usize, Option<EpisodeRecord>, VecDeque<EpisodeRecord>, u64, EnvSnapshot);
        let (ret, length, finished, recent, count, inner): Fields = snapshot.state(self.id())?;
        self.env.restore(&inner)?;
        self.episode_return = ret;
        self.episode_length = length;
        self.finished = finished;
        self.recent = recent;
        self.episode_count = count;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CartPole, TimeLimit};

    #[test]
    fn reports_return_and_length_only_at_episode_end() {
        let mut env =
            RecordEpisodeStatistics::with_buffer_length(TimeLimit::new(CartPole::new(), 3), 2);
        for episode in 0..3 {
            env.reset(Some(episode)).expect("reset");
            for t in 1..=3 {
                let step = env.step(Action::Discrete(t % 2)).expect("step");
                if t < 3 {
                    assert_eq!(env.finished_episode(), None, "episode reported before its end");
                } else {
                    assert!(step.truncated, "time limit 3 must truncate step 3");
                    let record = env.finished_episode().expect("record at episode end");
                    assert_eq!((record.ret, record.length), (3.0, 3), "CartPole pays 1 per step");
                }
            }
        }
        assert_eq!(env.episode_count(), 3);
        assert_eq!(env.recent_episodes().len(), 2, "buffer must keep only the last 2 episodes");
        env.reset(None).expect("reset");
        assert_eq!(env.finished_episode(), None, "reset must clear the finished record");
        assert_eq!((env.current_return(), env.current_length()), (0.0, 0));
    }

    #[test]
    fn failed_steps_are_not_counted() {
        let mut env = RecordEpisodeStatistics::new(CartPole::from_state([0.0; 4]));
        env.step(Action::Discrete(9)).expect_err("invalid action");
        assert_eq!(env.current_length(), 0, "a rejected action must not count as a step");
    }
}
