//! `Env::step_into` (what `VecEnv` steps with) behaves exactly as `Env::step`: for the built-in
//! envs, the wrappers that override it and the trait's default; and a buffer of the wrong size
//! is an error, never a panic.

use rlpg_envs::{
    Action, CartPole, Env, EnvError, NormalizeObservation, Observation, Pendulum,
    RecordEpisodeStatistics, Space, Step, StepInfo, TimeLimit, make,
};
use smallvec::smallvec;

/// The `t`-th action of a fixed pattern, valid for either built-in action space.
fn action<'a>(space: &Space, t: usize, torque: &'a mut [f32; 1]) -> Action<'a> {
    match space {
        Space::Discrete(n) => Action::Discrete((t * 7 + t / 3) % n),
        Space::Box(_) => {
            torque[0] = ((t as f32) * 0.37).sin() * 2.0;
            Action::Continuous(&torque[..])
        }
        other => panic!("no built-in env has the action space {other}"),
    }
}

/// Steps `a` with `step` and `b` with `step_into` through `steps` steps (resetting both after
/// each episode) and requires bitwise the same observations, rewards and flags.
fn assert_same_steps(mut a: impl Env, mut b: impl Env, steps: usize) {
    let space = a.action_space().clone();
    let dim = a.observation_space().flat_dim();
    assert_eq!(a.reset(Some(3)).expect("reset"), b.reset(Some(3)).expect("reset"));
    let mut row = vec![f32::NAN; dim];
    let mut torque = [0.0];
    for t in 0..steps {
        let step = a.step(action(&space, t, &mut torque)).expect("step");
        let info = b.step_into(action(&space, t, &mut torque), &mut row).expect("step_into");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&step.obs), bits(&row), "{}: observation of step {t}", a.id());
        assert_eq!(
            (step.reward.to_bits(), step.terminated, step.truncated),
            (info.reward.to_bits(), info.terminated, info.truncated),
            "{}: reward and flags of step {t}",
            a.id()
        );
        assert_eq!(step.done(), info.done());
        if step.done() {
            assert_eq!(a.reset(None).expect("reset"), b.reset(None).expect("reset"));
        }
    }
}

#[test]
fn step_into_matches_step_for_the_built_in_envs_and_wrappers() {
    for id in ["CartPole-v1", "Pendulum-v1"] {
        // `make`: the time limit (truncation at 500 and 200 steps) inside a `Box<dyn Env>`.
        assert_same_steps(make(id).expect("make"), make(id).expect("make"), 1500);
        let stats = |id| RecordEpisodeStatistics::new(make(id).expect("make"));
        assert_same_steps(stats(id), stats(id), 1500);
        let norm = |id| NormalizeObservation::new(make(id).expect("make"));
        assert_same_steps(norm(id), norm(id), 1500);
    }
    assert_same_steps(CartPole::new(), CartPole::new(), 300);
    assert_same_steps(Pendulum::new(), Pendulum::new(), 300);
    assert_same_steps(TimeLimit::new(Pendulum::new(), 7), TimeLimit::new(Pendulum::new(), 7), 50);
}

#[test]
fn record_episode_statistics_counts_steps_taken_with_step_into() {
    let mut env = RecordEpisodeStatistics::new(TimeLimit::new(CartPole::new(), 5));
    env.reset(Some(0)).expect("reset");
    let mut row = [0.0; 4];
    for _ in 0..5 {
        env.step_into(Action::Discrete(0), &mut row).expect("step_into");
    }
    let record = env.finished_episode().expect("the time limit ended the episode");
    assert_eq!((record.length, record.ret), (5, 5.0));
}

/// An env without its own `step_into`, whose `step` returns observations of `len` values.
struct Plain {
    len: usize,
    space: Space,
}

impl Env for Plain {
    fn id(&self) -> &str {
        "Plain-v0"
    }
    fn observation_space(&self) -> &Space {
        &self.space
    }
    fn action_space(&self) -> &Space {
        &self.space
    }
    fn reset(&mut self, _seed: Option<u64>) -> Result<Observation, EnvError> {
        Ok(smallvec![0.5; self.len])
    }
    fn step(&mut self, _action: Action<'_>) -> Result<Step, EnvError> {
        let obs = smallvec![1.5; self.len];
        Ok(Step { obs, reward: 2.0, terminated: true, truncated: false })
    }
}

#[test]
fn the_default_step_into_copies_step_and_checks_the_observation_length() {
    let mut env = Plain { len: 2, space: Space::Discrete(2) };
    let mut row = [0.0; 2];
    let info = env.step_into(Action::Discrete(0), &mut row).expect("step_into");
    assert_eq!(info, StepInfo { reward: 2.0, terminated: true, truncated: false });
    assert_eq!(row, [1.5, 1.5]);

    // `step` returns 2 values for an observation space of 1 dimension.
    let mut row = [0.0; 1];
    let err = env.step_into(Action::Discrete(0), &mut row).expect_err("long observation");
    assert!(matches!(err, EnvError::InvalidOutput { .. }), "{err:?}");
    let msg = err.to_string();
    for needle in ["Plain-v0", "length 2", "[1.5, 1.5]", "dimension 1"] {
        assert!(msg.contains(needle), "message '{msg}' lacks '{needle}'");
    }
    assert_eq!(row, [0.0], "the buffer is left unchanged");
}

#[test]
fn a_buffer_of_the_wrong_size_is_an_error_not_a_panic() {
    let mut envs: Vec<Box<dyn Env>> = vec![
        Box::new(CartPole::new()),
        Box::new(Pendulum::new()),
        make("CartPole-v1").expect("make"),
        make("Pendulum-v1").expect("make"),
    ];
    for env in &mut envs {
        env.reset(Some(0)).expect("reset");
        let space = env.action_space().clone();
        let dim = env.observation_space().flat_dim();
        let mut torque = [0.0];
        for len in [0, dim - 1, dim + 1] {
            let mut row = vec![0.0; len];
            let err = env
                .step_into(action(&space, 0, &mut torque), &mut row)
                .expect_err("wrong buffer size");
            assert!(matches!(err, EnvError::InvalidOutput { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(env.id()), "message '{msg}' lacks the env id");
            assert!(msg.contains(&format!("holds {len} values")), "message '{msg}'");
        }
        // The refused steps were not taken: the env still steps normally.
        let mut row = vec![0.0; dim];
        env.step_into(action(&space, 0, &mut torque), &mut row).expect("step_into");
    }
}

/// CartPole whose own `step_into` gets the reward wrong.
struct OutOfSync(CartPole);

impl Env for OutOfSync {
    fn id(&self) -> &str {
        "OutOfSync-v0"
    }
    fn observation_space(&self) -> &Space {
        self.0.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.0.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        self.0.reset(seed)
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        self.0.step(action)
    }
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        let info = self.0.step_into(action, obs)?;
        Ok(StepInfo { reward: 2.0, ..info })
    }
}

#[test]
fn check_env_reports_a_step_into_that_differs_from_step() {
    let report = rlpg_envs::check_env(&mut OutOfSync(CartPole::new()));
    assert!(report.problems.iter().any(|p| p.contains("step_into differs from step")), "{report}");
    assert!(rlpg_envs::check_env(&mut CartPole::new()).is_ok());
}
