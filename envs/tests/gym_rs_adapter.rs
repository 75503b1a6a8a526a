//! The gym-rs adapter (feature `gym-rs`): shapes, seeding, validation and the time limit.
#![cfg(feature = "gym-rs")]

use rlpg_envs::{
    Action, BoxSpace, Env, EnvError, GymRsEnv, MOUNTAIN_CAR_ID, Space, check_env, make, registry,
};

fn trajectory(env: &mut dyn Env, seed: u64, steps: usize) -> Vec<Vec<f32>> {
    let mut out = vec![env.reset(Some(seed)).expect("reset").to_vec()];
    for t in 0..steps {
        let step = env.step(Action::Discrete(t % 3)).expect("step");
        out.push(step.obs.to_vec());
    }
    out
}

#[test]
fn mountain_car_is_registered_with_its_spaces_and_limit() {
    let spec = registry().into_iter().find(|s| s.id == MOUNTAIN_CAR_ID).expect("registered");
    assert_eq!(spec.max_episode_steps, Some(200));
    assert_eq!(spec.action_space, Space::Discrete(3));
    assert_eq!(
        spec.observation_space,
        Space::Box(BoxSpace::new(vec![-1.2, -0.07], vec![0.6, 0.07])),
        "MountainCar observes [position, velocity]"
    );
}

#[test]
fn reset_and_step_give_two_values_inside_the_space() {
    let mut env = make(MOUNTAIN_CAR_ID).expect("registered");
    let obs = env.reset(Some(0)).expect("reset");
    assert_eq!(obs.len(), 2);
    assert!((-0.6..=-0.4).contains(&obs[0]) && obs[1] == 0.0, "start state {obs:?}");
    let step = env.step(Action::Discrete(2)).expect("step");
    assert!(env.observation_space().contains(Action::Continuous(&step.obs)), "{:?}", step.obs);
    assert_eq!(step.reward, -1.0, "MountainCar pays -1 per step");
}

#[test]
fn same_seed_same_trajectory_different_seeds_differ() {
    let mut env = make(MOUNTAIN_CAR_ID).expect("registered");
    let a = trajectory(env.as_mut(), 7, 50);
    let b = trajectory(env.as_mut(), 7, 50);
    assert_eq!(a, b, "seed 7 gave two different trajectories");
    let c = trajectory(env.as_mut(), 8, 50);
    assert_ne!(a, c, "seeds 7 and 8 gave the same trajectory");
    // reset(None) continues the adapter's stream instead of asking the OS for a seed.
    let mut x = make(MOUNTAIN_CAR_ID).expect("registered");
    let mut y = make(MOUNTAIN_CAR_ID).expect("registered");
    x.reset(Some(1)).expect("reset");
    y.reset(Some(1)).expect("reset");
    assert_eq!(x.reset(None).expect("reset"), y.reset(None).expect("reset"));
}

#[test]
fn truncated_after_200_steps() {
    let mut env = make(MOUNTAIN_CAR_ID).expect("registered");
    env.reset(Some(0)).expect("reset");
    for t in 1..=200 {
        // "Don't push": the car never reaches the goal, so only the time limit ends the episode.
        let step = env.step(Action::Discrete(1)).expect("step");
        assert!(!step.terminated, "reached the goal without pushing at step {t}");
        assert_eq!(step.truncated, t == 200, "step {t}");
    }
    let err = env.step(Action::Discrete(1)).expect_err("step after truncation");
    assert_eq!(err, EnvError::EpisodeOver { env: MOUNTAIN_CAR_ID.into() });
}

#[test]
fn invalid_actions_and_missing_resets_are_errors_not_panics() {
    let mut env = GymRsEnv::mountain_car();
    let err = env.step(Action::Discrete(0)).expect_err("step before reset");
    assert_eq!(err, EnvError::NotReset { env: MOUNTAIN_CAR_ID.into() });
    env.reset(Some(0)).expect("reset");
    for action in [Action::Discrete(3), Action::Continuous(&[1.0])] {
        let msg = env.step(action).expect_err("invalid action").to_string();
        assert!(msg.contains(MOUNTAIN_CAR_ID) && msg.contains("Discrete(3)"), "{msg}");
    }
}

#[test]
fn passes_check_env() {
    let mut env = make(MOUNTAIN_CAR_ID).expect("registered");
    let report = check_env(env.as_mut());
    assert!(report.is_ok() && report.warnings.is_empty(), "{report}");
}

/// Puts the adapter's gym-rs MountainCar and a native `MountainCar` in the same state, steps
/// both with `action`, and returns each one's observation bits, reward, terminated and state.
fn step_both(state: [f64; 2], action: usize) -> [(Vec<u32>, f64, bool, [u64; 2]); 2] {
    use gym_rs::envs::classical_control::mountain_car::MountainCarObservation;
    use rlpg_envs::MountainCar;

    let mut adapter = GymRsEnv::mountain_car();
    adapter.reset(Some(0)).expect("reset");
    adapter.inner_mut().state =
        MountainCarObservation { position: state[0].into(), velocity: state[1].into() };
    let theirs = adapter.step(Action::Discrete(action)).expect("gym-rs step");
    let s = adapter.inner().state;
    let theirs_state = [s.position.0, s.velocity.0];
    let mut native = MountainCar::from_state(state);
    let ours = native.step(Action::Discrete(action)).expect("native step");
    let bits = |obs: &[f32]| obs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    [
        (bits(&theirs.obs), theirs.reward, theirs.terminated, theirs_state.map(f64::to_bits)),
        (bits(&ours.obs), ours.reward, ours.terminated, native.state().map(f64::to_bits)),
    ]
}

#[test]
fn gym_rs_mountain_car_steps_bit_for_bit_as_the_native_mountain_car() {
    // From every state of the Gymnasium fixture (the left wall, the goal and the speed limit
    // included) with every action, then along long random trajectories of the native env.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/mountaincar_v0.json");
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let mut states: Vec<[f64; 2]> = Vec::new();
    for traj in fixture["trajectories"].as_array().expect("trajectories") {
        let as_state = |v: &serde_json::Value| -> [f64; 2] {
            [v[0].as_f64().expect("position"), v[1].as_f64().expect("velocity")]
        };
        states.push(as_state(&traj["initial_state"]));
        states.extend(traj["states"].as_array().expect("states").iter().map(as_state));
    }
    assert!(states.len() > 900, "{} fixture states", states.len());
    let mut native = rlpg_envs::MountainCar::new();
    for seed in 0..20 {
        native.reset(Some(seed)).expect("reset");
        for t in 0..200 {
            states.push(native.state());
            let step = native.step(Action::Discrete((t * 7 + seed as usize) % 3)).expect("step");
            if step.terminated {
                break;
            }
        }
    }
    let mut compared = 0;
    for state in &states {
        for action in 0..3 {
            let [theirs, ours] = step_both(*state, action);
            assert_eq!(theirs, ours, "state {state:?}, action {action}: gym-rs vs native");
            compared += 1;
        }
    }
    assert!(compared > 6000, "only {compared} steps compared");
}

#[test]
fn mountain_car_steps_on_one_thread_and_threads_are_refused_by_name() {
    // gym-rs's env holds SDL handles that are not Send: it is made as a local env, and asking
    // for it as a Send one (env_threads > 1) is an error naming it, not a build failure.
    let mut env = make(MOUNTAIN_CAR_ID).expect("registered");
    env.reset(Some(0)).expect("reset");
    let err = rlpg_envs::make_send(MOUNTAIN_CAR_ID).err().expect("refused");
    let message = err.to_string();
    assert!(message.contains(MOUNTAIN_CAR_ID) && message.contains("env_threads = 1"), "{message}");
    let entry = rlpg_envs::Registry::builtin();
    let err = entry.make_send(MOUNTAIN_CAR_ID).err().expect("refused");
    assert!(err.to_string().contains("env_threads = 1"), "{err}");
}
