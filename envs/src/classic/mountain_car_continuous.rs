//! MountainCarContinuous-v0: Gymnasium's `Continuous_MountainCarEnv`, operation for operation,
//! including the `float32` arithmetic that NumPy 2 does once the state is a `float32` array.

use serde::{Deserialize, Serialize};
use smallvec::smallvec;

use super::Phase;
use super::mountain_car::{
    MAX_POSITION, MAX_SPEED, MIN_POSITION, mountain_car_observation_space, reset_position,
};
use crate::core::{
    Action, BoxSpace, Env, EnvError, EnvSnapshot, Observation, Space, Step, StepInfo,
    observation_buffer_error,
};
use crate::render::{self, Frame};
use crate::seeding::EnvRng;

const ID: &str = "MountainCarContinuous-v0";

const MIN_ACTION: f32 = -1.0;
const MAX_ACTION: f32 = 1.0;
const GOAL_POSITION: f64 = 0.45;
const POWER: f64 = 0.0015;
/// The `0.0025` of `0.0025 * math.cos(3 * position)`.
const HILL: f64 = 0.0025;
const GOAL_REWARD: f64 = 100.0;
/// The `0.1` of `math.pow(action[0], 2) * 0.1`.
const ACTION_COST: f64 = 0.1;

/// The state as Gymnasium holds it: its dtype decides NumPy 2's arithmetic in the next step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum State {
    /// A `float64` array, as `reset` leaves it (`np.array([uniform(..), 0])`).
    F64([f64; 2]),
    /// A `float32` array, as every `step` leaves it (`np.array([..], dtype=np.float32)`).
    F32([f32; 2]),
}

/// The underpowered car of [`crate::MountainCar`] with a continuous force, as Gymnasium's
/// `MountainCarContinuous-v0`.
///
/// * State `[position, velocity]`; the observation is the state rounded to `f32`, in
///   `Box([-1.2, -0.07], [0.6, 0.07])`.
/// * Action: a force in `Box(-1, 1, (1,))`. **A finite force outside `[-1, 1]` is clipped** into
///   it for the dynamics, as Gymnasium's `min(max(action[0], -1), 1)` does, but the reward is
///   charged on the **unclipped** action, as Gymnasium's is ([`Env::clips_actions`] is true).
///   NaN or infinite forces are [`EnvError::InvalidAction`]s.
/// * Dynamics: `velocity += force * 0.0015 - 0.0025 cos(3 position)`, clipped to
///   `[-0.07, 0.07]`; `position += velocity`, clipped to `[-1.2, 0.6]`; at the left wall a
///   negative velocity becomes 0.
/// * Reward `-0.1 action^2`, plus 100 on the step that terminates.
/// * Terminated when `position >= 0.45` and `velocity >= 0`.
/// * A new episode starts at `U(-0.6, -0.4)` with velocity 0, drawn from the env's [`EnvRng`].
/// * This type has no time limit: [`crate::make`]`("MountainCarContinuous-v0")` wraps it in
///   [`crate::TimeLimit`] with 999 steps, as Gymnasium's registration does.
///
/// **Precision, as in Gymnasium with NumPy 2.** `reset` leaves a `float64` state, but every step
/// stores the state as a `float32` array, so from the second step of an episode on, NumPy
/// computes in `float32` (NEP 50): `3 * position`, an unclipped force's
/// `force * 0.0015 - 0.0025 cos(..)` (the Python floats rounded to `float32` first), the
/// velocity and position updates, the clips and the comparisons. `cos` and the reward stay
/// `float64`. [`MountainCarContinuous::from_state`] gives the `float64` state of a reset,
/// [`MountainCarContinuous::from_f32_state`] the `float32` state of a step.
///
/// Unlike Gymnasium, stepping after termination is an error.
#[derive(Clone, Debug)]
pub struct MountainCarContinuous {
    state: State,
    phase: Phase,
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl Default for MountainCarContinuous {
    fn default() -> Self {
        Self::new()
    }
}

impl MountainCarContinuous {
    /// A mountain car that must be reset before its first step.
    pub fn new() -> Self {
        Self {
            state: State::F64([0.0; 2]),
            phase: Phase::NotReset,
            rng: EnvRng::new(),
            observation_space: mountain_car_observation_space(),
            action_space: Space::Box(BoxSpace::uniform(1, MIN_ACTION, MAX_ACTION)),
        }
    }

    /// A mountain car in the `float64` state `[position, velocity]`, as `reset` leaves
    /// Gymnasium's (or `env.unwrapped.state = np.array([position, velocity])` sets it), ready
    /// to step: a new episode starts there. Its random number generator is left unseeded, as
    /// [`MountainCarContinuous::new`] leaves it.
    pub fn from_state(state: [f64; 2]) -> Self {
        let mut env = Self::new();
        env.set_state(state);
        env
    }

    /// A mountain car in the `float32` state `[position, velocity]`, as every step leaves
    /// Gymnasium's, ready to step (see the type's "Precision").
    pub fn from_f32_state(state: [f32; 2]) -> Self {
        let mut env = Self::new();
        env.state = State::F32(state);
        env.phase = Phase::Running;
        env
    }

    /// Starts a new episode from the `float64` `state` without touching the random number
    /// generator.
    pub fn set_state(&mut self, state: [f64; 2]) {
        self.state = State::F64(state);
        self.phase = Phase::Running;
    }

    /// The current state `[position, velocity]`, as Gymnasium's `env.unwrapped.state` (after a
    /// step its values are `f32`s).
    pub fn state(&self) -> [f64; 2] {
        match self.state {
            State::F64(s) => s,
            State::F32(s) => s.map(f64::from),
        }
    }

    /// The observation of the current state, as `step` and `reset` return it.
    pub fn observation(&self) -> Observation {
        let [position, velocity] = self.state();
        smallvec![position as f32, velocity as f32]
    }

    /// One step, shared by [`Env::step`] and [`Env::step_into`]: checks the phase and the
    /// action, advances the state and returns the new `float32` state, the reward and
    /// `terminated`.
    #[inline(always)]
    fn advance(&mut self, action: Action<'_>) -> Result<([f32; 2], f64, bool), EnvError> {
        self.phase.check_step(ID)?;
        let a = match action {
            Action::Continuous(&[a]) if a.is_finite() => a,
            _ => return Err(EnvError::invalid_action(ID, action, &self.action_space)),
        };
        // `force = min(max(action[0], -1.0), 1.0)`: still the float32 `action[0]` when inside,
        // but the Python float bound when clipped, and the two take different arithmetic.
        let clipped = if a < MIN_ACTION {
            Some(f64::from(MIN_ACTION))
        } else if a > MAX_ACTION {
            Some(f64::from(MAX_ACTION))
        } else {
            None
        };
        let (new_state, terminated) = match self.state {
            State::F64(s) => step_f64(s, a, clipped),
            State::F32(s) => step_f32(s, a, clipped),
        };
        self.state = State::F32(new_state);
        // `reward = 0 (or 100.0); reward -= math.pow(action[0], 2) * 0.1`: float64, on the
        // unclipped action.
        let base = if terminated { GOAL_REWARD } else { 0.0 };
        // `math.pow(a, 2)` of an f32 `a` in f64 is exact (24 significant bits squared fit in 53),
        // so the C library's pow, accurate to under one ulp, returns it, and so does `a * a`.
        let a = f64::from(a);
        let reward = base - a * a * ACTION_COST;
        if terminated {
            self.phase = Phase::Ended;
        }
        Ok((new_state, reward, terminated))
    }
}

// Gymnasium clips with two `if`s (`if v > max: v = max; if v < -max: v = -max`), which is
// `clamp` for every value, NaN included.

/// A step from a `float64` state (the first of an episode): `float64` arithmetic, except that
/// an unclipped float32 force makes `force * power - 0.0025 cos(..)` a float32 expression.
#[inline(always)]
fn step_f64(s: [f64; 2], a: f32, clipped: Option<f64>) -> ([f32; 2], bool) {
    let [position, velocity] = s;
    let hill = HILL * (3.0 * position).cos();
    let dv = match clipped {
        Some(force) => force * POWER - hill,
        None => f64::from(a * POWER as f32 - hill as f32),
    };
    let mut velocity = (velocity + dv).clamp(-MAX_SPEED, MAX_SPEED);
    let position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION);
    if position == MIN_POSITION && velocity < 0.0 {
        velocity = 0.0;
    }
    let terminated = position >= GOAL_POSITION && velocity >= 0.0;
    ([position as f32, velocity as f32], terminated)
}

/// A step from a `float32` state: NumPy 2 computes in `float32`, with every Python float
/// rounded to `float32` first; only `math.cos` and `0.0025 * cos` are `float64`, and a clipped
/// force's `force * power - 0.0025 cos(..)` (all Python floats).
#[inline(always)]
fn step_f32(s: [f32; 2], a: f32, clipped: Option<f64>) -> ([f32; 2], bool) {
    const MAX_SPEED_F32: f32 = MAX_SPEED as f32;
    const MIN_POSITION_F32: f32 = MIN_POSITION as f32;
    const MAX_POSITION_F32: f32 = MAX_POSITION as f32;
    let [position, velocity] = s;
    let hill = HILL * f64::from(3.0 * position).cos();
    let dv = match clipped {
        Some(force) => (force * POWER - hill) as f32,
        None => a * POWER as f32 - hill as f32,
    };
    let mut velocity = (velocity + dv).clamp(-MAX_SPEED_F32, MAX_SPEED_F32);
    let position = (position + velocity).clamp(MIN_POSITION_F32, MAX_POSITION_F32);
    if position == MIN_POSITION_F32 && velocity < 0.0 {
        velocity = 0.0;
    }
    let terminated = position >= GOAL_POSITION as f32 && velocity >= 0.0;
    ([position, velocity], terminated)
}

impl Env for MountainCarContinuous {
    fn id(&self) -> &str {
        ID
    }

    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn clips_actions(&self) -> bool {
        true
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        let position = reset_position(ID, &mut self.rng, seed)?;
        self.set_state([position, 0.0]);
        Ok(self.observation())
    }

    #[inline]
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let (state, reward, terminated) = self.advance(action)?;
        Ok(Step { obs: smallvec![state[0], state[1]], reward, terminated, truncated: false })
    }

    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        let Ok(row): Result<&mut [f32; 2], _> = obs.try_into() else {
            let space = &self.observation_space;
            return Err(observation_buffer_error(ID, space, &self.observation(), obs.len()));
        };
        let (state, reward, terminated) = self.advance(action)?;
        *row = state;
        Ok(StepInfo { reward, terminated, truncated: false })
    }

    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        EnvSnapshot::new(ID, &(self.state, self.phase, &self.rng))
    }

    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        let (state, phase, rng): (State, Phase, EnvRng) = snapshot.state(ID)?;
        (self.state, self.phase, self.rng) = (state, phase, rng);
        Ok(())
    }

    fn render(&self) -> Result<Frame, EnvError> {
        Ok(render::mountain_car(self.state()[0], GOAL_POSITION))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps from the `float64` state `start` with force `a`; returns state, reward, terminated.
    fn one_step(start: [f64; 2], a: f32) -> ([f64; 2], f64, bool) {
        let mut env = MountainCarContinuous::from_state(start);
        let step = env.step(Action::Continuous(&[a])).expect("finite force accepted");
        assert_eq!(step.obs.as_slice(), env.state().map(|v| v as f32), "obs is the f32 state");
        (env.state(), step.reward, step.terminated)
    }

    #[test]
    fn out_of_range_forces_are_clipped_but_charged_unclipped_as_in_gymnasium() {
        // Gymnasium 1.4 (NumPy 2.4.6): `env.unwrapped.state = np.array(start); env.step([a])`,
        // printed with repr (the new state is float32, printed as its exact float64).
        /// Start state, force, new state, reward, terminated.
        type Case = ([f64; 2], f32, [f64; 2], f64, bool);
        let cases: [Case; 3] = [
            ([-0.5, 0.01], 1.5, [-0.48867684602737427, 0.011323156766593456], -0.225, false),
            ([0.449, 0.069], 3.0, [0.5189451575279236, 0.06994517147541046], 99.1, true),
            (
                [-0.5, 0.0],
                -7.25,
                [-0.5016768574714661, -0.001676843035966158],
                -5.2562500000000005,
                false,
            ),
        ];
        for (start, a, state, reward, terminated) in cases {
            let (got_state, got_reward, got_terminated) = one_step(start, a);
            assert_eq!(got_state.map(f64::to_bits), state.map(f64::to_bits), "state, a = {a}");
            assert_eq!(got_reward.to_bits(), reward.to_bits(), "reward, a = {a}");
            assert_eq!(got_terminated, terminated, "terminated, a = {a}");
        }
    }

    #[test]
    fn non_finite_and_misshapen_forces_are_errors() {
        let mut env = MountainCarContinuous::from_state([-0.5, 0.0]);
        for a in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let msg = env.step(Action::Continuous(&[a])).expect_err("accepted").to_string();
            assert!(msg.contains(ID), "{msg}");
        }
        for action in
            [Action::Continuous(&[]), Action::Continuous(&[0.0, 0.0]), Action::Discrete(0)]
        {
            env.step(action).expect_err("misshapen action accepted");
        }
        assert_eq!(env.state(), [-0.5, 0.0], "rejected actions must not move the state");
    }

    #[test]
    fn the_state_is_float32_after_every_step() {
        let mut env = MountainCarContinuous::new();
        env.reset(Some(5)).expect("reset");
        assert!(matches!(env.state, State::F64([_, v]) if v == 0.0), "reset leaves float64");
        env.step(Action::Continuous(&[0.3])).expect("step");
        assert!(matches!(env.state, State::F32(_)), "a step leaves float32");
    }

    #[test]
    fn snapshots_resume_exactly_including_the_precision() {
        let mut env = MountainCarContinuous::new();
        env.reset(Some(2)).expect("reset");
        let mut copy = MountainCarContinuous::new();
        copy.restore(&env.snapshot().expect("snapshot")).expect("restore");
        for t in 0..50 {
            let a = [((t % 7) as f32 - 3.0) / 2.0];
            assert_eq!(copy.step(Action::Continuous(&a)), env.step(Action::Continuous(&a)));
        }
        assert_eq!(copy.reset(None).expect("reset"), env.reset(None).expect("reset"));
    }
}
