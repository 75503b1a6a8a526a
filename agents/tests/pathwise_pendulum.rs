//! The pathwise agent learns Pendulum-v1 (SAC and TD3), driven by a minimal loop (act, step the
//! vector env, observe) like the trainer in the `rlpg` crate, with the default
//! `backend = "auto"` (the plain-Rust kernel on the CPU).

use std::sync::Mutex;
use std::time::Instant;

use rlpg_agents::{
    ActMode, Actions, Agent, BackendKind, Estimator, Pathwise, PathwiseConfig, Transition,
};
use rlpg_envs::{Env, VecActions, VecEnv, make};

const ENV: &str = "Pendulum-v1";

/// libtorch's generator is global: the runs hold this lock so that two tests running in
/// parallel threads cannot interleave their draws, which keeps each run reproducible.
static RNG: Mutex<()> = Mutex::new(());

fn vec_env(n: usize) -> VecEnv {
    let envs: Vec<Box<dyn Env>> =
        (0..n).map(|_| make(ENV).expect("Pendulum-v1 is registered")).collect();
    VecEnv::new(envs).expect("identical envs")
}

/// Clips continuous actions into the bounds and hands them to the env, as the trainer does.
fn to_env_actions(venv: &VecEnv, actions: &Actions, buf: &mut Vec<f32>) {
    let Actions::Floats { values, .. } = actions else { panic!("Pendulum takes floats") };
    buf.clone_from(values);
    if let rlpg_envs::Space::Box(b) = venv.action_space() {
        let d = b.dim();
        for (i, a) in buf.iter_mut().enumerate() {
            *a = a.clamp(b.low[i % d], b.high[i % d]);
        }
    }
}

/// Mean return of `episodes` deterministic episodes, one per env, seeded apart from training.
fn evaluate(agent: &mut Pathwise, episodes: usize, seed: u64) -> f64 {
    let mut venv = vec_env(episodes);
    let mut obs = venv.reset(Some(seed)).unwrap().to_vec();
    let mut returns: Vec<Option<f64>> = vec![None; episodes];
    let mut buf = Vec::new();
    let mut actions = Actions::default();
    while returns.iter().any(Option::is_none) {
        agent.act(&obs, ActMode::Deterministic, &mut actions).unwrap();
        to_env_actions(&venv, &actions, &mut buf);
        let step = venv.step(VecActions::Continuous(&buf)).unwrap();
        for ep in &step.episodes {
            returns[ep.env].get_or_insert(ep.ret);
        }
        obs.copy_from_slice(&step.obs);
    }
    returns.iter().flatten().sum::<f64>() / episodes as f64
}

/// Trains for `total` env steps on one env; returns `(env step, eval mean)` every `eval_every`
/// steps and the training time (evaluation excluded) to each of them.
fn train(
    cfg: &PathwiseConfig,
    seed: u64,
    total: usize,
    eval_every: usize,
) -> Vec<(usize, f64, f64)> {
    let _rng = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed as i64);
    let mut venv = vec_env(1);
    let mut agent = Pathwise::new(cfg, venv.observation_space(), venv.action_space(), 1).unwrap();
    assert_eq!(agent.backend(), BackendKind::Kernel, "auto takes the kernel on the CPU");
    let mut obs = venv.reset(Some(seed)).unwrap().to_vec();
    let mut buf = Vec::new();
    let mut evals = Vec::new();
    let mut train_time = 0.0;
    let mut tick = Instant::now();
    let mut actions = Actions::default();
    for step in 1..=total {
        agent.act(&obs, ActMode::Explore, &mut actions).unwrap();
        to_env_actions(&venv, &actions, &mut buf);
        let s = venv.step(VecActions::Continuous(&buf)).unwrap();
        let metrics = agent
            .observe(&Transition {
                obs: &obs,
                actions: &actions,
                rewards: &s.rewards,
                terminated: &s.terminated,
                truncated: &s.truncated,
                next_obs: &s.next_obs,
                masks: None,
                next_masks: None,
            })
            .unwrap();
        if let Some(m) = metrics {
            for (tag, v) in &m {
                assert!(v.is_finite(), "metric {tag} = {v} at step {step}");
            }
        }
        obs.copy_from_slice(&s.obs);
        if step % eval_every == 0 {
            train_time += tick.elapsed().as_secs_f64();
            let ret = evaluate(&mut agent, 10, seed + 1_000_000);
            evals.push((step, ret, train_time));
            tick = Instant::now();
        }
    }
    evals
}

#[test]
fn sac_improves_pendulum_within_3k_steps() {
    tch::set_num_threads(1);
    let evals = train(&PathwiseConfig::default(), 0, 3000, 1000);
    eprintln!("sac evals (step, mean return, train seconds): {evals:?}");
    let (_, last, _) = evals[evals.len() - 1];
    // A random policy scores about −1200; −500 needs the pendulum swung up from most starts.
    assert!(last > -500.0, "deterministic eval after 3k steps is {last:.1}, not > -500");
}

#[test]
fn td3_improves_pendulum_within_3k_steps() {
    tch::set_num_threads(1);
    let cfg = PathwiseConfig { estimator: Estimator::Td3, ..PathwiseConfig::default() };
    let evals = train(&cfg, 0, 3000, 1000);
    eprintln!("td3 evals (step, mean return, train seconds): {evals:?}");
    let (_, last, _) = evals[evals.len() - 1];
    // A random policy scores about −1200; −500 needs the pendulum swung up from most starts.
    assert!(last > -500.0, "deterministic eval after 3k steps is {last:.1}, not > -500");
}
