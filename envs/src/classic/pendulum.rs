//! Pendulum-v1: Gymnasium's `PendulumEnv`, operation for operation.

use std::f64::consts::{PI, TAU};

use rand_distr::{Distribution, Uniform};
use smallvec::smallvec;

use super::{Phase, numpy_square_f32, numpy_square_f64};
use crate::core::{
    Action, BoxSpace, Env, EnvError, EnvSnapshot, Observation, Space, Step, StepInfo,
    observation_buffer_error,
};
use crate::render::{self, Frame};
use crate::seeding::EnvRng;

const ID: &str = "Pendulum-v1";

const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f32 = 2.0;
const DT: f64 = 0.05;
const G: f64 = 10.0;
const M: f64 = 1.0;
const L: f64 = 1.0;
/// `3 * g / (2 * l)`, a Python float in Gymnasium (exactly 15).
const GRAVITY_TERM: f64 = 3.0 * G / (2.0 * L);
/// `3.0 / (m * l**2)`: a Python float that NumPy rounds to `float32` before multiplying by the
/// `float32` torque (NEP 50), hence its type here.
const TORQUE_GAIN: f32 = (3.0 / (M * L * L)) as f32;
/// A new episode draws `theta ~ U(-pi, pi)` and `theta_dot ~ U(-1, 1)`.
const RESET_THETA: f64 = PI;
const RESET_THETA_DOT: f64 = 1.0;

/// The inverted-pendulum swing-up task as Gymnasium's `Pendulum-v1`.
///
/// * State `[theta, theta_dot]` in `f64`, `theta` **not** wrapped (as Gymnasium's state).
/// * Observation `f32([cos theta, sin theta, theta_dot])` in `Box([-1, -1, -8], [1, 1, 8])`.
/// * Action: a torque in `Box(-2, 2, (1,))`, an `f32` as NumPy keeps it.
/// * Reward `-(angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2)` on the state *before*
///   the step, `angle_normalize(x) = ((x + pi) mod 2 pi) - pi` with a floored modulo.
/// * Dynamics: semi-implicit Euler with `dt = 0.05`: the speed is updated first and clipped to
///   `[-8, 8]`, then the angle advances with the *new* speed.
/// * Never terminates. This type has no time limit: [`crate::make`]`("Pendulum-v1")` wraps it in
///   [`crate::TimeLimit`] with 200 steps, as Gymnasium's registration does.
///
/// **A finite torque outside `[-2, 2]` is clipped** into it, as Gymnasium's
/// `u = np.clip(u, -max_torque, max_torque)[0]` does: the dynamics *and* the cost use the clipped
/// torque, so the step is bit for bit the step of the bound. [`Env::clips_actions`] says so. A NaN
/// or infinite torque, or an action of the wrong kind or length, is an [`EnvError::InvalidAction`].
#[derive(Clone, Debug)]
pub struct Pendulum {
    state: [f64; 2],
    /// `sin` and `cos` of `state[0]`, computed once per step for the observation and reused by
    /// the next step's dynamics (Gymnasium computes the same `np.sin(theta)` twice).
    sin_theta: f64,
    cos_theta: f64,
    /// The torque of the last step after clipping, for [`Env::render`]'s arrow (`None` after a
    /// reset, as Gymnasium's `last_u`). Not part of snapshots: a restored env draws no arrow
    /// until its next step.
    last_u: Option<f64>,
    phase: Phase,
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl Default for Pendulum {
    fn default() -> Self {
        Self::new()
    }
}

/// Gymnasium's `angle_normalize`: `((x + pi) % (2 * pi)) - pi` with Python's floored modulo,
/// which for a positive divisor is `rem_euclid` (Rust's `%` truncates instead).
#[inline]
fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(TAU) - PI
}

impl Pendulum {
    /// A pendulum that must be reset before its first step.
    pub fn new() -> Self {
        let high = vec![1.0, 1.0, MAX_SPEED as f32];
        Self {
            state: [0.0; 2],
            sin_theta: 0.0,
            cos_theta: 1.0,
            last_u: None,
            phase: Phase::NotReset,
            rng: EnvRng::new(),
            observation_space: Space::Box(BoxSpace::new(high.iter().map(|h| -h).collect(), high)),
            action_space: Space::Box(BoxSpace::uniform(1, -MAX_TORQUE, MAX_TORQUE)),
        }
    }

    /// A pendulum in `state` (`[theta, theta_dot]`, exactly Gymnasium's `env.unwrapped.state`),
    /// ready to step: a new episode starts there. Its random number generator is left unseeded,
    /// as [`Pendulum::new`] leaves it.
    pub fn from_state(state: [f64; 2]) -> Self {
        let mut env = Self::new();
        env.set_state(state);
        env
    }

    /// Starts a new episode from `state` without touching the random number generator.
    pub fn set_state(&mut self, state: [f64; 2]) {
        self.state = state;
        self.sin_theta = state[0].sin();
        self.cos_theta = state[0].cos();
        self.last_u = None;
        self.phase = Phase::Running;
    }

    /// The current `f64` state `[theta, theta_dot]`, as Gymnasium's `env.unwrapped.state`.
    pub fn state(&self) -> [f64; 2] {
        self.state
    }

    /// One step of the dynamics, shared by [`Env::step`] and [`Env::step_into`]: checks the
    /// phase and the action, advances the state and returns the reward.
    #[inline(always)]
    fn advance(&mut self, action: Action<'_>) -> Result<f64, EnvError> {
        self.phase.check_step(ID)?;
        let u = match action {
            // Gymnasium's `np.clip(u, -2, 2)`: a float32 clip, exact (the bounds are float32).
            Action::Continuous(&[u]) if u.is_finite() => u.clamp(-MAX_TORQUE, MAX_TORQUE),
            _ => return Err(EnvError::invalid_action(ID, action, &self.action_space)),
        };
        self.last_u = Some(f64::from(u));
        let [th, thdot] = self.state;

        // The cost uses the state before the step. `0.001 * u**2` is a float32 product (a Python
        // float times a NumPy float32 stays float32 under NEP 50), promoted to float64 only when
        // added to the float64 terms.
        let control_cost = 0.001_f32 * numpy_square_f32(u);
        let cost = numpy_square_f64(angle_normalize(th))
            + 0.1 * numpy_square_f64(thdot)
            + f64::from(control_cost);

        // Semi-implicit Euler: new speed first (clipped), then the angle with the new speed.
        // `3.0 * u` is again a float32 product.
        let torque = f64::from(TORQUE_GAIN * u);
        let new_thdot =
            (thdot + (GRAVITY_TERM * self.sin_theta + torque) * DT).clamp(-MAX_SPEED, MAX_SPEED);
        let new_th = th + new_thdot * DT;

        self.state = [new_th, new_thdot];
        self.sin_theta = new_th.sin();
        self.cos_theta = new_th.cos();
        Ok(-cost)
    }

    /// The observation of the current state, as `step` and `reset` return it.
    pub fn observation(&self) -> Observation {
        smallvec![self.cos_theta as f32, self.sin_theta as f32, self.state[1] as f32]
    }
}

impl Env for Pendulum {
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
        let distribution_error = |e: rand_distr::uniform::Error| EnvError::Other {
            env: ID.to_owned(),
            message: format!("reset distribution: {e}"),
        };
        let theta = Uniform::new(-RESET_THETA, RESET_THETA).map_err(distribution_error)?;
        let theta_dot =
            Uniform::new(-RESET_THETA_DOT, RESET_THETA_DOT).map_err(distribution_error)?;
        let rng = self.rng.for_reset(seed);
        // Drawn in state order, as NumPy's `uniform(low=[..], high=[..])` fills its array.
        let th = theta.sample(rng);
        let thdot = theta_dot.sample(rng);
        self.set_state([th, thdot]);
        Ok(self.observation())
    }

    #[inline]
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let reward = self.advance(action)?;
        Ok(Step { obs: self.observation(), reward, terminated: false, truncated: false })
    }

    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        let [cos, sin, speed] = obs else {
            let space = &self.observation_space;
            return Err(observation_buffer_error(ID, space, &self.observation(), obs.len()));
        };
        let reward = self.advance(action)?;
        (*cos, *sin, *speed) = (self.cos_theta as f32, self.sin_theta as f32, self.state[1] as f32);
        Ok(StepInfo { reward, terminated: false, truncated: false })
    }

    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        EnvSnapshot::new(ID, &(self.state, self.phase, &self.rng))
    }

    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        let (state, phase, rng): ([f64; 2], Phase, EnvRng) = snapshot.state(ID)?;
        // `set_state` recomputes sin and cos exactly as `step` does.
        self.set_state(state);
        (self.phase, self.rng) = (phase, rng);
        Ok(())
    }

    fn render(&self) -> Result<Frame, EnvError> {
        Ok(render::pendulum(self.state[0], self.last_u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn angle_normalize_uses_a_floored_modulo() {
        // Python: ((x + pi) % (2*pi)) - pi maps every angle into [-pi, pi).
        for x in [-7.0, -3.5, -PI, -0.1, 0.0, 0.1, 3.5, 7.0, 100.0] {
            let y = angle_normalize(x);
            assert!((-PI..PI).contains(&y), "angle_normalize({x}) = {y} outside [-pi, pi)");
            let turns = (x - y) / TAU;
            assert!((turns - turns.round()).abs() < 1e-9, "{x} and {y} differ by a non-turn");
        }
        // A truncating `%` would give +2.783 for -3.5; the floored one gives the same as +2.783.
        assert!((angle_normalize(-3.5) - (-3.5 + TAU)).abs() < 1e-15);
    }

    #[test]
    fn squares_are_the_c_librarys_pow_not_products() {
        // Inputs from the Gymnasium fixtures where glibc's pow(x, 2) (what NumPy calls) differs
        // from x * x in the last bit; an optimiser that folds pow(x, 2.0) into x * x breaks this.
        let x = -1.2165232134997073_f64;
        assert_eq!(numpy_square_f64(x), 1.4799287289836545, "pow(x, 2.0) of {x}");
        assert_ne!(numpy_square_f64(x), x * x, "pow(x, 2.0) was folded into x * x");
        // The fixture stores f32 values as their exact f64; convert exactly.
        let u = 0.3869812488555908_f64 as f32;
        assert_eq!(f64::from(numpy_square_f32(u)), 0.14975449442863464, "powf(u, 2.0f) of {u}");
        assert_ne!(numpy_square_f32(u), u * u, "powf(u, 2.0f) was folded into u * u");
    }

    #[test]
    fn constants_match_gymnasiums_python_floats() {
        assert_eq!(GRAVITY_TERM, 15.0, "3 * g / (2 * l)");
        assert_eq!(TORQUE_GAIN, 3.0, "3.0 / (m * l**2)");
    }

    #[test]
    fn reset_draws_theta_and_speed_within_bounds() {
        let mut env = Pendulum::new();
        for seed in 0..200 {
            let obs = env.reset(Some(seed)).expect("reset");
            let [th, thdot] = env.state();
            assert!((-PI..PI).contains(&th), "seed {seed}: theta {th} outside U(-pi, pi)");
            assert!((-1.0..1.0).contains(&thdot), "seed {seed}: speed {thdot} outside U(-1, 1)");
            assert_eq!(
                obs.as_slice(),
                [th.cos() as f32, th.sin() as f32, thdot as f32],
                "obs must be f32([cos, sin, speed])"
            );
        }
    }

    #[test]
    fn non_finite_and_misshapen_torques_are_errors() {
        let mut env = Pendulum::from_state([0.5, 0.0]);
        for action in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let err = env.step(Action::Continuous(&[action])).expect_err("accepted");
            let msg = err.to_string();
            assert!(
                msg.contains("Pendulum-v1") && msg.contains(&format!("{action:?}")),
                "message '{msg}' must name the env and the torque {action:?}"
            );
        }
        for shape in [&[][..], &[0.0, 0.0][..]] {
            env.step(Action::Continuous(shape)).expect_err("wrong action shape accepted");
        }
        env.step(Action::Discrete(0)).expect_err("discrete action accepted");
        assert_eq!(env.state(), [0.5, 0.0], "rejected actions must not move the state");
    }

    /// Steps `Pendulum::from_state(state)` with `u`; returns the state, reward and observation.
    fn one_step(state: [f64; 2], u: f32) -> ([f64; 2], f64, Observation) {
        let mut env = Pendulum::from_state(state);
        let step = env.step(Action::Continuous(&[u])).expect("finite torque accepted");
        (env.state(), step.reward, step.obs)
    }

    #[test]
    fn out_of_range_torques_step_exactly_as_gymnasiums_clip() {
        // Gymnasium 1.4 (NumPy 2.4.6): `env.unwrapped.state = state; env.step([u])`, printed with
        // repr; float32 observation values printed as their exact float64.
        /// Start state, torque, new state, reward, observation.
        type Case = ([f64; 2], f32, [f64; 2], f64, [f64; 3]);
        let cases: [Case; 3] = [
            (
                [0.5, -1.25],
                -3.389_533_8,
                [0.4404784576976576, -1.1904308460468478],
                -0.4102500001899898,
                [0.9045477509498596, 0.4263722896575928, -1.1904308795928955],
            ),
            (
                [2.0, 7.5],
                2.75,
                [2.4, 8.0],
                -9.62900000018999,
                [-0.7373937368392944, 0.6754631996154785, 8.0],
            ),
            (
                [-1.2165232134997073, 0.3],
                -1e30,
                [-1.2516944222460646, -0.7034241749271481],
                -1.4929287291736442,
                [0.313713937997818, -0.949517548084259, -0.7034241557121277],
            ),
        ];
        for (start, u, state, reward, obs) in cases {
            let (got_state, got_reward, got_obs) = one_step(start, u);
            assert_eq!(got_state.map(f64::to_bits), state.map(f64::to_bits), "state, u = {u}");
            assert_eq!(got_reward.to_bits(), reward.to_bits(), "reward, u = {u}");
            let obs = obs.map(|x| x as f32);
            assert_eq!(got_obs.as_slice(), obs, "observation, u = {u}");
            // The step of the bound itself is the same step, bit for bit.
            let bound = u.clamp(-MAX_TORQUE, MAX_TORQUE);
            assert_eq!(one_step(start, bound), (got_state, got_reward, got_obs), "u = {u}");
        }
    }

    #[test]
    fn speed_is_clipped_to_max_speed() {
        let mut env = Pendulum::from_state([PI / 2.0, 7.99]);
        env.step(Action::Continuous(&[2.0])).expect("step");
        assert_eq!(env.state()[1], MAX_SPEED, "speed must be clipped to 8");
        assert_eq!(env.state()[0], PI / 2.0 + MAX_SPEED * DT, "angle must use the clipped speed");
    }

    #[test]
    fn never_terminates_by_itself() {
        let mut env = Pendulum::new();
        env.reset(Some(1)).expect("reset");
        for t in 0..1000 {
            let step = env.step(Action::Continuous(&[1.0])).expect("step");
            assert!(!step.terminated && !step.truncated, "step {t} ended the episode: {step:?}");
        }
    }
}
