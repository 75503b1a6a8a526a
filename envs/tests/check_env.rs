//! `check_env` accepts a correct environment and rejects each deliberately broken one with a
//! message that names the problem.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngExt;
use rlpg_envs::{
    Action, BoxSpace, CartPole, Env, EnvError, EnvRng, Observation, Pendulum, Space, Step,
    TimeLimit, check_env, make,
};
use smallvec::smallvec;

/// One way of breaking the contract.
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    /// Observations have two values for a one-dimensional space.
    wrong_obs_len: bool,
    /// The observation of step 5 is NaN.
    nan_obs: bool,
    /// The observation of step 3 lies outside the observation space.
    out_of_bounds_obs: bool,
    /// The start position comes from a global counter, whatever the seed.
    ignores_seed: bool,
    /// Every episode starts at the same place (reset uses no randomness at all).
    constant_start: bool,
    /// Steps after the episode ended are accepted.
    steps_after_end: bool,
    /// Actions are not validated.
    accepts_invalid_actions: bool,
    /// Invalid actions panic instead of returning an error.
    panics_on_invalid_actions: bool,
    /// The reward of step 2 is infinite.
    infinite_reward: bool,
    /// `clips_actions()` is true: finite out-of-bounds actions are clipped into the box.
    clips: bool,
    /// With `clips`: an out-of-bounds action moves the walker by its unclipped force.
    clips_wrongly: bool,
}

/// A point on a line, pushed by a bounded force; correct unless `faults` says otherwise.
struct Walker {
    pos: f64,
    t: usize,
    over: bool,
    rng: EnvRng,
    faults: Faults,
    observation_space: Space,
    action_space: Space,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Walker {
    fn new(faults: Faults) -> Self {
        Self {
            pos: 0.0,
            t: 0,
            over: true,
            rng: EnvRng::new(),
            faults,
            observation_space: Space::Box(BoxSpace::uniform(1, -2.0, 2.0)),
            action_space: Space::Box(BoxSpace::uniform(1, -1.0, 1.0)),
        }
    }

    fn obs(&self) -> Observation {
        if self.faults.wrong_obs_len {
            smallvec![self.pos as f32, 0.0]
        } else if self.faults.nan_obs && self.t == 5 {
            smallvec![f32::NAN]
        } else if self.faults.out_of_bounds_obs && self.t == 3 {
            smallvec![3.0]
        } else {
            smallvec![self.pos as f32]
        }
    }
}

impl Env for Walker {
    fn id(&self) -> &str {
        "Walker"
    }
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }
    fn action_space(&self) -> &Space {
        &self.action_space
    }
    fn clips_actions(&self) -> bool {
        self.faults.clips
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        let rng = self.rng.for_reset(seed);
        self.pos = if self.faults.ignores_seed {
            (COUNTER.fetch_add(1, Ordering::Relaxed) % 100) as f64 / 100.0 - 0.5
        } else if self.faults.constant_start {
            0.5
        } else {
            rng.random_range(-1.0..1.0)
        };
        self.t = 0;
        self.over = false;
        Ok(self.obs())
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        if self.over && !self.faults.steps_after_end {
            return Err(EnvError::EpisodeOver { env: "Walker".into() });
        }
        let clippable = matches!(action, Action::Continuous([a]) if a.is_finite());
        let valid = self.action_space.contains(action) || (self.faults.clips && clippable);
        if !valid && self.faults.panics_on_invalid_actions {
            panic!("Walker: invalid action {action}");
        }
        if !valid && !self.faults.accepts_invalid_actions {
            return Err(EnvError::invalid_action("Walker", action, &self.action_space));
        }
        let force = match action {
            Action::Continuous([a, ..]) if a.is_finite() && self.faults.clips_wrongly => {
                f64::from(*a)
            }
            Action::Continuous([a, ..]) if a.is_finite() => f64::from(a.clamp(-1.0, 1.0)),
            _ => 0.0,
        };
        self.pos += 0.1 * force;
        self.t += 1;
        let terminated = self.pos.abs() > 1.5;
        let truncated = self.t >= 40;
        self.over = terminated || truncated;
        let reward = if self.faults.infinite_reward && self.t == 2 {
            f64::INFINITY
        } else {
            -self.pos * self.pos
        };
        Ok(Step { obs: self.obs(), reward, terminated, truncated })
    }
}

/// Checks `Walker` with `faults` and asserts that exactly the expected problem is reported.
fn assert_rejected(faults: Faults, needles: &[&str]) {
    let report = check_env(&mut Walker::new(faults));
    assert!(!report.is_ok(), "{faults:?} passed the checks:\n{report}");
    let text = report.to_string();
    for needle in needles {
        assert!(
            report.problems.iter().any(|p| p.contains(needle)),
            "{faults:?}: no problem mentions '{needle}':\n{text}"
        );
    }
    assert!(text.contains("Walker"), "the report must name the env:\n{text}");
}

#[test]
fn a_correct_env_passes() {
    let report = check_env(&mut Walker::new(Faults::default()));
    assert!(report.is_ok(), "the correct Walker was rejected:\n{report}");
    assert!(report.warnings.is_empty(), "unexpected warnings:\n{report}");
}

#[test]
fn the_built_in_envs_pass() {
    let ids =
        ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"];
    for mut env in ids.map(|id| make(id).expect("registered")) {
        let report = check_env(env.as_mut());
        assert!(report.is_ok() && report.warnings.is_empty(), "{report}");
    }
}

#[test]
fn a_never_ending_env_is_warned_about() {
    let report = check_env(&mut Pendulum::new());
    assert!(report.is_ok(), "{report}");
    assert!(
        report.warnings.iter().any(|w| w.contains("TimeLimit")),
        "a Pendulum without time limit must get a warning:\n{report}"
    );
    let wrapped = check_env(&mut TimeLimit::new(CartPole::new(), 100));
    assert!(wrapped.is_ok() && wrapped.warnings.is_empty(), "{wrapped}");
}

#[test]
fn wrong_observation_length_is_rejected() {
    assert_rejected(
        Faults { wrong_obs_len: true, ..Faults::default() },
        &["length 2", "has dimension 1"],
    );
}

#[test]
fn non_finite_observations_are_rejected() {
    assert_rejected(
        Faults { nan_obs: true, ..Faults::default() },
        &["NaN", "not finite", "step 5"],
    );
}

#[test]
fn observations_outside_the_bounds_are_rejected() {
    assert_rejected(
        Faults { out_of_bounds_obs: true, ..Faults::default() },
        &["[3.0], outside the observation space Box(-2, 2, (1,))"],
    );
}

#[test]
fn non_deterministic_resets_are_rejected() {
    assert_rejected(Faults { ignores_seed: true, ..Faults::default() }, &["not deterministic"]);
}

#[test]
fn seeds_that_change_nothing_are_a_warning_not_a_problem() {
    let faults = Faults { constant_start: true, ..Faults::default() };
    let report = check_env(&mut Walker::new(faults));
    // A fixed start is allowed: the env passes, with one warning that explains the consequence.
    assert!(report.is_ok(), "{faults:?} was rejected:\n{report}");
    assert_eq!(report.warnings.len(), 1, "{report}");
    let warning = &report.warnings[0];
    for needle in ["all gave the same trajectory", "fixed start", "every training", "EnvRng"] {
        assert!(warning.contains(needle), "the warning does not say '{needle}':\n{report}");
    }
    assert!(report.to_string().contains("- warning: seeds 0 to"), "{report}");
}

#[test]
fn steps_after_the_end_must_be_errors() {
    assert_rejected(
        Faults { steps_after_end: true, ..Faults::default() },
        &["step after the episode ended", "was accepted"],
    );
}

#[test]
fn invalid_actions_must_be_errors() {
    assert_rejected(
        Faults { accepts_invalid_actions: true, ..Faults::default() },
        &["accepted the invalid action [NaN", "above the upper bound", "one value too many"],
    );
}

#[test]
fn an_env_that_clips_may_accept_out_of_bounds_actions_but_not_nan_or_infinity() {
    let report = check_env(&mut Walker::new(Faults { clips: true, ..Faults::default() }));
    assert!(report.is_ok() && report.warnings.is_empty(), "a clipping Walker:\n{report}");
    assert_rejected(
        Faults { clips: true, accepts_invalid_actions: true, ..Faults::default() },
        &["accepted the invalid action [NaN", "accepted the invalid action [inf"],
    );
}

#[test]
fn an_env_that_says_it_clips_must_step_as_the_clipped_action() {
    assert_rejected(
        Faults { clips: true, clips_wrongly: true, ..Faults::default() },
        &["stepped differently from its clip", "above the upper bound", "below the lower bound"],
    );
}

#[test]
fn panics_on_invalid_actions_are_reported() {
    assert_rejected(
        Faults { panics_on_invalid_actions: true, ..Faults::default() },
        &["panicked on the invalid action", "Walker: invalid action"],
    );
}

#[test]
fn non_finite_rewards_are_rejected() {
    assert_rejected(
        Faults { infinite_reward: true, ..Faults::default() },
        &["non-finite reward inf", "step 2"],
    );
}

#[test]
fn unusable_spaces_are_rejected() {
    let mut env = Walker::new(Faults::default());
    env.action_space = Space::Discrete(0);
    let report = check_env(&mut env);
    assert!(
        report.problems.iter().any(|p| p.contains("action space: Discrete(0) has no elements")),
        "an empty action space must be a problem:\n{report}"
    );
}
