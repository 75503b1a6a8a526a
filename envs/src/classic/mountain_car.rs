//! MountainCar-v0: Gymnasium's `MountainCarEnv`, operation for operation.

use rand_distr::{Distribution, Uniform};
use smallvec::smallvec;

use super::Phase;
use crate::core::{
    Action, BoxSpace, Env, EnvError, EnvSnapshot, Observation, Space, Step, StepInfo,
    observation_buffer_error,
};
use crate::render::{self, Frame};
use crate::seeding::EnvRng;

const ID: &str = "MountainCar-v0";

pub(crate) const MIN_POSITION: f64 = -1.2;
pub(crate) const MAX_POSITION: f64 = 0.6;
pub(crate) const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.5;
const GOAL_VELOCITY: f64 = 0.0;
const FORCE: f64 = 0.001;
const GRAVITY: f64 = 0.0025;
/// A new episode starts at a position drawn from `U(-0.6, -0.4)`, at rest.
pub(crate) const RESET_LOW: f64 = -0.6;
pub(crate) const RESET_HIGH: f64 = -0.4;

/// The observation space shared by both mountain cars: `Box([-1.2, -0.07], [0.6, 0.07])`.
pub(crate) fn mountain_car_observation_space() -> Space {
    Space::Box(BoxSpace::new(
        vec![MIN_POSITION as f32, -MAX_SPEED as f32],
        vec![MAX_POSITION as f32, MAX_SPEED as f32],
    ))
}

/// A start position drawn from `U(-0.6, -0.4)` for env `id` (both mountain cars reset alike).
pub(crate) fn reset_position(
    id: &str,
    rng: &mut EnvRng,
    seed: Option<u64>,
) -> Result<f64, EnvError> {
    let uniform = Uniform::new(RESET_LOW, RESET_HIGH).map_err(|e| EnvError::Other {
        env: id.to_owned(),
        message: format!("reset distribution: {e}"),
    })?;
    Ok(uniform.sample(rng.for_reset(seed)))
}

/// The underpowered car in a valley of Moore (1990), as Gymnasium's `MountainCar-v0`.
///
/// * State `[position, velocity]` in `f64`; the observation is the state rounded to `f32`, in
///   `Box([-1.2, -0.07], [0.6, 0.07])`.
/// * Actions `Discrete(3)`: accelerate left (0), not at all (1), right (2).
/// * Dynamics: `velocity += (action - 1) * 0.001 + cos(3 position) * (-0.0025)`, clipped to
///   `[-0.07, 0.07]`; `position += velocity`, clipped to `[-1.2, 0.6]`; at the left wall
///   (`position == -1.2`) a negative velocity becomes 0 (the car stops against it).
/// * Reward -1 on every step.
/// * Terminated when `position >= 0.5` and `velocity >= 0`.
/// * A new episode starts at `U(-0.6, -0.4)` with velocity 0, drawn from the env's [`EnvRng`].
/// * This type has no time limit: [`crate::make`]`("MountainCar-v0")` wraps it in
///   [`crate::TimeLimit`] with 200 steps, as Gymnasium's registration does.
///
/// Unlike Gymnasium, stepping after termination is an error.
#[derive(Clone, Debug)]
pub struct MountainCar {
    state: [f64; 2],
    phase: Phase,
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl Default for MountainCar {
    fn default() -> Self {
        Self::new()
    }
}

impl MountainCar {
    /// A mountain car that must be reset before its first step.
    pub fn new() -> Self {
        Self {
            state: [0.0; 2],
            phase: Phase::NotReset,
            rng: EnvRng::new(),
            observation_space: mountain_car_observation_space(),
            action_space: Space::Discrete(3),
        }
    }

    /// A mountain car in `state` (`[position, velocity]`, exactly Gymnasium's
    /// `env.unwrapped.state`), ready to step: a new episode starts there. Its random number
    /// generator is left unseeded, as [`MountainCar::new`] leaves it.
    pub fn from_state(state: [f64; 2]) -> Self {
        let mut env = Self::new();
        env.set_state(state);
        env
    }

    /// Starts a new episode from `state` without touching the random number generator.
    pub fn set_state(&mut self, state: [f64; 2]) {
        self.state = state;
        self.phase = Phase::Running;
    }

    /// The current `f64` state `[position, velocity]`, as Gymnasium's `env.unwrapped.state`.
    pub fn state(&self) -> [f64; 2] {
        self.state
    }

    /// The observation of the current state, as `step` and `reset` return it.
    pub fn observation(&self) -> Observation {
        smallvec![self.state[0] as f32, self.state[1] as f32]
    }

    /// One step, shared by [`Env::step`] and [`Env::step_into`]: checks the phase and the
    /// action, advances the state and returns `terminated`.
    #[inline(always)]
    fn advance(&mut self, action: Action<'_>) -> Result<bool, EnvError> {
        self.phase.check_step(ID)?;
        // `(action - 1) * force`: -0.001, 0.0 or 0.001.
        let push = match action {
            Action::Discrete(0) => -FORCE,
            Action::Discrete(1) => 0.0 * FORCE,
            Action::Discrete(2) => FORCE,
            _ => return Err(EnvError::invalid_action(ID, action, &self.action_space)),
        };
        let [position, velocity] = self.state;
        let velocity =
            (velocity + (push + (3.0 * position).cos() * -GRAVITY)).clamp(-MAX_SPEED, MAX_SPEED);
        let position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION);
        let velocity = if position == MIN_POSITION && velocity < 0.0 { 0.0 } else { velocity };
        self.state = [position, velocity];
        let terminated = position >= GOAL_POSITION && velocity >= GOAL_VELOCITY;
        if terminated {
            self.phase = Phase::Ended;
        }
        Ok(terminated)
    }
}

impl Env for MountainCar {
    fn id(&self) -> &str {
        ID
    }

    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        let position = reset_position(ID, &mut self.rng, seed)?;
        self.set_state([position, 0.0]);
        Ok(self.observation())
    }

    #[inline]
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let terminated = self.advance(action)?;
        Ok(Step { obs: self.observation(), reward: -1.0, terminated, truncated: false })
    }

    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        let Ok(row): Result<&mut [f32; 2], _> = obs.try_into() else {
            let space = &self.observation_space;
            return Err(observation_buffer_error(ID, space, &self.observation(), obs.len()));
        };
        let terminated = self.advance(action)?;
        *row = self.state.map(|v| v as f32);
        Ok(StepInfo { reward: -1.0, terminated, truncated: false })
    }

    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        EnvSnapshot::new(ID, &(self.state, self.phase, &self.rng))
    }

    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        let (state, phase, rng): ([f64; 2], Phase, EnvRng) = snapshot.state(ID)?;
        (self.state, self.phase, self.rng) = (state, phase, rng);
        Ok(())
    }

    fn render(&self) -> Result<Frame, EnvError> {
        Ok(render::mountain_car(self.state[0], GOAL_POSITION))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_starts_at_rest_in_the_reset_interval() {
        let mut env = MountainCar::new();
        for seed in 0..200 {
            let obs = env.reset(Some(seed)).expect("reset");
            let [position, velocity] = env.state();
            assert!((RESET_LOW..RESET_HIGH).contains(&position), "seed {seed}: {position}");
            assert_eq!(velocity, 0.0, "seed {seed}: a new episode starts at rest");
            assert_eq!(obs.as_slice(), [position as f32, 0.0]);
        }
    }

    #[test]
    fn the_left_wall_stops_the_car() {
        let mut env = MountainCar::from_state([-1.19, -0.05]);
        env.step(Action::Discrete(0)).expect("step");
        assert_eq!(env.state(), [MIN_POSITION, 0.0], "the car must stop at the wall");
    }

    #[test]
    fn reaching_the_goal_terminates_and_later_steps_are_errors() {
        let mut env = MountainCar::from_state([0.49, 0.02]);
        let step = env.step(Action::Discrete(2)).expect("step");
        assert!(step.terminated && step.reward == -1.0, "{step:?}");
        assert_eq!(env.step(Action::Discrete(2)), Err(EnvError::EpisodeOver { env: ID.into() }));
        let mut env = MountainCar::from_state([0.0, 0.0]);
        for action in [Action::Discrete(3), Action::Continuous(&[0.0])] {
            let msg = env.step(action).expect_err("invalid action").to_string();
            assert!(msg.contains(ID) && msg.contains("Discrete(3)"), "{msg}");
        }
    }

    #[test]
    fn snapshots_resume_exactly() {
        let mut env = MountainCar::new();
        env.reset(Some(2)).expect("reset");
        env.step(Action::Discrete(2)).expect("step");
        let mut copy = MountainCar::new();
        copy.restore(&env.snapshot().expect("snapshot")).expect("restore");
        for t in 0..50 {
            let a = Action::Discrete(t % 3);
            assert_eq!(copy.step(a), env.step(a), "step {t}");
        }
        assert_eq!(copy.reset(None).expect("reset"), env.reset(None).expect("reset"));
    }
}
