//! [`check_env`]: does an environment keep the [`Env`] contract? (Stable-Baselines3's
//! `env_checker`, for rlpg's rules.)

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use rand::SeedableRng;
use rand_pcg::Pcg64;

use crate::action_buf::ActionBuf;
use crate::core::{Action, Env, EnvError, Observation, Space, Step};
use crate::validate::{Origin, check_mask, check_observation, check_reward};

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
/// * its spaces are usable (a non-empty observation, at least one action); the infos it declares
///   have distinct, well-formed names; an env that declares action masks has a discrete action
///   space;
/// * every observation (from `reset` and `step`) has the length of the observation space, only
///   finite values, and lies within the space; every reward is finite; no info is infinite;
/// * with action masks ([`Env::masks_actions`]): every state's mask is a valid mask of the
///   action space (each part keeps an allowed choice), the actions stepped are drawn from it,
///   and a masked-out action may be refused (a state-dependent refusal is the point of a mask)
///   but must not panic. Without masks, every action of the space must be accepted in every
///   state;
/// * `reset(Some(seed))` is deterministic: the same seed gives the same first observation and
///   the same trajectory (masks and infos included) under the same seeded action draws.
///   Different seeds should eventually differ; when none does (a fixed start) that is a warning,
///   not a problem;
/// * [`Env::step_into`] (which [`crate::VecEnv`] steps with) gives exactly what `step` gives;
/// * a `step` after the episode ended (terminated or truncated), without a `reset`, is an error;
/// * invalid actions (wrong kind, wrong length, a value past a component's count, NaN, infinite)
///   are errors, not panics; so are finite actions outside a `Box` action space, unless the
///   env's [`Env::clips_actions`] says it clips them, in which case such an action must be
///   accepted and lead, from the same state, to the observation that the action clipped into
///   the box leads to (within [`CLIP_OBS_TOL`]; the reward is not compared, as Gymnasium's
///   MountainCarContinuous charges the unclipped action).
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
    let first = match rollout(env, 0, Stepper::Step) {
        Ok(trajectory) => trajectory,
        Err(problem) => {
            report.problems.push(problem);
            return report;
        }
    };
    check_determinism(env, &first, &mut report);
    check_seeds_matter(env, &first, &mut report);
    check_step_into(env, &first, &mut report);
    check_step_after_end(env, &mut report);
    check_invalid_actions(env, &mut report);
    if env.masks_actions() {
        check_masked_out_action(env, &mut report);
    }
    report
}

fn check_spaces(env: &dyn Env, report: &mut CheckReport) {
    if let Some(problem) = env.observation_space().problem() {
        report.problems.push(format!("observation space: {problem}"));
    }
    let space = env.action_space();
    match space.problem() {
        Some(problem) => report.problems.push(format!("action space: {problem}")),
        None => {
            if let Space::Box(b) = space {
                if b.low.iter().chain(&b.high).any(|x| !x.is_finite()) {
                    report.warnings.push(format!(
                        "action space {space} is unbounded: the trainer cannot clip actions into it"
                    ));
                }
            }
        }
    }
    if env.masks_actions() && space.mask_len() == 0 {
        report.problems.push(format!(
            "masks_actions() is true but the action space {space} has no masks (only Discrete, \
             MultiDiscrete and MultiBinary spaces do)"
        ));
    }
    let keys = env.info_keys();
    for (i, key) in keys.iter().enumerate() {
        if let Some(problem) = info_name_problem(&key.name) {
            report.problems.push(format!("info_keys()[{i}] {:?}: {problem}", key.name));
        } else if keys[..i].iter().any(|k| k.name == key.name) {
            report.problems.push(format!("info_keys() names {:?} twice", key.name));
        }
    }
}

/// Why `name` cannot name an info (it appears in configs and TensorBoard tags), or `None`.
pub(crate) fn info_name_problem(name: &str) -> Option<&'static str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    if name.is_empty() {
        Some("an info needs a name")
    } else if !name.chars().all(allowed) {
        Some("names are made of ASCII letters, digits and _ - . /")
    } else {
        None
    }
}

/// The seeded draws of the actions every rollout takes: uniform over the action space, or over
/// the allowed actions of the current state when the env masks actions. Every rollout starts
/// from the same generator state, so two rollouts of a deterministic env take the same actions.
fn action_draws() -> Pcg64 {
    Pcg64::seed_from_u64(0x5eed)
}

/// The current state's mask, validated, if the env masks actions.
fn current_mask(env: &dyn Env, origin: Origin) -> Result<Option<Vec<bool>>, String> {
    if !env.masks_actions() {
        return Ok(None);
    }
    let mut mask = vec![false; env.action_space().mask_len()];
    guarded(&format!("action_mask after {origin}"), || env.action_mask(&mut mask))?;
    check_mask(env.id(), env.action_space(), &mask, origin).map_err(|e| message(&e))?;
    Ok(Some(mask))
}

/// The infos of the last step, checked: NaN (not reported) is fine, infinity is not.
fn current_infos(env: &dyn Env, origin: Origin) -> Result<Vec<f64>, String> {
    let keys = env.info_keys();
    let mut values = vec![f64::NAN; keys.len()];
    guarded(&format!("step_infos at {origin}"), || {
        env.step_infos(&mut values);
        Ok(())
    })?;
    match keys.iter().zip(&values).find(|(_, v)| v.is_infinite()) {
        Some((key, v)) => Err(format!("{origin} reported the info {} = {v}", key.name)),
        None => Ok(values),
    }
}

/// The action to take in the current state (under its mask).
fn draw(env: &dyn Env, rng: &mut Pcg64, mask: Option<&[bool]>) -> Result<ActionBuf, String> {
    env.action_space().sample(rng, mask)
}

/// One step of a recorded trajectory, compared bit for bit.
#[derive(Clone, Debug, PartialEq)]
struct Recorded {
    obs: Observation,
    reward: f64,
    terminated: bool,
    truncated: bool,
    /// The mask of the state reached (empty without masks).
    mask: Vec<bool>,
    /// The infos of the step (empty without infos, and for a reset).
    infos: Vec<f64>,
}

/// Which method [`rollout`] steps with.
#[derive(Clone, Copy, PartialEq)]
enum Stepper {
    /// [`Env::step`].
    Step,
    /// [`Env::step_into`], into a buffer of the observation space's length.
    StepInto,
}

/// Why the env refused `action`, as a problem; with a hint on masks when the env has none.
fn refused(env: &dyn Env, what: &str, problem: String) -> String {
    if env.masks_actions() || env.action_space().mask_len() == 0 {
        problem
    } else {
        format!(
            "{problem}. {what} is in the action space and the env declares no action masks, so \
             it must be accepted in every state; if some actions are not allowed in some states, \
             say which with Env::masks_actions and Env::action_mask, and agents will never choose \
             them"
        )
    }
}

/// The first observation after `reset(Some(seed))`, then [`ROLLOUT_STEPS`] steps (taken with
/// `stepper`) under the seeded action draws, resetting (without seed) whenever an episode ends.
/// Every output is validated.
fn rollout(env: &mut dyn Env, seed: u64, stepper: Stepper) -> Result<Vec<Recorded>, String> {
    let mut rng = action_draws();
    let mut obs_buffer = vec![0.0; env.observation_space().flat_dim()];
    let obs = guarded(&format!("reset(Some({seed}))"), || env.reset(Some(seed)))?;
    validate_obs(env, &obs, Origin::Reset)?;
    let mut mask = current_mask(env, Origin::Reset)?;
    let mut trajectory = vec![Recorded {
        obs,
        reward: 0.0,
        terminated: false,
        truncated: false,
        mask: mask.clone().unwrap_or_default(),
        infos: Vec::new(),
    }];
    let mut t = 0;
    for _ in 0..ROLLOUT_STEPS {
        t += 1;
        let buf = draw(env, &mut rng, mask.as_deref())?;
        let action = buf.as_action();
        let valid = if mask.is_some() { "allowed" } else { "valid" };
        let what = format!("the {valid} action {action}");
        let step = match stepper {
            Stepper::Step => guarded(&format!("step {t} with {what}"), || env.step(action))
                .map_err(|p| refused(env, &what, p))?,
            Stepper::StepInto => {
                let info = guarded(&format!("step_into at step {t} with {what}"), || {
                    env.step_into(action, &mut obs_buffer)
                })
                .map_err(|p| refused(env, &what, p))?;
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
        let infos = current_infos(env, Origin::Step(t))?;
        let done = step.done();
        if !done {
            mask = current_mask(env, Origin::Step(t))?;
        }
        trajectory.push(Recorded {
            obs: step.obs,
            reward: step.reward,
            terminated: step.terminated,
            truncated: step.truncated,
            mask: if done { Vec::new() } else { mask.clone().unwrap_or_default() },
            infos,
        });
        if done {
            let obs = guarded("reset(None) after the episode ended", || env.reset(None))?;
            validate_obs(env, &obs, Origin::Reset)?;
            mask = current_mask(env, Origin::Reset)?;
            trajectory.push(Recorded {
                obs,
                reward: 0.0,
                terminated: false,
                truncated: false,
                mask: mask.clone().unwrap_or_default(),
                infos: Vec::new(),
            });
            t = 0;
        }
    }
    Ok(trajectory)
}

/// Length, finiteness and membership of one observation.
fn validate_obs(env: &dyn Env, obs: &[f32], origin: Origin) -> Result<(), String> {
    let space = env.observation_space();
    check_observation(env.id(), space, obs, origin).map_err(|e| message(&e))?;
    if space.contains_flat(obs) {
        Ok(())
    } else {
        Err(format!(
            "{origin} returned the observation {obs:?}, outside the observation space {space}"
        ))
    }
}

fn check_determinism(env: &mut dyn Env, first: &[Recorded], report: &mut CheckReport) {
    match rollout(env, 0, Stepper::Step) {
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

fn check_seeds_matter(env: &mut dyn Env, first: &[Recorded], report: &mut CheckReport) {
    for seed in OTHER_SEEDS {
        match rollout(env, seed, Stepper::Step) {
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

fn check_step_after_end(env: &mut dyn Env, report: &mut CheckReport) {
    let mut rng = action_draws();
    if let Err(problem) = guarded("reset(Some(0))", || env.reset(Some(0))) {
        report.problems.push(problem);
        return;
    }
    let mut origin = Origin::Reset;
    for t in 1..=MAX_STEPS_TO_END {
        let buf = match current_mask(env, origin).and_then(|m| draw(env, &mut rng, m.as_deref())) {
            Ok(buf) => buf,
            Err(problem) => {
                report.problems.push(problem);
                return;
            }
        };
        let action = buf.as_action();
        let step = match guarded(&format!("step {t} with the action {action}"), || env.step(action))
        {
            Ok(step) => step,
            Err(problem) => {
                report.problems.push(problem);
                return;
            }
        };
        origin = Origin::Step(t);
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
    /// Outside the space (wrong kind, wrong length, a value past its count, NaN): must be
    /// refused.
    Refused(ActionBuf),
    /// Finite but outside the box: refused, or (for an env that clips actions) stepped exactly
    /// as `clipped`.
    OutOfBounds { action: Vec<f32>, clipped: Vec<f32> },
}

fn invalid_actions(space: &Space) -> Vec<(String, InvalidAction)> {
    let refused = |label: String, action: ActionBuf| (label, InvalidAction::Refused(action));
    let wrong_kind =
        |action: ActionBuf, kind: &str| refused(format!("{action} (a {kind} action)"), action);
    match space {
        Space::Discrete(n) => vec![
            refused(format!("{n} (one past the last action)"), ActionBuf::Discrete(*n)),
            wrong_kind(ActionBuf::Continuous(vec![0.0]), "continuous"),
        ],
        Space::MultiDiscrete(nvec) => {
            let mut past = vec![0; nvec.len()];
            past[0] = nvec[0];
            vec![
                refused(
                    format!("{past:?} (component 0 one past its last value)"),
                    ActionBuf::MultiDiscrete(past),
                ),
                refused(
                    format!("{:?} (one component too many)", vec![0; nvec.len() + 1]),
                    ActionBuf::MultiDiscrete(vec![0; nvec.len() + 1]),
                ),
                refused("[] (no components)".to_owned(), ActionBuf::MultiDiscrete(Vec::new())),
                wrong_kind(ActionBuf::Discrete(0), "Discrete"),
            ]
        }
        Space::MultiBinary(n) => vec![
            refused(
                format!("{} (one value too many)", ActionBuf::MultiBinary(vec![false; n + 1])),
                ActionBuf::MultiBinary(vec![false; n + 1]),
            ),
            refused("[] (no values)".to_owned(), ActionBuf::MultiBinary(Vec::new())),
            wrong_kind(ActionBuf::Discrete(0), "Discrete"),
        ],
        Space::Box(b) => {
            let dim = b.dim();
            let mut list = vec![
                wrong_kind(ActionBuf::Discrete(0), "discrete"),
                refused(
                    format!("{:?} (one value too many)", vec![0.0_f32; dim + 1]),
                    ActionBuf::Continuous(vec![0.0; dim + 1]),
                ),
                refused("[] (no values)".to_owned(), ActionBuf::Continuous(Vec::new())),
            ];
            let inside = match space.sample(&mut Pcg64::seed_from_u64(1), None) {
                Ok(ActionBuf::Continuous(x)) => x,
                _ => vec![0.0; dim],
            };
            for (value, what) in [(f32::NAN, "NaN"), (f32::INFINITY, "infinite")] {
                let mut action = inside.clone();
                action[0] = value;
                list.push(refused(format!("{action:?} ({what})"), ActionBuf::Continuous(action)));
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
    if clips && !matches!(space, Space::Box(_)) {
        report.warnings.push(format!(
            "clips_actions() is true but the action space {space} is discrete: there is \
             nothing to clip"
        ));
    }
    for (label, invalid) in invalid_actions(&space) {
        let action = match &invalid {
            InvalidAction::Refused(action) => action.as_action(),
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

/// An action of `space` that `mask` does not allow, if there is one: the first allowed
/// action with one part changed to its first masked-out choice.
fn masked_out_action(space: &Space, mask: &[bool]) -> Option<ActionBuf> {
    let first_allowed = |flags: &[bool]| flags.iter().position(|&f| f).unwrap_or(0);
    let first_refused = |flags: &[bool]| flags.iter().position(|&f| !f);
    match space {
        Space::Discrete(_) => first_refused(mask).map(ActionBuf::Discrete),
        Space::MultiDiscrete(nvec) => {
            let mut action = Vec::with_capacity(nvec.len());
            let mut refused = None;
            let mut start = 0;
            for (i, &n) in nvec.iter().enumerate() {
                let flags = &mask[start..start + n];
                action.push(first_allowed(flags));
                if refused.is_none() {
                    refused = first_refused(flags).map(|v| (i, v));
                }
                start += n;
            }
            let (i, v) = refused?;
            action[i] = v;
            Some(ActionBuf::MultiDiscrete(action))
        }
        Space::MultiBinary(n) => {
            let mut action: Vec<bool> =
                (0..*n).map(|i| first_allowed(&mask[2 * i..2 * i + 2]) == 1).collect();
            let i = (0..*n).find(|&i| !(mask[2 * i] && mask[2 * i + 1]))?;
            action[i] = !action[i];
            Some(ActionBuf::MultiBinary(action))
        }
        Space::Box(_) => None,
    }
}

/// For an env that masks actions: in the first state (along the seeded rollout) whose mask
/// leaves an action out, stepping that action may be refused or accepted, but must not panic.
fn check_masked_out_action(env: &mut dyn Env, report: &mut CheckReport) {
    let mut rng = action_draws();
    if let Err(problem) = guarded("reset(Some(0))", || env.reset(Some(0))) {
        report.problems.push(problem);
        return;
    }
    let mut origin = Origin::Reset;
    for t in 1..=ROLLOUT_STEPS {
        let mask = match current_mask(env, origin) {
            Ok(mask) => mask.unwrap_or_default(),
            Err(problem) => {
                report.problems.push(problem);
                return;
            }
        };
        if let Some(out) = masked_out_action(env.action_space(), &mask) {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| env.step(out.as_action()))) {
                report.problems.push(format!(
                    "panicked on the action {out}, which the mask {} of {origin} does not allow, \
                     instead of refusing it with an error or accepting it: {}",
                    crate::space::bits(&mask),
                    panic_message(&payload)
                ));
            }
            return;
        }
        let action = match draw(env, &mut rng, Some(&mask)) {
            Ok(action) => action,
            Err(problem) => {
                report.problems.push(problem);
                return;
            }
        };
        match guarded(&format!("step {t} with the allowed action {action}"), || {
            env.step(action.as_action())
        }) {
            Ok(step) if step.done() => return,
            Ok(_) => origin = Origin::Step(t),
            Err(problem) => {
                report.problems.push(problem);
                return;
            }
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
    let mut step_after_reset = |a: &[f32], what: &str| -> Result<Step, String> {
        guarded("reset(Some(0))", || env.reset(Some(0)))?;
        guarded(what, || env.step(Action::Continuous(a)))
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
fn check_step_into(env: &mut dyn Env, first: &[Recorded], report: &mut CheckReport) {
    match rollout(env, 0, Stepper::StepInto) {
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

/// Bitwise equality of two records (observations and infos compared by bits, so
/// `-0.0 != 0.0` and a NaN info equals itself).
fn same(a: &Recorded, b: &Recorded) -> bool {
    a.obs.len() == b.obs.len()
        && a.obs.iter().zip(&b.obs).all(|(x, y)| x.to_bits() == y.to_bits())
        && a.reward.to_bits() == b.reward.to_bits()
        && a.terminated == b.terminated
        && a.truncated == b.truncated
        && a.mask == b.mask
        && a.infos.len() == b.infos.len()
        && a.infos.iter().zip(&b.infos).all(|(x, y)| x.to_bits() == y.to_bits())
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
