//! CartPole-v1: Gymnasium's `CartPoleEnv`, operation for operation.

use std::f64::consts::PI;

use rand_distr::{Distribution, Uniform};
use smallvec::smallvec;

use super::Phase;
use crate::core::{
    Action, BoxSpace, Env, EnvError, EnvSnapshot, Observation, Space, Step, StepInfo,
    observation_buffer_error,
};
use crate::render::{self, Frame};
use crate::seeding::EnvRng;

const ID: &str = "CartPole-v1";

// Gymnasium's constants, combined in the same order so that the derived values are the same
// doubles (`total_mass = masspole + masscart`, `polemass_length = masspole * length`).
const GRAVITY: f64 = 9.8;
const MASSCART: f64 = 1.0;
const MASSPOLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASSPOLE + MASSCART;
/// Half the pole's length.
const LENGTH: f64 = 0.5;
const POLEMASS_LENGTH: f64 = MASSPOLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
/// Seconds between state updates.
const TAU: f64 = 0.02;
/// 12 degrees, computed as Gymnasium writes it: `12 * 2 * math.pi / 360`.
const THETA_THRESHOLD_RADIANS: f64 = 12.0 * 2.0 * PI / 360.0;
const X_THRESHOLD: f64 = 2.4;
/// Each state variable of a new episode is drawn from `U(-RESET_BOUND, RESET_BOUND)`.
const RESET_BOUND: f64 = 0.05;

/// The cart-pole balancing task (Barto, Sutton and Anderson, 1983) as Gymnasium's `CartPole-v1`.
///
/// * State `[x, x_dot, theta, theta_dot]` in `f64`; the observation is the state rounded to `f32`.
/// * Actions `Discrete(2)`: 0 pushes the cart left, 1 right, with a force of 10 N.
/// * Dynamics: explicit Euler with `tau = 0.02` s; positions advance with the *old* velocities.
/// * Reward 1 on every step, including the terminating one.
/// * Terminated when `|x| > 2.4` or `|theta| > 12°` (strict, on the new `f64` state).
/// * This type has no time limit: [`crate::make`]`("CartPole-v1")` wraps it in
///   [`crate::TimeLimit`] with 500 steps, as Gymnasium's registration does.
/// * A new episode starts from `U(-0.05, 0.05)^4`, drawn from the env's [`EnvRng`].
///
/// Unlike Gymnasium, stepping after termination is an error rather than a warning with reward 0.
#[derive(Clone, Debug)]
pub struct CartPole {
    state: [f64; 4],
    phase: Phase,
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl Default for CartPole {
    fn default() -> Self {
        Self::new()
    }
}

impl CartPole {
    /// A cart-pole that must be reset before its first step.
    pub fn new() -> Self {
        // Gymnasium bounds x and theta at twice the termination thresholds, so the final
        // observation of a failed episode still lies in the space; velocities are unbounded
        // (float32's largest value).
        let high = [
            (X_THRESHOLD * 2.0) as f32,
            f32::MAX,
            (THETA_THRESHOLD_RADIANS * 2.0) as f32,
            f32::MAX,
        ];
        Self {
            state: [0.0; 4],
            phase: Phase::NotReset,
            rng: EnvRng::new(),
            observation_space: Space::Box(BoxSpace::new(high.map(|h| -h).to_vec(), high.to_vec())),
            action_space: Space::Discrete(2),
        }
    }

    /// A cart-pole in `state` (`[x, x_dot, theta, theta_dot]`, exactly Gymnasium's
    /// `env.unwrapped.state`), ready to step: a new episode starts there. Its random number
    /// generator is left unseeded, as [`CartPole::new`] leaves it.
    pub fn from_state(state: [f64; 4]) -> Self {
        let mut env = Self::new();
        env.set_state(state);
        env
    }

    /// Starts a new episode from `state` without touching the random number generator.
    pub fn set_state(&mut self, state: [f64; 4]) {
        self.state = state;
        self.phase = Phase::Running;
    }

    /// The current `f64` state `[x, x_dot, theta, theta_dot]`, as Gymnasium's
    /// `env.unwrapped.state`.
    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    /// The force of `action`, once the phase and the action are checked (the first half of
    /// [`Env::step`] and [`Env::step_into`]).
    #[inline(always)]
    fn force(&self, action: Action<'_>) -> Result<f64, EnvError> {
        self.phase.check_step(ID)?;
        match action {
            Action::Discrete(1) => Ok(FORCE_MAG),
            Action::Discrete(0) => Ok(-FORCE_MAG),
            _ => Err(EnvError::invalid_action(ID, action, &self.action_space)),
        }
    }

    /// Advances the state under `force` and returns whether the episode terminated (the second
    /// half of [`Env::step`] and [`Env::step_into`]).
    #[inline(always)]
    fn advance(&mut self, force: f64) -> bool {
        self.state = dynamics(self.state, force);
        let [x, _, theta, _] = self.state;
        // Gymnasium's four strict comparisons, not `!range.contains()`: they differ for NaN.
        #[allow(clippy::manual_range_contains)]
        let terminated = x < -X_THRESHOLD
            || x > X_THRESHOLD
            || theta < -THETA_THRESHOLD_RADIANS
            || theta > THETA_THRESHOLD_RADIANS;
        if terminated {
            self.phase = Phase::Ended;
        }
        terminated
    }

    /// The observation of the current state, as `step` and `reset` return it.
    pub fn observation(&self) -> Observation {
        smallvec![
            self.state[0] as f32,
            self.state[1] as f32,
            self.state[2] as f32,
            self.state[3] as f32
        ]
    }
}

/// One step of the dynamics from `state` under `force`; returns the new state.
///
/// The expression order is Gymnasium's, so each intermediate rounds to the same double:
/// `theta_dot**2` and `costheta**2` are `np.square`, i.e. a plain product.
#[inline]
fn dynamics(state: [f64; 4], force: f64) -> [f64; 4] {
    let [x, x_dot, theta, theta_dot] = state;
    let costheta = theta.cos();
    let sintheta = theta.sin();
    let temp = (force + POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS;
    let thetaacc = (GRAVITY * sintheta - costheta * temp)
        / (LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / TOTAL_MASS));
    let xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS;
    // Explicit Euler: positions use the velocities from *before* this step.
    [x + TAU * x_dot, x_dot + TAU * xacc, theta + TAU * theta_dot, theta_dot + TAU * thetaacc]
}

impl Env for CartPole {
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
        let uniform = Uniform::new(-RESET_BOUND, RESET_BOUND).map_err(|e| EnvError::Other {
            env: ID.to_owned(),
            message: format!("reset distribution: {e}"),
        })?;
        let rng = self.rng.for_reset(seed);
        // Drawn in state order, as NumPy's `uniform(size=(4,))` fills its array.
        self.state = [(); 4].map(|()| uniform.sample(rng));
        self.phase = Phase::Running;
        Ok(self.observation())
    }

    #[inline]
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let force = self.force(action)?;
        let terminated = self.advance(force);
        Ok(Step { obs: self.observation(), reward: 1.0, terminated, truncated: false })
    }

    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        let Ok(row): Result<&mut [f32; 4], _> = obs.try_into() else {
            let space = &self.observation_space;
            return Err(observation_buffer_error(ID, space, &self.observation(), obs.len()));
        };
        let force = self.force(action)?;
        let terminated = self.advance(force);
        *row = self.state.map(|v| v as f32);
        Ok(StepInfo { reward: 1.0, terminated, truncated: false })
    }

    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        EnvSnapshot::new(ID, &(self.state, self.phase, &self.rng))
    }

    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        let (state, phase, rng): ([f64; 4], Phase, EnvRng) = snapshot.state(ID)?;
        (self.state, self.phase, self.rng) = (state, phase, rng);
        Ok(())
    }

    fn render(&self) -> Result<Frame, EnvError> {
        Ok(render::cartpole(&self.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_constants_are_gymnasiums_doubles() {
        // Values printed by Gymnasium 1.4 (fixture `constants`) and by Python for the sums.
        assert_eq!(THETA_THRESHOLD_RADIANS, 0.20943951023931953, "theta threshold");
        assert_eq!(TOTAL_MASS, 1.1, "total mass");
        assert_eq!(POLEMASS_LENGTH, 0.05, "pole mass times half length");
    }

    #[test]
    fn reset_draws_each_state_variable_within_the_reset_bounds() {
        let mut env = CartPole::new();
        for seed in 0..200 {
            let obs = env.reset(Some(seed)).expect("reset");
            let state = env.state();
            assert!(
                state.iter().all(|v| (-RESET_BOUND..RESET_BOUND).contains(v)),
                "seed {seed}: state {state:?} outside U(-0.05, 0.05)"
            );
            assert_eq!(obs.as_slice(), state.map(|v| v as f32), "obs must be f32(state)");
        }
    }

    #[test]
    fn stepping_before_reset_is_an_error_naming_the_env() {
        let err = CartPole::new().step(Action::Discrete(0)).expect_err("step before reset");
        assert_eq!(err, EnvError::NotReset { env: ID.into() });
        assert!(err.to_string().contains("CartPole-v1"), "message {err} must name the env");
    }

    #[test]
    fn invalid_actions_are_errors_naming_the_action_and_space() {
        let mut env = CartPole::from_state([0.0; 4]);
        for action in [Action::Discrete(2), Action::Continuous(&[1.0])] {
            let err = env.step(action).expect_err("invalid action accepted");
            let msg = err.to_string();
            assert!(
                msg.contains("CartPole-v1")
                    && msg.contains(&action.to_string())
                    && msg.contains("Discrete(2)"),
                "message '{msg}' must name env, action {action} and space"
            );
        }
        assert_eq!(env.state(), [0.0; 4], "a rejected action must not move the state");
    }

    #[test]
    fn stepping_after_termination_is_an_error_until_reset() {
        let mut env = CartPole::from_state([2.4, 1.0, 0.0, 0.0]);
        let step = env.step(Action::Discrete(1)).expect("step");
        assert!(step.terminated && !step.truncated, "x beyond 2.4 must terminate: {step:?}");
        assert_eq!(step.reward, 1.0, "the terminating step is rewarded too");
        let err = env.step(Action::Discrete(1)).expect_err("step after termination");
        assert_eq!(err, EnvError::EpisodeOver { env: ID.into() });
        env.reset(Some(0)).expect("reset");
        env.step(Action::Discrete(1)).expect("step after reset");
    }

    #[test]
    fn a_restored_snapshot_continues_the_state_and_the_random_stream() {
        let mut env = CartPole::new();
        env.reset(Some(3)).expect("reset");
        env.step(Action::Discrete(1)).expect("step");
        let snapshot = env.snapshot().expect("snapshot");
        let mut copy = CartPole::new();
        copy.restore(&snapshot).expect("restore");
        assert_eq!(copy.state(), env.state(), "restored state differs");
        for a in [0, 1, 1, 0] {
            assert_eq!(copy.step(Action::Discrete(a)), env.step(Action::Discrete(a)));
        }
        // The next episode's start comes from the restored generator.
        assert_eq!(copy.reset(None).expect("reset"), env.reset(None).expect("reset"));
        let wrong = EnvSnapshot::new("Other-v0", &0).expect("snapshot");
        assert!(copy.restore(&wrong).is_err(), "another env's snapshot must be refused");
    }

    #[test]
    fn from_state_leaves_the_rng_unseeded() {
        // Two envs that differ only in having gone through `from_state` draw the same reset.
        let mut a = CartPole::from_state([0.1, 0.2, 0.0, 0.0]);
        let mut b = CartPole::new();
        assert_eq!(a.reset(Some(5)).expect("reset"), b.reset(Some(5)).expect("reset"));
    }
}
