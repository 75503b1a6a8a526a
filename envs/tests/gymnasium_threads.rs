//! Bridge envs made from several threads at once, as the first Gymnasium envs of the process:
//! each thread's `gymnasium.make` imports its env's module lazily, and CPython 3.11 can fail
//! concurrent imports of a package and its submodules (`ImportError: ... partially initialized
//! module`, `KeyError: 'gymnasium.envs.classic_control'`). The bridge makes one env at a time.
//! Its own test binary, so that no other test has imported the env modules first. Needs the
//! venv of `scripts/setup.sh --gymnasium`.

use std::sync::{Arc, Barrier};

use rlpg_envs::Env;
use rlpg_envs::gymnasium::GymnasiumEnv;

#[test]
fn envs_of_one_package_made_in_parallel_threads_all_load() {
    // Four modules of `gymnasium.envs.classic_control`, whose package imports all of them.
    let ids = [
        "gymnasium:CartPole-v1",
        "gymnasium:Pendulum-v1",
        "gymnasium:Acrobot-v1",
        "gymnasium:MountainCar-v0",
    ];
    let start = Arc::new(Barrier::new(ids.len()));
    let threads: Vec<_> = ids
        .iter()
        .map(|&id| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                GymnasiumEnv::new(id, &serde_json::Map::new())
                    .map(|env| env.observation_space().flat_dim())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    for (id, thread) in ids.iter().zip(threads) {
        let made = thread.join().expect("thread");
        assert!(made.is_ok(), "{id}: {made:?}");
    }
}
