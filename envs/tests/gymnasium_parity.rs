//! The five classic-control envs against trajectories recorded from Gymnasium 1.4 with NumPy 2.4.6
//! (`tests/data/*.json`, copied from the project's shared fixtures).
//!
//! Every step of every trajectory is replayed from the recorded state before it (`states[t-1]`,
//! or `initial_state` for `t = 0`) with the time limit's counter at `t`, and must give, **bit
//! for bit**: the `f32` observation, the state, the reward, and both end flags. Trajectories
//! that are not chaotic (the fixture's `sensitivity.first_step_with_diff_gt_1em9` is absent or
//! null) are also replayed open loop from `initial_state` with the recorded actions, again bit
//! for bit.
//!
//! Bit parity holds for every quantity of every fixture, so there is no tolerance anywhere: the
//! ports use the C library's `pow(x, 2)` where NumPy squares a `float64` scalar (Pendulum's
//! cost, Acrobot's dynamics, MountainCarContinuous's reward), which differs from `x * x` in the
//! last bit for about 0.1% of inputs, and MountainCarContinuous keeps NumPy 2's `float32`
//! arithmetic once its state is a `float32` array. (The fixtures store `float32` values as
//! their exact `float64`, and every `float64` as Python's round-trip repr.)

use std::path::Path;

use rlpg_envs::{
    Acrobot, Action, CartPole, Env, MountainCar, MountainCarContinuous, Pendulum, Step, TimeLimit,
    spec,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    env_id: String,
    constants: Constants,
    trajectories: Vec<Trajectory>,
}

#[derive(Deserialize)]
struct Constants {
    max_episode_steps: usize,
}

#[derive(Deserialize)]
struct Trajectory {
    name: String,
    initial_state: Vec<f64>,
    initial_obs: Vec<f64>,
    /// Discrete actions, `f32` torques (stored as their exact `f64`) for Pendulum, one-element
    /// `f32` arrays for MountainCarContinuous.
    actions: Vec<RecordedAction>,
    obs: Vec<Vec<f64>>,
    states: Vec<Vec<f64>>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    length: usize,
    #[serde(rename = "return")]
    ret: f64,
    #[serde(default)]
    sensitivity: Sensitivity,
}

#[derive(Deserialize, Default)]
struct Sensitivity {
    /// First step at which a 1-ulp change of the initial angle moves the state by more than
    /// 1e-9; `None` when it never does (the trajectory is not chaotic).
    #[serde(default)]
    first_step_with_diff_gt_1em9: Option<usize>,
}

/// One recorded action: a number, or (MountainCarContinuous) a one-element array.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum RecordedAction {
    Scalar(f64),
    Array([f64; 1]),
}

impl RecordedAction {
    fn value(self) -> f64 {
        match self {
            RecordedAction::Scalar(x) | RecordedAction::Array([x]) => x,
        }
    }
}

fn load(file: &str) -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("fixture {} does not parse: {e}", path.display()))
}

/// One of the five environments, wrapped in its time limit, behind one interface for the tests.
enum Sim {
    CartPole(TimeLimit<CartPole>),
    Pendulum(TimeLimit<Pendulum>),
    Acrobot(TimeLimit<Acrobot>),
    MountainCar(TimeLimit<MountainCar>),
    MountainCarContinuous(TimeLimit<MountainCarContinuous>),
}

/// The recorded `f32` values (stored as exact `f64`s) as `f32`s.
fn f32_array<const N: usize>(state: &[f64], what: &str) -> [f32; N] {
    as_f32(state, what).try_into().unwrap_or_else(|v| panic!("{what}: {v:?} has not {N} values"))
}

impl Sim {
    /// The env of `env_id` placed in `state`, with `elapsed` steps of the episode already taken.
    /// `after_step` says the state is one a step left (not a reset): for MountainCarContinuous
    /// that is a `float32` array, which changes NumPy 2's arithmetic of the next step.
    fn at(env_id: &str, state: &[f64], elapsed: usize, limit: usize, after_step: bool) -> Sim {
        let mut sim = match env_id {
            "CartPole-v1" => {
                let s: [f64; 4] = state.try_into().expect("CartPole state has 4 values");
                Sim::CartPole(TimeLimit::new(CartPole::from_state(s), limit))
            }
            "Pendulum-v1" => {
                let s: [f64; 2] = state.try_into().expect("Pendulum state has 2 values");
                Sim::Pendulum(TimeLimit::new(Pendulum::from_state(s), limit))
            }
            "Acrobot-v1" => {
                let s: [f64; 4] = state.try_into().expect("Acrobot state has 4 values");
                Sim::Acrobot(TimeLimit::new(Acrobot::from_state(s), limit))
            }
            "MountainCar-v0" => {
                let s: [f64; 2] = state.try_into().expect("MountainCar state has 2 values");
                Sim::MountainCar(TimeLimit::new(MountainCar::from_state(s), limit))
            }
            "MountainCarContinuous-v0" => {
                let env = if after_step {
                    MountainCarContinuous::from_f32_state(f32_array(state, "state after a step"))
                } else {
                    let s: [f64; 2] = state.try_into().expect("MountainCar state has 2 values");
                    MountainCarContinuous::from_state(s)
                };
                Sim::MountainCarContinuous(TimeLimit::new(env, limit))
            }
            other => panic!("fixture for unknown env {other}"),
        };
        match &mut sim {
            Sim::CartPole(e) => e.set_elapsed_steps(elapsed),
            Sim::Pendulum(e) => e.set_elapsed_steps(elapsed),
            Sim::Acrobot(e) => e.set_elapsed_steps(elapsed),
            Sim::MountainCar(e) => e.set_elapsed_steps(elapsed),
            Sim::MountainCarContinuous(e) => e.set_elapsed_steps(elapsed),
        }
        sim
    }

    fn step(&mut self, action: RecordedAction) -> Step {
        let discrete = |n: usize| {
            let a = action.value();
            assert!(a.fract() == 0.0 && (0.0..n as f64).contains(&a), "discrete action {a}");
            Action::Discrete(a as usize)
        };
        let u = [action.value() as f32];
        assert_eq!(f64::from(u[0]), action.value(), "continuous action is not an f32");
        let continuous = Action::Continuous(&u);
        match self {
            Sim::CartPole(e) => e.step(discrete(2)),
            Sim::Pendulum(e) => e.step(continuous),
            Sim::Acrobot(e) => e.step(discrete(3)),
            Sim::MountainCar(e) => e.step(discrete(3)),
            Sim::MountainCarContinuous(e) => e.step(continuous),
        }
        .expect("valid step")
    }

    fn state(&self) -> Vec<f64> {
        match self {
            Sim::CartPole(e) => e.inner().state().to_vec(),
            Sim::Pendulum(e) => e.inner().state().to_vec(),
            Sim::Acrobot(e) => e.inner().state().to_vec(),
            Sim::MountainCar(e) => e.inner().state().to_vec(),
            Sim::MountainCarContinuous(e) => e.inner().state().to_vec(),
        }
    }

    fn observation(&self) -> Vec<f32> {
        match self {
            Sim::CartPole(e) => e.inner().observation().to_vec(),
            Sim::Pendulum(e) => e.inner().observation().to_vec(),
            Sim::Acrobot(e) => e.inner().observation().to_vec(),
            Sim::MountainCar(e) => e.inner().observation().to_vec(),
            Sim::MountainCarContinuous(e) => e.inner().observation().to_vec(),
        }
    }
}

/// The recorded `f32` observation (stored as exact `f64`s) as `f32`s.
fn as_f32(recorded: &[f64], what: &str) -> Vec<f32> {
    recorded
        .iter()
        .map(|&x| {
            let y = x as f32;
            assert_eq!(f64::from(y), x, "{what}: recorded value {x} is not an f32");
            y
        })
        .collect()
}

/// Differences between one simulated step and the recorded one, as messages.
fn compare_step(
    label: &str,
    traj: &Trajectory,
    t: usize,
    step: &Step,
    state: &[f64],
    problems: &mut Vec<String>,
) {
    let expected_obs = as_f32(&traj.obs[t], label);
    let bits32 = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    if bits32(&step.obs) != bits32(&expected_obs) {
        problems
            .push(format!("{label} step {t}: obs {:?} != Gymnasium {expected_obs:?}", step.obs));
    }
    assert_eq!(state.len(), traj.states[t].len(), "{label} step {t}: state length");
    for (i, (&got, &want)) in state.iter().zip(&traj.states[t]).enumerate() {
        if got.to_bits() != want.to_bits() {
            problems.push(format!(
                "{label} step {t}: state[{i}] {got:e} != Gymnasium {want:e} (rel. diff {:e})",
                (got - want).abs() / want.abs()
            ));
        }
    }
    if step.reward.to_bits() != traj.rewards[t].to_bits() {
        problems.push(format!(
            "{label} step {t}: reward {:e} != Gymnasium {:e}",
            step.reward, traj.rewards[t]
        ));
    }
    if (step.terminated, step.truncated) != (traj.terminated[t], traj.truncated[t]) {
        problems.push(format!(
            "{label} step {t}: (terminated, truncated) = ({}, {}) != Gymnasium ({}, {})",
            step.terminated, step.truncated, traj.terminated[t], traj.truncated[t]
        ));
    }
}

fn check_well_formed(fixture: &Fixture, traj: &Trajectory) {
    let n = traj.length;
    for (what, len) in [
        ("actions", traj.actions.len()),
        ("obs", traj.obs.len()),
        ("states", traj.states.len()),
        ("rewards", traj.rewards.len()),
        ("terminated", traj.terminated.len()),
        ("truncated", traj.truncated.len()),
    ] {
        assert_eq!(
            len, n,
            "{} {}: {what} has {len} entries, length is {n}",
            fixture.env_id, traj.name
        );
    }
    let sum: f64 = traj.rewards.iter().sum();
    assert!(
        (sum - traj.ret).abs() <= 1e-9 * n as f64,
        "{}: rewards sum to {sum}, return {}",
        traj.name,
        traj.ret
    );
}

/// Every step from the recorded state before it, with the time limit's counter at `t`.
fn replay_step_by_step(file: &str) {
    let fixture = load(file);
    let limit = fixture.constants.max_episode_steps;
    let registered = spec(&fixture.env_id).expect("fixture env is registered");
    assert_eq!(registered.max_episode_steps, Some(limit), "registered time limit differs");
    assert!(!fixture.trajectories.is_empty(), "{file} has no trajectories");

    let mut problems = Vec::new();
    let mut steps = 0;
    for traj in &fixture.trajectories {
        check_well_formed(&fixture, traj);
        let initial = Sim::at(&fixture.env_id, &traj.initial_state, 0, limit, false);
        let initial_obs = as_f32(&traj.initial_obs, &traj.name);
        if initial.observation() != initial_obs {
            problems.push(format!(
                "{}: initial obs {:?} != Gymnasium {initial_obs:?}",
                traj.name,
                initial.observation()
            ));
        }
        for t in 0..traj.length {
            let before = if t == 0 { &traj.initial_state } else { &traj.states[t - 1] };
            let mut sim = Sim::at(&fixture.env_id, before, t, limit, t > 0);
            let step = sim.step(traj.actions[t]);
            compare_step(&traj.name, traj, t, &step, &sim.state(), &mut problems);
            steps += 1;
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {steps} {} steps differ from Gymnasium 1.4; first ones:\n{}",
        problems.len(),
        fixture.env_id,
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Non-chaotic trajectories replayed open loop from `initial_state`.
fn replay_open_loop(file: &str) {
    let fixture = load(file);
    let limit = fixture.constants.max_episode_steps;
    let mut problems = Vec::new();
    let mut replayed = 0;
    for traj in
        fixture.trajectories.iter().filter(|t| t.sensitivity.first_step_with_diff_gt_1em9.is_none())
    {
        let mut sim = Sim::at(&fixture.env_id, &traj.initial_state, 0, limit, false);
        for t in 0..traj.length {
            let step = sim.step(traj.actions[t]);
            compare_step(
                &format!("{} (open loop)", traj.name),
                traj,
                t,
                &step,
                &sim.state(),
                &mut problems,
            );
        }
        replayed += 1;
    }
    assert!(replayed > 0, "{file}: no non-chaotic trajectory to replay open loop");
    assert!(
        problems.is_empty(),
        "{} open-loop differences from Gymnasium 1.4; first ones:\n{}",
        problems.len(),
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn cartpole_matches_gymnasium_step_by_step() {
    replay_step_by_step("cartpole_v1.json");
}

#[test]
fn pendulum_matches_gymnasium_step_by_step() {
    replay_step_by_step("pendulum_v1.json");
}

#[test]
fn cartpole_matches_gymnasium_open_loop_where_not_chaotic() {
    replay_open_loop("cartpole_v1.json");
}

#[test]
fn pendulum_matches_gymnasium_open_loop_where_not_chaotic() {
    replay_open_loop("pendulum_v1.json");
}

#[test]
fn acrobot_matches_gymnasium_step_by_step() {
    replay_step_by_step("acrobot_v1.json");
}

#[test]
fn acrobot_matches_gymnasium_open_loop_where_not_chaotic() {
    replay_open_loop("acrobot_v1.json");
}

#[test]
fn mountain_car_matches_gymnasium_step_by_step() {
    replay_step_by_step("mountaincar_v0.json");
}

#[test]
fn mountain_car_matches_gymnasium_open_loop_where_not_chaotic() {
    replay_open_loop("mountaincar_v0.json");
}

#[test]
fn mountain_car_continuous_matches_gymnasium_step_by_step() {
    replay_step_by_step("mountaincarcontinuous_v0.json");
}

#[test]
fn mountain_car_continuous_matches_gymnasium_open_loop_where_not_chaotic() {
    replay_open_loop("mountaincarcontinuous_v0.json");
}
