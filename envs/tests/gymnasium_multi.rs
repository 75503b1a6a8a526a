//! Gymnasium's MultiDiscrete and MultiBinary spaces, sb3-contrib's `action_masks()` and the
//! `info` dict through the bridge, in this process and in worker processes (the same results),
//! and what goes wrong there named by env, step and value. Needs the venv of `scripts/setup.sh
//! --gymnasium`; the envs are `tests/data/python/multi_envs.py`, put on the `PYTHONPATH`.

use std::sync::Once;
use std::time::Duration;

mod common;
use common::trajectory;

use rlpg_envs::gymnasium::{GymnasiumEnv, worker_vec_env};
use rlpg_envs::{Action, Env, InfoKey, Space, TimeLimit, VecActions, VecEnv, check_env};

const SHELVES: &str = "gymnasium:multi_envs:Shelves-v0";
const SWITCHES: &str = "gymnasium:multi_envs:Switches-v0";
const INFOS: &[InfoKey] = &[InfoKey::last("lost"), InfoKey::sum("ordered")];

fn python_path() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/python");
        // SAFETY: every test calls this first, so no other thread reads the environment while
        // it is written (`Once` makes the others wait).
        unsafe { std::env::set_var("PYTHONPATH", dir) };
    });
}

fn make(id: &str, kwargs: serde_json::Value) -> GymnasiumEnv {
    python_path();
    let kwargs = kwargs.as_object().cloned().unwrap_or_default();
    GymnasiumEnv::new(id, &kwargs).expect("make").with_info_keys(INFOS)
}

#[test]
fn multi_part_spaces_masks_and_infos_map_to_rlpgs() {
    let mut env = make(SHELVES, serde_json::json!({}));
    assert_eq!(env.action_space(), &Space::MultiDiscrete(vec![4, 4]));
    assert_eq!(env.observation_space(), &Space::MultiDiscrete(vec![6, 6]), "counted from 0");
    assert!(env.masks_actions(), "the env has action_masks()");
    let obs = env.reset(Some(3)).expect("reset");
    let stock: Vec<usize> = obs.iter().map(|&v| v as usize).collect();
    let mut mask = [false; 8];
    env.action_mask(&mut mask).expect("mask");
    for (i, &s) in stock.iter().enumerate() {
        for q in 0..4 {
            assert_eq!(mask[4 * i + q], s + q <= 5, "stock {s}, order {q}");
        }
    }
    // rlpg's order [0, 1] is Gymnasium's [1, 2] (start 1): it always fits, as order 0 does.
    let _ = env.step(Action::MultiDiscrete(&[0, 0])).expect("an empty order fits");
    let mut infos = [f64::NAN; 2];
    env.step_infos(&mut infos);
    assert!(infos[0] >= 0.0 && infos[1] == 0.0, "lost sales and nothing ordered: {infos:?}");
    let report = check_env(&mut TimeLimit::new(make(SHELVES, serde_json::json!({})), 30));
    assert!(report.is_ok(), "{report}");
    let mut switches = make(SWITCHES, serde_json::json!({}));
    assert_eq!(switches.action_space(), &Space::MultiBinary(4));
    assert_eq!(switches.observation_space(), &Space::MultiBinary(4));
    let report = check_env(&mut switches);
    assert!(report.is_ok(), "{report}");
}

#[test]
fn worker_processes_give_the_in_process_masks_and_infos_bit_for_bit() {
    for (id, n, workers, steps) in [(SHELVES, 4, 2, 70), (SWITCHES, 3, 2, 50)] {
        let kw = serde_json::Map::new();
        let envs = (0..n).map(|_| Box::new(make(id, serde_json::json!({}))) as Box<dyn Env>);
        let mut alone = VecEnv::new(envs.collect()).expect("vec");
        assert!(alone.mask_len() > 0, "{id} masks actions");
        let reference = trajectory(&mut alone, steps);
        assert!(reference.iter().any(|s| s.contains("EpisodeRecord")), "{id}: an episode ends");
        let probe = make(id, serde_json::json!({}));
        let mut remote = worker_vec_env(id, &kw, &probe, n, workers, Duration::from_secs(30))
            .expect("workers start");
        assert_eq!(remote.info_keys(), alone.info_keys());
        let ours = trajectory(&mut remote, steps);
        for (t, (a, b)) in reference.iter().zip(&ours).enumerate() {
            assert_eq!(a, b, "{id}: output {t} differs from the in-process bridge");
        }
    }
}

#[test]
fn a_mask_of_the_wrong_length_a_text_info_and_an_order_out_of_bounds_are_named() {
    let kw = |bad: &str| serde_json::json!({ bad: true }).as_object().cloned().unwrap_or_default();
    for workers in [0, 2] {
        let vec_of = |kwargs: serde_json::Map<String, serde_json::Value>| {
            let probe = GymnasiumEnv::new(SHELVES, &kwargs).expect("make").with_info_keys(INFOS);
            if workers == 0 {
                let envs = (0..2).map(|_| {
                    let env = GymnasiumEnv::new(SHELVES, &kwargs).expect("make");
                    Box::new(env.with_info_keys(INFOS)) as Box<dyn Env>
                });
                VecEnv::new(envs.collect()).expect("vec")
            } else {
                worker_vec_env(SHELVES, &kwargs, &probe, 2, workers, Duration::from_secs(30))
                    .expect("workers")
            }
        };
        python_path();
        let err = vec_of(kw("bad_mask")).reset(Some(0)).expect_err("7 flags for 8").to_string();
        for needle in [SHELVES, "action_masks", "7 flags", "needs 8"] {
            assert!(err.contains(needle), "workers {workers}: {needle:?} missing: {err}");
        }
        let mut vec = vec_of(kw("text_info"));
        vec.reset(Some(0)).expect("reset");
        let err = vec.step(VecActions::MultiDiscrete(&[0, 0, 0, 0])).expect_err("text").to_string();
        for needle in [SHELVES, "info['lost']", "'many'", "not a number"] {
            assert!(err.contains(needle), "workers {workers}: {needle:?} missing: {err}");
        }
        let mut vec = vec_of(serde_json::Map::new());
        vec.reset(Some(0)).expect("reset");
        let err = vec.step(VecActions::MultiDiscrete(&[0, 0, 4, 0])).expect_err("4 of 4 values");
        let text = err.to_string();
        for needle in
            ["vector env slot 1", "[4, 0]", "step 1 of the episode", "MultiDiscrete([4, 4])"]
        {
            assert!(text.contains(needle), "workers {workers}: {needle:?} missing: {text}");
        }
    }
}
