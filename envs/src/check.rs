//! [`check_env`]: does an environment keep the [`Env`] contract? (Stable-Baselines3's
//! `env_checker`, for rlpg's rules.)

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

use crate::core::{Action, BoxSpace, Env, EnvError, Observation, Space, Step};
use crate::validate::{Origin, check_observation, check_reward};

/// Steps in each recorded trajectory.
const ROLLOUT_STEPS: usize = 300;
/// Seeds tried, besides 0, when looking for a seed that changes the trajectory.
const OTHER_SEEDS: std::ops::RangeInclusive<u64> = 1..=16;
/// How close (relative to `max(1, |x|)`) the observation after an out-of-bounds action must be
/// to the one after its clip, for an env that clips actions: loose enough for Gymnasium's
/// MountainCarContinuous, whose clipped force is a `float64` where an in-range one is a
/// `float32` (a difference in the last bits of a `float32`), tight enough that an env that did
/// not clip is caught.
pub const CLIP_OBS_TOL: f32 = 1e-4;
/// Steps to wait for an episode to end before giving up on the step-after-end check.
const MAX_STEPS_TO_END: usize = 100_000;

/// What [`check_env`] found. `problems` break the contract (errors: the trainer cannot rely on
/// the env); `warnings` are things it could not check or that are suspicious but allowed (e.g. a
/// reset that ignores its seed, as an env with a fixed start does).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckReport {
    /// Id of the checked environment.
    pub env: String,
    /// Contract violations, one sentence each naming the problem and the offending value.
    pub problems: Vec<String>,
    /// Checks that could not be made, and allowed oddities.
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// `Ok(())` if no problem was found, otherwise the report as an error.
    pub fn into_result(self) -> Result<(), CheckReport> {
        if self.is_ok() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            write!(f, "{}: passed the environment checks", self.env)?;
        } else {
            write!(f, "{}: {} problem(s) found", self.env, self.problems.len())?;
            for p in &self.problems {
                write!(f, "\n  - problem: {p}")?;
            }
        }
        for w in &self.warnings {
            write!(f, "\n  - warning: {w}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CheckReport {}

/// Checks that `env` keeps the [`Env`] contract that rlpg's trainer relies on:
///
/// * its spaces are usable (a non-empty observation, at least one action);
/// * every observation (from `reset` and `step`) has the length of the observation space, only
///   finite values, and lies within the space's bounds; every reward is finite;
/// * `reset(Some(seed))` is deterministic: the same seed gives the same first observation and
///   the same trajectory under a fixed action sequence. Different seeds should eventually
///   differ; when none does (a fixed start) that is a warning, not a problem;
/// * [`Env::step_into`] (which [`crate::VecEnv`] steps with) gives exactly what `step` gives;
/// * a `step` after the episode ended (terminated or truncated), without a `reset`, is an error;
/// * invalid actions (wrong kind, wrong length, NaN, infinite) are errors, not panics; so are
///   finite actions outside a `Box` action space, unless the env's [`Env::clips_actions`] says it
///   clips them, in which case such an action must be accepted and lead, from the same state, to
///   the observation that the action clipped into the box leads to (within [`CLIP_OBS_TOL`]; the
///   reward is not compared, as Gymnasium's MountainCarContinuous charges the unclipped action).
///
/// The env is reset and stepped many times; reset it before using it afterwards. Panics inside
/// the env are caught and reported as problems.
pub fn check_env(env: &mut dyn Env) -> CheckReport {
    let mut report =
        CheckReport { env: env.id().to_owned(), problems: Vec::new(), warnings: Vec::new() };
    check_spaces(env, &mut report);
    if !report.is_ok() {
        return report;
    }
    let actions = action_sequence(env.action_space(), ROLLOUT_STEPS);

    let first = match rollout(env, 0, &actions, Stepper::Step) {
        Ok(trajectory) => trajectory,
        Err(problem) => {
            report.problems.push(problem);
            return report;
        }
    };
    check_determinism(env, &first, &actions, &mut report);
    check_seeds_matter(env, &first, &actions, &mut report);
    check_step_into(env, &first, &actions, &mut report);
    check_step_after_end(env, &actions, &mut report);
    check_invalid_actions(env, &mut report);
    report
}

fn check_spaces(env: &dyn Env, report: &mut CheckReport) {
    match env.observation_space() {
        Space::Discrete(0) => report.problems.push("observation space Discrete(0) is empty".into()),
        Space::Box(b) if b.dim() == 0 => {
            report.problems.push("observation space is a Box with no dimensions".into())
        }
        _ => {}
    }
    match env.action_space() {
        Space::Discrete(0) => {
            report.problems.push("action space Discrete(0) has no actions".into())
        }
        Space::Box(b) if b.dim() == 0 => {
            report.problems.push("action space is a Box with no dimensions".into())
        }
        Space::Box(b) if b.low.iter().chain(&b.high).any(|x| !x.is_finite()) => {
            report.warnings.push(format!(
                "action space {} is unbounded: the trainer cannot clip actions into it",
                env.action_space()
            ))
        }
        _ => {}
    }
}

/// A fixed, seeded sequence of valid actions, stored as flat rows.
fn action_sequence(space: &Space, len: usize) -> Vec<Vec<f32>> {
    let mut rng = Pcg64::seed_from_u64(0x5eed);
    (0..len)
        .map(|_| match space {
            Space::Discrete(n) => vec![rng.random_range(0..*n) as f32],
            Space::Box(b) => sample_box(b, &mut rng),
        })
        .collect()
}

fn sample_box(b: &BoxSpace, rng: &mut Pcg64) -> Vec<f32> {
    b.low
        .iter()
        .zip(&b.high)
        .map(|(&lo, &hi)| {
            // Unbounded sides are replaced by a unit interval next to the bounded one.
            let (lo, hi) = match (lo.is_finite(), hi.is_finite()) {
                (true, true) => (lo, hi),
                (true, false) => (lo, lo + 1.0),
                (false, true) => (hi - 1.0, hi),
                (false, false) => (-1.0, 1.0),
            };
            if lo == hi { lo } else { rng.random_range(lo..=hi) }
        })
        .collect()
}

fn as_action<'a>(space: &Space, row: &'a [f32]) -> Action<'a> {
    match space {
        Space::Discrete(_) => Action::Discrete(row[0] as usize),
        Space::Box(_) => Action::Continuous(row),
    }
}

/// One step of a recorded trajectory, compared bit for bit.
#[derive(Clone, Debug, PartialEq)]
struct Recorded {
    obs: Observation,
    reward: f64,
    terminated: bool,
    truncated: bool,
}

/// Which method [`rollout`] steps with.
#[derive(Clone, Copy, PartialEq)]
enum Stepper {
    /// [`Env::step`].
    Step,
    /// [`Env::step_into`], into a buffer of the observation space's length.
    StepInto,
}

/// The first observation after `reset(Some(seed))`, then the steps under `actions` (taken with
/// `stepper`), resetting (without seed) whenever an episode ends. Every output is validated.
fn rollout(
    env: &mut dyn Env,
    seed: u64,
    actions: &[Vec<f32>],
    stepper: Stepper,
) -> Result<Vec<Recorded>, String> {
    let mut obs_buffer = vec![0.0; env.observation_space().flat_dim()];
    let obs = guarded(&format!("reset(Some({seed}))"), || env.reset(Some(seed)))?;
    validate_obs(env, &obs, Origin::Reset)?;
    let mut trajectory = vec![Recorded { obs, reward: 0.0, terminated: false, truncated: false }];
    let mut t = 0;
    for row in actions {
        t += 1;
        let action = as_action(env.action_space(), row);
        let step = match stepper {
            Stepper::Step => {
                guarded(&format!("step {t} with the valid action {action}"), || env.step(action))?
            }
            Stepper::StepInto => {
                let what = format!("step_into at step {t} with the valid action {action}");
                let info = guarded(&what, || env.step_into(action, &mut obs_buffer))?;
                let obs = Observation::from_slice(&obs_buffer);
                Step {
                    obs,
                    reward: info.reward,
                    terminated: info.terminated,
                    truncated: info.truncated,
                }
            }
        };
        validate_obs(env, &step.obs, Origin::Step(t))?;
        check_reward(env.id(), step.reward, Origin::Step(t)).map_err(|e| message(&e))?;
        let done = step.done();
        trajectory.push(Recorded {
            obs: step.obs,
            reward: step.reward,
            terminated: step.terminated,
            truncated: step.truncated,
        });
        if done {
            let obs = guarded("reset(None) after the episode ended", || env.reset(None))?;
            validate_obs(env, &obs, Origin::Reset)?;
            trajectory.push(Recorded { obs, reward: 0.0, terminated: false, truncated: false });
            t = 0;
        }
    }
    Ok(trajectory)
}

/// Length, finiteness and bounds of one observation.
fn validate_obs(env: &dyn Env, obs: &[f32], origin: Origin) -> Result<(), String> {
    let space = env.observation_space();
    check_observation(env.id(), space, obs, origin).map_err(|e| message(&e))?;
    let inside = match space {
        Space::Box(b) => b.contains(obs),
        Space::Discrete(n) => obs[0] >= 0.0 && obs[0].fract() == 0.0 && (obs[0] as usize) < *n,
    };
    if inside {
        Ok(())
    } else {
        Err(format!(
            "{origin} returned the observation {obs:?}, outside the observation space {space}"
        ))
    }
}

fn check_determinism(
    env: &mut dyn Env,
    first: &[Recorded],
    actions: &[Vec<f32>],
    report: &mut CheckReport,
) {
    match rollout(env, 0, actions, Stepper::Step) {
        Err(problem) => report.problems.push(problem),
        Ok(second) => {
            if let Some(k) = first.iter().zip(&second).position(|(a, b)| !same(a, b)) {
                let what =
                    if k == 0 { "first observation".to_owned() } else { format!("record {k}") };
                report.problems.push(format!(
                    "reset(Some(0)) is not deterministic: two runs with the same seed and actions \
                     differ at the {what}: {:?} vs {:?}",
                    first[k], second[k]
                ));
            }
        }
    }
}

fn check_seeds_matter(
    env: &mut dyn Env,
    first: &[Recorded],
    actions: &[Vec<f32>],
    report: &mut CheckReport,
) {
    for seed in OTHER_SEEDS {
        match rollout(env, seed, actions, Stepper::Step) {
            Err(problem) => {
                report.problems.push(problem);
                return;
            }
            Ok(other) => {
                if first.iter().zip(&other).any(|(a, b)| !same(a, b)) {
                    return;
                }
            }
        }
    }
    // A fixed start is legitimate (a simulation that always begins in the same state), so this
    // is a warning; what it costs is said, because a forgotten seed looks the same.
    report.warnings.push(format!(
        "seeds 0 to {} all gave the same trajectory: reset ignores the seed for the initial \
         state. That is fine for an env with a fixed start, but then every training and \
         evaluation episode starts alike, evaluations over several episodes measure one start, \
         and runs with different seeds differ only by the agent's sampling; if the start should \
         be random, seed it in reset (use EnvRng::for_reset)",
        OTHER_SEEDS.end()
    ));
}

fn check_step_after_end(env: &mut dyn Env, actions: &[Vec<f32>], report: &mut CheckReport) {
    if let Err(problem) = guarded("reset(Some(0))", || env.reset(Some(0))) {
        report.problems.push(problem);
        return;
    }
    for t in 1..=MAX_STEPS_TO_END {
        let row = &actions[(t - 1) % actions.len()];
        let action = as_action(env.action_space(), row);
        let step =
            match guarded(&format!("step {t} with the valid action {action}"), || env.step(action))
            {
                Ok(step) => step,
                Err(problem) => {
                    report.problems.push(problem);
                    return;
                }
            };
        if step.done() {
            let how = if step.terminated { "terminated" } else { "truncated" };
            match catch_unwind(AssertUnwindSafe(|| env.step(action))) {
                Ok(Err(_)) => {}
                Ok(Ok(_)) => report.problems.push(format!(
                    "a step after the episode ended ({how} at step {t}) was accepted; it must \
                     return EnvError::EpisodeOver until reset"
                )),
                Err(payload) => report.problems.push(format!(
                    "a step after the episode ended ({how} at step {t}) panicked instead of \
                     returning EnvError::EpisodeOver: {}",
                    panic_message(&payload)
                )),
            }
            return;
        }
    }
    report.warnings.push(format!(
        "no episode ended within {MAX_STEPS_TO_END} steps, so stepping after the end was not \
         checked; episodes that never end need a time limit (TimeLimit)"
    ));
}

/// An action to step with in [`check_invalid_actions`], owned so that a list of them can be
/// built up front.
enum InvalidAction {
    /// Must be refused.
    Discrete(usize),
    /// Must be refused.
    Continuous(Vec<f32>),
    /// Finite but outside the box: refused, or (for an env that clips actions) stepped exactly
    /// as `clipped`.
    OutOfBounds { action: Vec<f32>, clipped: Vec<f32> },
}

fn invalid_actions(space: &Space) -> Vec<(String, InvalidAction)> {
    match space {
        Space::Discrete(n) => vec![
            (format!("{n} (one past the last action)"), InvalidAction::Discrete(*n)),
            ("[0.0] (a continuous action)".to_owned(), InvalidAction::Continuous(vec![0.0])),
        ],
        Space::Box(b) => {
            let dim = b.dim();
            let mut list = vec![
                ("0 (a discrete action)".to_owned(), InvalidAction::Discrete(0)),
                (
                    format!("{:?} (one value too many)", vec![0.0_f32; dim + 1]),
                    InvalidAction::Continuous(vec![0.0; dim + 1]),
                ),
                ("[] (no values)".to_owned(), InvalidAction::Continuous(Vec::new())),
            ];
            let inside = sample_box(b, &mut Pcg64::seed_from_u64(1));
            for (value, what) in [(f32::NAN, "NaN"), (f32::INFINITY, "infinite")] {
                let mut action = inside.clone();
                action[0] = value;
                list.push((format!("{action:?} ({what})"), InvalidAction::Continuous(action)));
            }
            if b.high[0].is_finite() {
                let mut above = b.high.clone();
                above[0] = b.high[0] + 1.0_f32.max(b.high[0].abs());
                list.push((
                    format!("{above:?} (above the upper bound)"),
                    InvalidAction::OutOfBounds { action: above, clipped: b.high.clone() },
                ));
            }
            if b.low[0].is_finite() {
                let mut below = b.low.clone();
                below[0] = b.low[0] - 1.0_f32.max(b.low[0].abs());
                list.push((
                    format!("{below:?} (below the lower bound)"),
                    InvalidAction::OutOfBounds { action: below, clipped: b.low.clone() },
                ));
            }
            list
        }
    }
}

fn check_invalid_actions(env: &mut dyn Env, report: &mut CheckReport) {
    let space = env.action_space().clone();
    let clips = env.clips_actions();
    if clips && matches!(space, Space::Discrete(_)) {
        report.warnings.push(format!(
            "clips_actions() is true but the action space {space} is discrete: there is \
             nothing to clip"
        ));
    }
    for (label, invalid) in invalid_actions(&space) {
        let action = match &invalid {
            InvalidAction::Discrete(a) => Action::Discrete(*a),
            InvalidAction::Continuous(x) => Action::Continuous(x),
            InvalidAction::OutOfBounds { action, clipped } if clips => {
                if let Err(problem) = check_clipped(env, action, clipped, &label) {
                    report.problems.push(problem);
                }
                continue;
            }
            InvalidAction::OutOfBounds { action, .. } => Action::Continuous(action),
        };
        if let Err(problem) = guarded("reset(Some(0))", || env.reset(Some(0))) {
            report.problems.push(problem);
            return;
        }
        let clip_note = if matches!(invalid, InvalidAction::OutOfBounds { .. }) {
            " (or say so with Env::clips_actions if it clips actions into the space)"
        } else {
            ""
        };
        match catch_unwind(AssertUnwindSafe(|| env.step(action))) {
            Ok(Err(_)) => {}
            Ok(Ok(_)) => report.problems.push(format!(
                "accepted the invalid action {label} for the action space {space}; it must \
                 return EnvError::InvalidAction{clip_note}"
            )),
            Err(payload) => report.problems.push(format!(
                "panicked on the invalid action {label} for the action space {space} instead of \
                 returning EnvError::InvalidAction: {}",
                panic_message(&payload)
            )),
        }
    }
}

/// For an env that clips actions: `action` (outside the box) must lead from the state of
/// `reset(Some(0))` to the observation that `clipped` (its clip into the box) leads to, within
/// [`CLIP_OBS_TOL`].
fn check_clipped(
    env: &mut dyn Env,
    action: &[f32],
    clipped: &[f32],
    label: &str,
) -> Result<(), String> {
    let mut step_after_reset = |a: &[f32], what: &str| -> Result<Recorded, String> {
        guarded("reset(Some(0))", || env.reset(Some(0)))?;
        let step = guarded(what, || env.step(Action::Continuous(a)))?;
        Ok(Recorded {
            obs: step.obs,
            reward: step.reward,
            terminated: step.terminated,
            truncated: step.truncated,
        })
    };
    let out = step_after_reset(
        action,
        &format!("step({label}) of an env whose clips_actions() is true"),
    )?;
    let inside = step_after_reset(clipped, &format!("step({clipped:?})"))?;
    let close = out.obs.len() == inside.obs.len()
        && out
            .obs
            .iter()
            .zip(&inside.obs)
            .all(|(x, y)| (x - y).abs() <= CLIP_OBS_TOL * y.abs().max(1.0));
    if close {
        Ok(())
    } else {
        Err(format!(
            "clips_actions() is true, but the action {label} stepped differently from its clip \
             {clipped:?} from the same state: observation {:?} vs {:?}",
            out.obs, inside.obs
        ))
    }
}

/// `step_into` must give bitwise what `step` gives (an env that overrides it may get them out
/// of sync).
fn check_step_into(
    env: &mut dyn Env,
    first: &[Recorded],
    actions: &[Vec<f32>],
    report: &mut CheckReport,
) {
    match rollout(env, 0, actions, Stepper::StepInto) {
        Err(problem) => report.problems.push(problem),
        Ok(other) => {
            if let Some(k) = first.iter().zip(&other).position(|(a, b)| !same(a, b)) {
                report.problems.push(format!(
                    "step_into differs from step at record {k} of a run with seed 0: {:?} vs \
                     {:?}; an env that implements Env::step_into must write the observation \
                     and return the reward and flags that step returns",
                    first[k], other[k]
                ));
            }
        }
    }
}

/// Bitwise equality of two records (observations compared by bits, so `-0.0 != 0.0`).
fn same(a: &Recorded, b: &Recorded) -> bool {
    a.obs.len() == b.obs.len()
        && a.obs.iter().zip(&b.obs).all(|(x, y)| x.to_bits() == y.to_bits())
        && a.reward.to_bits() == b.reward.to_bits()
        && a.terminated == b.terminated
        && a.truncated == b.truncated
}

/// Runs `f`, turning an error or a panic into a problem sentence that starts with `what`.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, EnvError>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what} returned an error: {e}")),
        Err(payload) => Err(format!("{what} panicked: {}", panic_message(&payload))),
    }
}

/// The message of an [`EnvError::InvalidOutput`] without the env id prefix (the report names
/// the env once).
fn message(e: &EnvError) -> String {
    match e {
        EnvError::InvalidOutput { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn panic_message(payload: &Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}
