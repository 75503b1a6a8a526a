//! Acrobot-v1: Gymnasium's `AcrobotEnv` ("book" dynamics), operation for operation.

use std::f64::consts::{FRAC_PI_2, PI};

use rand_distr::{Distribution, Uniform};
use smallvec::smallvec;

use super::{Phase, square_as_pow};
use crate::core::{
    Action, BoxSpace, Env, EnvError, EnvSnapshot, Observation, Space, Step, StepInfo,
    observation_buffer_error,
};
use crate::render::{self, Frame};
use crate::seeding::EnvRng;

const ID: &str = "Acrobot-v1";

/// Seconds per step: one Runge-Kutta step of this length.
const DT: f64 = 0.2;
const LINK_LENGTH_1: f64 = 1.0;
const LINK_MASS_1: f64 = 1.0;
const LINK_MASS_2: f64 = 1.0;
/// Position of each link's centre of mass along the link.
const LINK_COM_POS_1: f64 = 0.5;
const LINK_COM_POS_2: f64 = 0.5;
/// Moment of inertia of each link.
const LINK_MOI: f64 = 1.0;
const G: f64 = 9.8;
const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;
/// Torque on the joint between the links for actions 0, 1 and 2.
const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];
/// Each state variable of a new episode is drawn from `U(-RESET_BOUND, RESET_BOUND)`.
const RESET_BOUND: f64 = 0.1;
/// `wrap` subtracts or adds whole turns one at a time, as Gymnasium's loop does; an angle more
/// than this many turns out of range (only a hand-made state can be) is reduced in one go
/// instead, where Gymnasium's loop would take (for an infinite angle: forever).
const MAX_WRAP_TURNS: u32 = 64;

// The products of Python floats in Gymnasium's `_dsdt`, combined as it combines them (they are
// all exact, but are written out so that the expressions below read as Gymnasium's).
const M1: f64 = LINK_MASS_1;
const M2: f64 = LINK_MASS_2;
const L1: f64 = LINK_LENGTH_1;
const LC1: f64 = LINK_COM_POS_1;
const LC2: f64 = LINK_COM_POS_2;
const I1: f64 = LINK_MOI;
const I2: f64 = LINK_MOI;
/// `m1 * lc1**2`.
const D1_LINK1: f64 = M1 * (LC1 * LC1);
/// `l1**2 + lc2**2`.
const D1_LINK2: f64 = L1 * L1 + LC2 * LC2;
/// `2 * l1 * lc2`.
const D1_COUPLING: f64 = 2.0 * L1 * LC2;
/// `l1 * lc2`.
const D2_COUPLING: f64 = L1 * LC2;
/// `m2 * lc2 * g`.
const PHI2_GAIN: f64 = M2 * LC2 * G;
/// `-m2 * l1 * lc2`.
const PHI1_CENTRIFUGAL: f64 = -M2 * L1 * LC2;
/// `2 * m2 * l1 * lc2`.
const PHI1_CORIOLIS: f64 = 2.0 * M2 * L1 * LC2;
/// `(m1 * lc1 + m2 * l1) * g`.
const PHI1_GRAVITY: f64 = (M1 * LC1 + M2 * L1) * G;
/// `m2 * l1 * lc2`.
const BOOK_TERM: f64 = M2 * L1 * LC2;
/// `m2 * lc2**2 + I2`.
const DDTHETA2_DENOM: f64 = M2 * (LC2 * LC2) + I2;

/// The two-link underactuated robot of Sutton (1996), as Gymnasium's `Acrobot-v1`.
///
/// * State `[theta1, theta2, dtheta1, dtheta2]` in `f64`: the angle of the first link from
///   hanging down, the angle of the second link relative to the first, and their velocities.
/// * Observation `f32([cos theta1, sin theta1, cos theta2, sin theta2, dtheta1, dtheta2])` in
///   `Box([-1, -1, -1, -1, -4 pi, -9 pi], [1, 1, 1, 1, 4 pi, 9 pi])`.
/// * Actions `Discrete(3)`: torque -1, 0 or +1 on the joint between the links.
/// * Dynamics: the "book" equations (Sutton and Barto), one classic Runge-Kutta step of
///   `dt = 0.2` s; then both angles are wrapped into `[-pi, pi]` (by whole turns, one at a
///   time) and the velocities clipped to `[-4 pi, 4 pi]` and `[-9 pi, 9 pi]`.
/// * Reward -1 on every step, 0 on the terminating one.
/// * Terminated when `-cos(theta1) - cos(theta2 + theta1) > 1` (the free end is more than one
///   link length above the pivot), on the new state.
/// * A new episode starts from `U(-0.1, 0.1)^4` rounded to `f32` (Gymnasium stores the reset
///   state as a `float32` array), drawn from the env's [`EnvRng`].
/// * This type has no time limit: [`crate::make`]`("Acrobot-v1")` wraps it in
///   [`crate::TimeLimit`] with 500 steps, as Gymnasium's registration does.
///
/// Every `x**2` of the dynamics is the C library's `pow(x, 2.0)`, as NumPy computes it for a
/// `float64` scalar (taken as `x * x` where that is provably the same double; see
/// `square_as_pow`). Unlike Gymnasium, stepping after termination is an error.
#[derive(Clone, Debug)]
pub struct Acrobot {
    state: [f64; 4],
    /// `(cos theta2, sin theta2)` of `state`: the observation computes them, and the next step's
    /// first derivative evaluation needs the same values (not part of snapshots: derived).
    trig2: (f64, f64),
    phase: Phase,
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl Default for Acrobot {
    fn default() -> Self {
        Self::new()
    }
}

impl Acrobot {
    /// An acrobot that must be reset before its first step.
    pub fn new() -> Self {
        let high = [1.0, 1.0, 1.0, 1.0, MAX_VEL_1 as f32, MAX_VEL_2 as f32];
        Self {
            state: [0.0; 4],
            trig2: (1.0, 0.0),
            phase: Phase::NotReset,
            rng: EnvRng::new(),
            observation_space: Space::Box(BoxSpace::new(high.map(|h| -h).to_vec(), high.to_vec())),
            action_space: Space::Discrete(3),
        }
    }

    /// An acrobot in `state` (`[theta1, theta2, dtheta1, dtheta2]`, exactly Gymnasium's
    /// `env.unwrapped.state`), ready to step: a new episode starts there. Its random number
    /// generator is left unseeded, as [`Acrobot::new`] leaves it.
    pub fn from_state(state: [f64; 4]) -> Self {
        let mut env = Self::new();
        env.set_state(state);
        env
    }

    /// Starts a new episode from `state` without touching the random number generator.
    pub fn set_state(&mut self, state: [f64; 4]) {
        self.state = state;
        self.trig2 = (state[1].cos(), state[1].sin());
        self.phase = Phase::Running;
    }

    /// The current `f64` state `[theta1, theta2, dtheta1, dtheta2]`, as Gymnasium's
    /// `env.unwrapped.state`.
    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    /// The observation of the current state, as `step` and `reset` return it.
    pub fn observation(&self) -> Observation {
        let [t1, t2, dt1, dt2] = self.state;
        smallvec![
            t1.cos() as f32,
            t1.sin() as f32,
            t2.cos() as f32,
            t2.sin() as f32,
            dt1 as f32,
            dt2 as f32
        ]
    }

    /// One step, shared by [`Env::step`] and [`Env::step_into`]: checks the phase and the
    /// action, advances the state, and returns the observation, the reward and `terminated`.
    #[inline(always)]
    fn advance(&mut self, action: Action<'_>) -> Result<([f32; 6], f64, bool), EnvError> {
        self.phase.check_step(ID)?;
        let torque = match action {
            Action::Discrete(a) if a < AVAIL_TORQUE.len() => AVAIL_TORQUE[a],
            _ => return Err(EnvError::invalid_action(ID, action, &self.action_space)),
        };
        let [t1, t2, dt1, dt2] = rk4(self.state, self.trig2, torque);
        self.state = [
            wrap_angle(t1),
            wrap_angle(t2),
            dt1.clamp(-MAX_VEL_1, MAX_VEL_1),
            dt2.clamp(-MAX_VEL_2, MAX_VEL_2),
        ];
        let [t1, t2, dt1, dt2] = self.state;
        let cos1 = t1.cos();
        self.trig2 = (t2.cos(), t2.sin());
        let obs = [
            cos1 as f32,
            t1.sin() as f32,
            self.trig2.0 as f32,
            self.trig2.1 as f32,
            dt1 as f32,
            dt2 as f32,
        ];
        let terminated = -cos1 - (t2 + t1).cos() > 1.0;
        if terminated {
            self.phase = Phase::Ended;
        }
        Ok((obs, if terminated { 0.0 } else { -1.0 }, terminated))
    }
}

/// The time derivative of `[theta1, theta2, dtheta1, dtheta2]` under `torque`: Gymnasium's
/// `_dsdt` with `book_or_nips = "book"`, each expression in its order of evaluation.
/// `(cos2, sin2)` are `(cos theta2, sin theta2)`.
#[inline(always)]
fn dsdt(s: [f64; 4], (cos2, sin2): (f64, f64), torque: f64) -> [f64; 4] {
    let [theta1, theta2, dtheta1, dtheta2] = s;
    let d1 = D1_LINK1 + M2 * (D1_LINK2 + D1_COUPLING * cos2) + I1 + I2;
    let d2 = M2 * (LC2 * LC2 + D2_COUPLING * cos2) + I2;
    let phi2 = PHI2_GAIN * (theta1 + theta2 - FRAC_PI_2).cos();
    let phi1 = PHI1_CENTRIFUGAL * square_as_pow(dtheta2) * sin2
        - PHI1_CORIOLIS * dtheta2 * dtheta1 * sin2
        + PHI1_GRAVITY * (theta1 - FRAC_PI_2).cos()
        + phi2;
    let ddtheta2 = (torque + d2 / d1 * phi1 - BOOK_TERM * square_as_pow(dtheta1) * sin2 - phi2)
        / (DDTHETA2_DENOM - square_as_pow(d2) / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2]
}

/// One classic Runge-Kutta step of length [`DT`] from `y0`, as Gymnasium's `rk4` computes it
/// for the time points `[0, dt]` (the torque is constant over the step). `trig0` is
/// `(cos, sin)` of `y0[1]`.
#[inline(always)]
fn rk4(y0: [f64; 4], trig0: (f64, f64), torque: f64) -> [f64; 4] {
    let dt2 = DT / 2.0;
    let stage = |k: [f64; 4], h: f64| lanes(|i| y0[i] + h * k[i]);
    let derivative = |s: [f64; 4]| dsdt(s, (s[1].cos(), s[1].sin()), torque);
    let k1 = dsdt(y0, trig0, torque);
    let k2 = derivative(stage(k1, dt2));
    let k3 = derivative(stage(k2, dt2));
    let k4 = derivative(stage(k3, DT));
    lanes(|i| y0[i] + DT / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
}

/// `[f(0), f(1), f(2), f(3)]`, written out (`array::map` was left as a loop with a call).
#[inline(always)]
fn lanes(f: impl Fn(usize) -> f64) -> [f64; 4] {
    [f(0), f(1), f(2), f(3)]
}

/// Gymnasium's `wrap(x, -pi, pi)`: subtracts `2 pi` while `x > pi`, then adds it while
/// `x < -pi`, rounding after each turn. NaN passes through. Beyond [`MAX_WRAP_TURNS`] turns the
/// remaining ones are taken in one floored modulo (Gymnasium would keep looping).
#[inline]
fn wrap_angle(mut x: f64) -> f64 {
    const DIFF: f64 = PI - -PI;
    let mut turns = 0;
    while x > PI {
        x -= DIFF;
        turns += 1;
        if turns > MAX_WRAP_TURNS {
            return reduce_angle(x);
        }
    }
    while x < -PI {
        x += DIFF;
        turns += 1;
        if turns > MAX_WRAP_TURNS {
            return reduce_angle(x);
        }
    }
    x
}

/// `x` brought into `[-pi, pi]` by a floored modulo; infinities become NaN.
#[cold]
fn reduce_angle(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

impl Env for Acrobot {
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
        // Drawn in state order, as NumPy's `uniform(size=(4,))` fills its array, then rounded to
        // float32 as Gymnasium's `.astype(np.float32)` does.
        let state = [(); 4].map(|()| f64::from(uniform.sample(rng) as f32));
        self.set_state(state);
        Ok(self.observation())
    }

    #[inline]
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let (obs, reward, terminated) = self.advance(action)?;
        Ok(Step { obs: Observation::from_slice(&obs), reward, terminated, truncated: false })
    }

    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        let Ok(row): Result<&mut [f32; 6], _> = obs.try_into() else {
            let space = &self.observation_space;
            return Err(observation_buffer_error(ID, space, &self.observation(), obs.len()));
        };
        let (new_obs, reward, terminated) = self.advance(action)?;
        *row = new_obs;
        Ok(StepInfo { reward, terminated, truncated: false })
    }

    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        EnvSnapshot::new(ID, &(self.state, self.phase, &self.rng))
    }

    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        let (state, phase, rng): ([f64; 4], Phase, EnvRng) = snapshot.state(ID)?;
        (self.state, self.phase, self.rng) = (state, phase, rng);
        self.trig2 = (state[1].cos(), state[1].sin());
        Ok(())
    }

    fn render(&self) -> Result<Frame, EnvError> {
        Ok(render::acrobot(&self.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_gymnasiums_doubles() {
        // Values of the same Python expressions (and the fixture's `constants`).
        assert_eq!(MAX_VEL_1, 12.566370614359172, "4 * pi");
        assert_eq!(MAX_VEL_2, 28.274333882308138, "9 * pi");
        assert_eq!(PHI1_GRAVITY, 14.700000000000001, "(m1 * lc1 + m2 * l1) * g");
        assert_eq!(PHI2_GAIN, 4.9, "m2 * lc2 * g");
        assert_eq!((D1_LINK1, D1_LINK2, D1_COUPLING, D2_COUPLING), (0.25, 1.25, 1.0, 0.5));
        assert_eq!(
            (PHI1_CENTRIFUGAL, PHI1_CORIOLIS, BOOK_TERM, DDTHETA2_DENOM),
            (-0.5, 1.0, 0.5, 1.25)
        );
        assert_eq!(DT / 6.0, 0.03333333333333333, "dt / 6.0");
    }

    #[test]
    fn wrap_turns_one_at_a_time_and_terminates_on_any_input() {
        assert_eq!(wrap_angle(PI), PI, "pi itself stays");
        assert_eq!(wrap_angle(-PI), -PI, "-pi itself stays");
        assert_eq!(wrap_angle(3.5), 3.5 - 2.0 * PI);
        assert_eq!(wrap_angle(-7.0), -7.0 + 2.0 * PI);
        // Two turns are two roundings, not one subtraction of 4 pi.
        assert_eq!(wrap_angle(10.0), (10.0 - 2.0 * PI) - 2.0 * PI);
        assert!(wrap_angle(f64::NAN).is_nan());
        for x in [1e300, -1e300, f64::INFINITY, f64::NEG_INFINITY, 1e6] {
            let y = wrap_angle(x);
            assert!(y.is_nan() || (-PI..=PI).contains(&y), "wrap({x}) = {y}");
        }
    }

    #[test]
    fn reset_draws_f32_values_within_the_reset_bounds() {
        let mut env = Acrobot::new();
        for seed in 0..200 {
            let obs = env.reset(Some(seed)).expect("reset");
            let state = env.state();
            for v in state {
                assert!((-RESET_BOUND..=RESET_BOUND).contains(&v), "seed {seed}: {state:?}");
                assert_eq!(f64::from(v as f32), v, "seed {seed}: {v} is not a float32");
            }
            assert_eq!(obs, env.observation());
        }
    }

    #[test]
    fn invalid_actions_and_steps_after_termination_are_errors() {
        let mut env = Acrobot::from_state([0.1, 0.0, 0.0, 0.0]);
        for action in [Action::Discrete(3), Action::Continuous(&[1.0])] {
            let msg = env.step(action).expect_err("invalid action accepted").to_string();
            assert!(msg.contains(ID) && msg.contains("Discrete(3)"), "{msg}");
        }
        assert_eq!(env.state(), [0.1, 0.0, 0.0, 0.0], "a rejected action must not move the state");
        // Upright with the second link straight: terminates at once, with reward 0.
        let mut env = Acrobot::from_state([PI, 0.0, 0.0, 0.0]);
        let step = env.step(Action::Discrete(1)).expect("step");
        assert!(step.terminated && step.reward == 0.0, "{step:?}");
        assert_eq!(env.step(Action::Discrete(1)), Err(EnvError::EpisodeOver { env: ID.into() }));
    }

    #[test]
    fn step_and_step_into_agree_and_snapshots_resume_exactly() {
        let mut env = Acrobot::new();
        env.reset(Some(9)).expect("reset");
        let mut copy = Acrobot::new();
        copy.restore(&env.snapshot().expect("snapshot")).expect("restore");
        let mut buf = [0.0_f32; 6];
        for t in 0..100 {
            let a = Action::Discrete(t % 3);
            let step = env.step(a).expect("step");
            let info = copy.step_into(a, &mut buf).expect("step_into");
            assert_eq!(
                (step.obs.as_slice(), step.reward, step.terminated),
                (&buf[..], info.reward, info.terminated)
            );
        }
        assert_eq!(copy.reset(None).expect("reset"), env.reset(None).expect("reset"));
    }
}
