//! Helpers shared by the tests of vector envs stepped elsewhere than on the calling thread
//! (`vec_env_threads.rs`, `gymnasium_workers.rs`): pseudo-random actions and exact records of
//! what a vector env returned.
#![allow(dead_code)]

use rlpg_envs::{ActionBuf, EnvError, Space, VecActions, VecEnv, VecStep};

/// Steps `vec` with step `t`'s pseudo-random actions (the same for every run), inside the
/// action space.
pub fn step_pseudo_random(vec: &mut VecEnv, t: usize) -> Result<&VecStep, EnvError> {
    let n = vec.num_envs();
    let hash = |i: usize| ((t * 7919 + i * 104_729) % 1000) as f32 / 1000.0;
    match vec.action_space().clone() {
        Space::Discrete(k) => {
            let actions: Vec<usize> = (0..n).map(|i| (t * 31 + i * 17) % k).collect();
            vec.step(VecActions::Discrete(&actions))
        }
        Space::Box(b) => {
            let d = b.dim();
            let values: Vec<f32> = (0..n * d)
                .map(|j| b.low[j % d] + (b.high[j % d] - b.low[j % d]) * hash(j))
                .collect();
            vec.step(VecActions::Continuous(&values))
        }
        space => {
            // Multi-part actions: each env's drawn uniformly within its mask, from a generator
            // seeded with `t`.
            use rand::SeedableRng;
            let mut rng = rand_pcg::Pcg64::seed_from_u64(t as u64);
            let m = vec.mask_len();
            let draws: Vec<_> = (0..n)
                .map(|i| {
                    let mask = vec.action_masks().map(|masks| &masks[i * m..(i + 1) * m]);
                    space.sample(&mut rng, mask).expect("a valid mask")
                })
                .collect();
            match space {
                Space::MultiDiscrete(_) => {
                    let flat: Vec<usize> = draws
                        .iter()
                        .flat_map(|a| match a {
                            ActionBuf::MultiDiscrete(v) => v.clone(),
                            other => panic!("{other} is not multi-discrete"),
                        })
                        .collect();
                    vec.step(VecActions::MultiDiscrete(&flat))
                }
                Space::MultiBinary(_) => {
                    let flat: Vec<bool> = draws
                        .iter()
                        .flat_map(|a| match a {
                            ActionBuf::MultiBinary(v) => v.clone(),
                            other => panic!("{other} is not multi-binary"),
                        })
                        .collect();
                    vec.step(VecActions::MultiBinary(&flat))
                }
                other => panic!("no case here has the action space {other}"),
            }
        }
    }
}

/// The bit patterns of `values`, so that `-0.0` and `0.0` (or two NaNs) are told apart.
pub fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Everything a step returned, floats as bit patterns.
pub fn describe(step: &VecStep) -> String {
    let rewards: Vec<u64> = step.rewards.iter().map(|r| r.to_bits()).collect();
    let infos: Vec<u64> = step.infos.iter().map(|r| r.to_bits()).collect();
    format!(
        "{:?} {:?} {rewards:?} {:?} {:?} {:?} masks {:?} infos {infos:?} {:?}",
        bits(&step.obs),
        bits(&step.next_obs),
        step.terminated,
        step.truncated,
        step.episodes,
        step.action_masks,
        step.episode_infos
    )
}

/// The first observations of a seeded reset, `steps` steps, and an unseeded reset, exactly.
pub fn trajectory(vec: &mut VecEnv, steps: usize) -> Vec<String> {
    let mut out = vec![format!("{:?}", bits(vec.reset(Some(11)).expect("reset")))];
    for t in 0..steps {
        out.push(describe(step_pseudo_random(vec, t).expect("step")));
    }
    out.push(format!("{:?}", bits(vec.reset(None).expect("reset"))));
    out
}
