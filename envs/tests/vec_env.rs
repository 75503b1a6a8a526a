//! `VecEnv`: seeding, same-step autoreset, episode records, normalisation and error paths.

use rlpg_envs::{
    Action, BoxSpace, Env, EnvError, Observation, RunningMeanStd, Space, Step, VecActions, VecEnv,
    make,
};
use smallvec::smallvec;

fn vec_of(id: &str, n: usize) -> VecEnv {
    VecEnv::new((0..n).map(|_| make(id).expect("registered")).collect()).expect("same spaces")
}

fn row(v: &[f32], i: usize, dim: usize) -> &[f32] {
    &v[i * dim..(i + 1) * dim]
}

#[test]
fn reset_seeds_env_i_with_seed_plus_i() {
    let mut venv = vec_of("CartPole-v1", 3);
    let obs = venv.reset(Some(10)).expect("reset").to_vec();
    for i in 0..3 {
        let mut single = make("CartPole-v1").expect("registered");
        let expected = single.reset(Some(10 + i as u64)).expect("reset");
        assert_eq!(
            row(&obs, i, 4),
            expected.as_slice(),
            "env {i} must be reset with seed 10 + {i}"
        );
    }
}

#[test]
fn autoreset_reports_the_final_obs_in_next_obs_and_the_new_one_in_obs() {
    let n = 3;
    let mut venv = vec_of("CartPole-v1", n);
    venv.reset(Some(0)).expect("reset");
    // Replicas stepped alongside, reset by hand the way the vector env must do it.
    let mut replicas: Vec<_> = (0..n)
        .map(|i| {
            let mut e = make("CartPole-v1").expect("registered");
            e.reset(Some(i as u64)).expect("reset");
            e
        })
        .collect();
    let mut lengths = vec![0; n];
    let mut finished = 0;
    for t in 0..200 {
        // Always pushing right ends CartPole episodes after ~10 steps, at different times.
        let actions: Vec<usize> = (0..n).map(|i| usize::from((t + i) % 5 != 0)).collect();
        let out = venv.step(VecActions::Discrete(&actions)).expect("step").clone();
        let mut expected_episodes = Vec::new();
        for (i, replica) in replicas.iter_mut().enumerate() {
            let step = replica.step(Action::Discrete(actions[i])).expect("replica step");
            lengths[i] += 1;
            assert_eq!(row(&out.next_obs, i, 4), step.obs.as_slice(), "t {t} env {i}: next_obs");
            assert_eq!(out.rewards[i], step.reward, "t {t} env {i}: reward");
            assert_eq!(
                (out.terminated[i], out.truncated[i]),
                (step.terminated, step.truncated),
                "t {t} env {i}: flags"
            );
            if step.done() {
                let first = replica.reset(None).expect("replica reset");
                assert_eq!(
                    row(&out.obs, i, 4),
                    first.as_slice(),
                    "t {t} env {i}: obs must be the new episode's first observation"
                );
                assert_ne!(row(&out.obs, i, 4), row(&out.next_obs, i, 4), "t {t} env {i}");
                expected_episodes.push((i, lengths[i]));
                lengths[i] = 0;
                finished += 1;
            } else {
                assert_eq!(row(&out.obs, i, 4), row(&out.next_obs, i, 4), "t {t} env {i}");
            }
        }
        let got: Vec<_> = out.episodes.iter().map(|e| (e.env, e.length)).collect();
        assert_eq!(got, expected_episodes, "t {t}: finished episodes");
        for e in &out.episodes {
            assert_eq!(e.ret, e.length as f64, "CartPole's return is its length");
        }
    }
    assert!(finished >= 10, "only {finished} episodes finished: autoreset barely exercised");
}

#[test]
fn time_limit_truncation_is_reported_with_the_final_observation() {
    let mut venv = vec_of("Pendulum-v1", 2);
    venv.reset(Some(5)).expect("reset");
    let torques = [0.5_f32, -0.5];
    for t in 1..=200 {
        let out = venv.step(VecActions::Continuous(&torques)).expect("step");
        assert_eq!(out.truncated, vec![t == 200; 2], "step {t}");
        assert_eq!(out.terminated, vec![false; 2], "Pendulum never terminates");
        if t == 200 {
            assert_eq!(out.episodes.len(), 2, "both episodes end at step 200");
            assert!(out.episodes.iter().all(|e| e.length == 200 && e.ret < 0.0));
            assert_ne!(out.obs, out.next_obs, "obs must hold the new episodes' first obs");
        }
    }
    let out = venv.step(VecActions::Continuous(&torques)).expect("the new episodes go on");
    assert_eq!(out.truncated, vec![false; 2]);
}

#[test]
fn same_seed_same_run_and_different_seeds_differ() {
    let run = |seed| {
        let mut venv = vec_of("CartPole-v1", 4);
        let mut trace = venv.reset(Some(seed)).expect("reset").to_vec();
        for t in 0..100 {
            let actions = [t % 2, 1, 0, (t / 3) % 2];
            let out = venv.step(VecActions::Discrete(&actions)).expect("step");
            trace.extend_from_slice(&out.obs);
            trace.extend_from_slice(&out.next_obs);
        }
        trace
    };
    assert_eq!(run(3), run(3), "seed 3 gave two different runs");
    assert_ne!(run(3), run(4), "seeds 3 and 4 gave the same run");
}

#[test]
fn construction_rejects_no_envs_and_mismatched_spaces() {
    let err = VecEnv::new(Vec::new()).expect_err("empty vector env");
    assert!(err.to_string().contains("at least one environment"), "{err}");
    let envs = vec![
        make("CartPole-v1").expect("registered"),
        make("CartPole-v1").expect("registered"),
        make("Pendulum-v1").expect("registered"),
    ];
    let msg = VecEnv::new(envs).expect_err("mixed spaces").to_string();
    assert!(
        msg.contains("env 2 (Pendulum-v1)")
            && msg.contains("observation space")
            && msg.contains("env 0 (CartPole-v1)"),
        "message '{msg}' must name the first mismatch"
    );
}

#[test]
fn step_before_reset_and_malformed_actions_are_errors() {
    let mut venv = vec_of("CartPole-v1", 2);
    let err = venv.step(VecActions::Discrete(&[0, 1])).expect_err("step before reset");
    assert!(matches!(err, EnvError::NotReset { .. }), "{err:?}");
    venv.reset(Some(0)).expect("reset");
    let msg = venv.step(VecActions::Discrete(&[0])).expect_err("1 action for 2 envs").to_string();
    assert!(msg.contains("1 discrete actions given for 2 envs"), "{msg}");
    let msg = venv.step(VecActions::Continuous(&[0.0, 0.0])).expect_err("wrong kind").to_string();
    assert!(msg.contains("continuous actions given but the action space is Discrete(2)"), "{msg}");
    // Shape errors are caught before any env moves, so the vector env stays usable.
    venv.step(VecActions::Discrete(&[0, 1])).expect("valid step after a shape error");
}

#[test]
fn sub_env_errors_carry_the_env_index_and_stop_the_lockstep() {
    let mut venv = vec_of("CartPole-v1", 3);
    venv.reset(Some(0)).expect("reset");
    let err = venv.step(VecActions::Discrete(&[0, 1, 7])).expect_err("action 7");
    match &err {
        EnvError::InVecEnv { index: 2, source } => {
            assert!(matches!(**source, EnvError::InvalidAction { .. }), "{source:?}")
        }
        other => panic!("expected InVecEnv for env 2, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("slot 2") && msg.contains("CartPole-v1") && msg.contains("action 7"),
        "{msg}"
    );
    // Envs 0 and 1 stepped, env 2 did not: the envs are out of lockstep until a reset.
    let again = venv.step(VecActions::Discrete(&[0, 1, 0])).expect_err("step after an error");
    assert!(matches!(again, EnvError::NotReset { .. }), "{again:?}");
    venv.reset(None).expect("reset");
    venv.step(VecActions::Discrete(&[0, 1, 0])).expect("step after reset");
}

/// A user env that misbehaves on a chosen step.
struct Faulty {
    fault: Fault,
    t: usize,
    space: Space,
    resets: usize,
}

#[derive(Clone, Copy)]
enum Fault {
    NanObsAtStep(usize),
    ShortObsOnReset,
    /// A step returns an observation of length 3 instead of 2.
    LongObsAtStep(usize),
    InfiniteRewardAtStep(usize),
    /// `step` returns an error (of the env itself) at this step.
    ErrorAtStep(usize),
    /// The episode terminates at this step with a NaN in its final observation.
    NanFinalObsAtStep(usize),
    /// The episode terminates at step 1; the first observation after the automatic reset has
    /// an infinite value.
    InfiniteObsOnAutoreset,
}

impl Env for Faulty {
    fn id(&self) -> &str {
        "Faulty-v0"
    }
    fn observation_space(&self) -> &Space {
        &self.space
    }
    fn action_space(&self) -> &Space {
        &self.space
    }
    fn reset(&mut self, _seed: Option<u64>) -> Result<Observation, EnvError> {
        self.t = 0;
        self.resets += 1;
        Ok(match self.fault {
            Fault::ShortObsOnReset => smallvec![0.0],
            Fault::InfiniteObsOnAutoreset if self.resets > 1 => smallvec![f32::INFINITY, 0.0],
            _ => smallvec![0.0, 0.0],
        })
    }
    fn step(&mut self, _action: Action<'_>) -> Result<Step, EnvError> {
        self.t += 1;
        let obs = match self.fault {
            Fault::NanObsAtStep(k) | Fault::NanFinalObsAtStep(k) if k == self.t => {
                smallvec![0.5, f32::NAN]
            }
            Fault::LongObsAtStep(k) if k == self.t => smallvec![0.5, 0.5, 0.5],
            Fault::ErrorAtStep(k) if k == self.t => {
                return Err(EnvError::Other { env: self.id().into(), message: "broken".into() });
            }
            _ => smallvec![0.5, 0.5],
        };
        let reward = match self.fault {
            Fault::InfiniteRewardAtStep(k) if k == self.t => f64::NEG_INFINITY,
            _ => 0.0,
        };
        let terminated = match self.fault {
            Fault::NanFinalObsAtStep(k) => k == self.t,
            Fault::InfiniteObsOnAutoreset => true,
            _ => false,
        };
        Ok(Step { obs, reward, terminated, truncated: false })
    }
}

fn faulty(fault: Fault) -> Faulty {
    Faulty { fault, t: 0, space: Space::Box(BoxSpace::uniform(2, -1.0, 1.0)), resets: 0 }
}

/// Two envs: env 0 well-behaved, env 1 with the given fault.
fn faulty_vec(fault_in_env_1: Fault) -> VecEnv {
    faulty_pair(Fault::NanObsAtStep(usize::MAX), fault_in_env_1)
}

fn faulty_pair(fault_in_env_0: Fault, fault_in_env_1: Fault) -> VecEnv {
    let envs: Vec<Box<dyn Env>> =
        vec![Box::new(faulty(fault_in_env_0)), Box::new(faulty(fault_in_env_1))];
    VecEnv::new(envs).expect("same spaces")
}

/// The error's message, after checking that it is an `InVecEnv` error for env `index`.
fn message_for_env(err: &EnvError, index: usize) -> String {
    assert!(
        matches!(err, EnvError::InVecEnv { index: i, .. } if *i == index),
        "expected an error of env {index}, got {err:?}"
    );
    err.to_string()
}

#[test]
fn an_empty_observation_space_is_rejected() {
    let empty = Space::Box(BoxSpace::new(Vec::new(), Vec::new()));
    let env = Faulty { space: empty, ..faulty(Fault::NanObsAtStep(usize::MAX)) };
    let msg = VecEnv::new(vec![Box::new(env)]).expect_err("empty observations").to_string();
    assert!(msg.contains("Faulty-v0 has the empty observation space"), "{msg}");
}

#[test]
fn untrusted_outputs_are_rejected_naming_env_index_step_and_value() {
    let actions = [0.0_f32; 4];

    let mut venv = faulty_vec(Fault::NanObsAtStep(3));
    venv.reset(Some(0)).expect("reset");
    venv.step(VecActions::Continuous(&actions)).expect("step 1");
    venv.step(VecActions::Continuous(&actions)).expect("step 2");
    let err = venv.step(VecActions::Continuous(&actions)).expect_err("NaN at step 3");
    assert!(
        matches!(&err, EnvError::InVecEnv { index: 1, source } if matches!(**source, EnvError::InvalidOutput { .. })),
        "{err:?}"
    );
    let msg = err.to_string();
    for needle in ["slot 1", "Faulty-v0", "step 3 of the episode", "NaN", "index 1"] {
        assert!(msg.contains(needle), "message '{msg}' lacks '{needle}'");
    }

    let mut venv = faulty_vec(Fault::ShortObsOnReset);
    let msg = venv.reset(Some(0)).expect_err("short observation").to_string();
    for needle in ["slot 1", "Faulty-v0", "reset", "length 1", "dimension 2"] {
        assert!(msg.contains(needle), "message '{msg}' lacks '{needle}'");
    }

    let mut venv = faulty_vec(Fault::LongObsAtStep(2));
    venv.reset(Some(0)).expect("reset");
    venv.step(VecActions::Continuous(&actions)).expect("step 1");
    let msg = venv.step(VecActions::Continuous(&actions)).expect_err("long obs").to_string();
    for needle in ["slot 1", "Faulty-v0", "step 2 of the episode", "length 3", "dimension 2"] {
        assert!(msg.contains(needle), "message '{msg}' lacks '{needle}'");
    }

    let mut venv = faulty_vec(Fault::InfiniteRewardAtStep(1));
    venv.reset(Some(0)).expect("reset");
    let msg = venv.step(VecActions::Continuous(&actions)).expect_err("-inf reward").to_string();
    for needle in ["slot 1", "Faulty-v0", "step 1 of the episode", "non-finite reward -inf"] {
        assert!(msg.contains(needle), "message '{msg}' lacks '{needle}'");
    }
    // The rejected reward never reaches the running returns: the snapshot a fault checkpoint
    // saves stays finite, so it round-trips through JSON (which has no infinity).
    let json = serde_json::to_string(&venv.snapshot()).expect("serialise");
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(value["episode_returns"], serde_json::json!([0.0, 0.0]), "{json}");
    let _: rlpg_envs::VecEnvSnapshot =
        serde_json::from_str(&json).expect("the snapshot reads back");
}

#[test]
fn when_several_envs_fail_in_one_step_the_lowest_index_is_named() {
    let actions = [0.0_f32; 4];
    // Both outputs are checked after the whole batch stepped; env 0's is named.
    let mut venv = faulty_pair(Fault::NanObsAtStep(2), Fault::InfiniteRewardAtStep(2));
    venv.reset(Some(0)).expect("reset");
    venv.step(VecActions::Continuous(&actions)).expect("step 1");
    let err = venv.step(VecActions::Continuous(&actions)).expect_err("two faults at step 2");
    let msg = message_for_env(&err, 0);
    assert!(msg.contains("step 2 of the episode") && msg.contains("NaN"), "{msg}");

    // Env 1's own error stops the loop, but env 0 stepped first with an invalid output.
    let mut venv = faulty_pair(Fault::NanObsAtStep(1), Fault::ErrorAtStep(1));
    venv.reset(Some(0)).expect("reset");
    let err = venv.step(VecActions::Continuous(&actions)).expect_err("two faults at step 1");
    let msg = message_for_env(&err, 0);
    assert!(msg.contains("step 1 of the episode") && msg.contains("NaN"), "{msg}");

    // Alone, env 1's error is returned as it is, and the envs need a reset.
    let mut venv = faulty_vec(Fault::ErrorAtStep(1));
    venv.reset(Some(0)).expect("reset");
    let err = venv.step(VecActions::Continuous(&actions)).expect_err("error at step 1");
    assert!(message_for_env(&err, 1).contains("broken"), "{err}");
    let again = venv.step(VecActions::Continuous(&actions)).expect_err("out of lockstep");
    assert!(matches!(again, EnvError::NotReset { .. }), "{again:?}");
}

#[test]
fn an_invalid_final_observation_is_reported_although_the_env_is_reset() {
    let actions = [0.0_f32; 4];
    let mut venv = faulty_vec(Fault::NanFinalObsAtStep(3));
    venv.reset(Some(0)).expect("reset");
    venv.step(VecActions::Continuous(&actions)).expect("step 1");
    venv.step(VecActions::Continuous(&actions)).expect("step 2");
    let err = venv.step(VecActions::Continuous(&actions)).expect_err("NaN final observation");
    let msg = message_for_env(&err, 1);
    for needle in ["Faulty-v0", "step 3 of the episode", "NaN", "index 1"] {
        assert!(msg.contains(needle), "message '{msg}' lacks '{needle}'");
    }
    let again = venv.step(VecActions::Continuous(&actions)).expect_err("needs a reset");
    assert!(matches!(again, EnvError::NotReset { .. }), "{again:?}");
    venv.reset(None).expect("a reset makes the vector env usable again");
}

#[test]
fn an_invalid_first_observation_after_an_autoreset_is_reported() {
    let actions = [0.0_f32; 4];
    let mut venv = faulty_vec(Fault::InfiniteObsOnAutoreset);
    venv.reset(Some(0)).expect("the first reset is valid");
    let err = venv.step(VecActions::Continuous(&actions)).expect_err("inf after autoreset");
    let msg = message_for_env(&err, 1);
    for needle in ["Faulty-v0", "reset", "inf", "index 0"] {
        assert!(msg.contains(needle), "message '{msg}' lacks '{needle}'");
    }
}

#[test]
fn normalisation_uses_shared_statistics_updated_with_the_new_obs() {
    let n = 4;
    let mut venv = vec_of("Pendulum-v1", n);
    venv.enable_obs_normalization(10.0);
    let mut rms = RunningMeanStd::new(3);
    let obs = venv.reset(Some(1)).expect("reset").to_vec();
    rms.update(venv.raw_obs());
    let mut expected = vec![0.0; n * 3];
    rms.normalize(venv.raw_obs(), &mut expected, 1e-8, 10.0);
    assert_eq!(obs, expected, "reset observations normalised with the updated statistics");

    for t in 0..250 {
        let torques: Vec<f32> = (0..n).map(|i| ((t + i) % 5) as f32 - 2.0).collect();
        let out = venv.step(VecActions::Continuous(&torques)).expect("step").clone();
        rms.update(venv.raw_obs());
        let mut obs = vec![0.0; n * 3];
        let mut next = vec![0.0; n * 3];
        rms.normalize(venv.raw_obs(), &mut obs, 1e-8, 10.0);
        rms.normalize(venv.raw_next_obs(), &mut next, 1e-8, 10.0);
        assert_eq!(out.obs, obs, "t {t}: obs");
        assert_eq!(out.next_obs, next, "t {t}: next_obs (final observations normalised too)");
    }
    assert_eq!(venv.obs_rms(), Some(&rms), "the vector env's statistics");

    // Evaluation: frozen statistics.
    venv.set_obs_normalization_training(false);
    assert!(!venv.obs_normalization_training());
    venv.reset(Some(9)).expect("reset");
    venv.step(VecActions::Continuous(&[1.0; 4])).expect("step");
    assert_eq!(venv.obs_rms(), Some(&rms), "frozen statistics moved");
}

#[test]
fn saved_statistics_can_be_restored() {
    let mut venv = vec_of("Pendulum-v1", 2);
    let err = venv.set_obs_rms(RunningMeanStd::new(3)).expect_err("normalisation is off");
    assert!(err.to_string().contains("enable it before"), "{err}");
    venv.enable_obs_normalization(5.0);
    let err = venv.set_obs_rms(RunningMeanStd::new(2)).expect_err("wrong dimension");
    assert!(err.to_string().contains("dimension 2 but observations have 3"), "{err}");
    let saved = RunningMeanStd::with_initial_count(3, 42.0);
    venv.set_obs_rms(saved.clone()).expect("restore");
    venv.set_obs_normalization_training(false);
    let obs = venv.reset(Some(0)).expect("reset").to_vec();
    let mut expected = vec![0.0; 6];
    saved.normalize(venv.raw_obs(), &mut expected, 1e-8, 5.0);
    assert_eq!(obs, expected, "observations normalised with the restored statistics");
    assert_eq!(venv.obs_rms(), Some(&saved));
}

#[test]
fn envs_that_clip_step_out_of_bounds_actions_as_their_clip_and_refuse_nan() {
    // Pendulum clips as Gymnasium does: VecEnv passes the values through, the env clips.
    let mut clipped = vec_of("Pendulum-v1", 2);
    let mut bounds = vec_of("Pendulum-v1", 2);
    clipped.reset(Some(4)).expect("reset");
    bounds.reset(Some(4)).expect("reset");
    for _ in 0..5 {
        let a = clipped.step(VecActions::Continuous(&[-7.5, 2.25])).expect("clipped").clone();
        let b = bounds.step(VecActions::Continuous(&[-2.0, 2.0])).expect("bounds").clone();
        assert_eq!(a.next_obs, b.next_obs, "observations");
        assert_eq!(
            a.rewards.iter().map(|r| r.to_bits()).collect::<Vec<_>>(),
            b.rewards.iter().map(|r| r.to_bits()).collect::<Vec<_>>(),
            "rewards"
        );
    }
    let err = clipped.step(VecActions::Continuous(&[0.0, f32::NAN])).expect_err("NaN torque");
    match &err {
        EnvError::InVecEnv { index: 1, source } => {
            assert!(matches!(**source, EnvError::InvalidAction { .. }), "{source:?}")
        }
        other => panic!("expected InVecEnv for env 1, got {other:?}"),
    }
}
