//! The score-function agent's importance-sampled reuse of a batch (PPO's clipped surrogate as
//! options of `[reinforce]`): at its neutral values it is REINFORCE's update bit for bit, the
//! clip bounds how far one batch moves the policy, and the target-KL stop ends the epochs.

use std::sync::Mutex;

use rlpg_agents::{ActMode, Actions, Agent, Reinforce, ReinforceConfig, Transition};
use rlpg_envs::{BoxSpace, Space};

/// Tests seed tch's global generator; hold this while building and driving an agent.
static RNG: Mutex<()> = Mutex::new(());

const ENVS: usize = 3;
const OBS: usize = 4;

fn base(backend: &str) -> ReinforceConfig {
    let mut cfg: ReinforceConfig = serde_json::from_value(serde_json::json!({
        "n_steps": 8, "hidden": [16, 12], "ent_coef": 0.01, "gae_lambda": 0.9,
        "value_minibatches": 2, "backend": backend
    }))
    .expect("settings");
    cfg.learning_rate = 0.01;
    cfg
}

/// Drives `agent` for `steps` lockstep env steps of a made-up task (deterministic
/// observations, rewards that favour action 0 / actions near 0.5) acting from `seed`'s
/// stream; returns every update's metrics.
fn drive(agent: &mut Reinforce, seed: i64, steps: usize) -> Vec<Vec<(&'static str, f64)>> {
    tch::manual_seed(seed);
    let mut metrics = Vec::new();
    let mut actions = Actions::default();
    for t in 0..steps {
        let obs: Vec<f32> =
            (0..ENVS * OBS).map(|i| ((t as f32) * 0.31 + i as f32 * 0.7).sin()).collect();
        let next: Vec<f32> =
            (0..ENVS * OBS).map(|i| ((t as f32 + 1.0) * 0.31 + i as f32 * 0.7).sin()).collect();
        agent.act(&obs, ActMode::Explore, &mut actions).expect("act");
        let rewards: Vec<f64> = match &actions {
            Actions::Indices { values, .. } => {
                values.iter().map(|&a| if a == 0 { 1.0 } else { 0.0 }).collect()
            }
            Actions::Floats { values, width } => values
                .chunks(*width)
                .map(|row| -row.iter().map(|&x| f64::from(x - 0.5).powi(2)).sum::<f64>())
                .collect(),
        };
        let terminated: Vec<bool> = (0..ENVS).map(|e| (t + e) % 7 == 6).collect();
        let truncated = vec![false; ENVS];
        let out = agent
            .observe(&Transition {
                obs: &obs,
                actions: &actions,
                rewards: &rewards,
                terminated: &terminated,
                truncated: &truncated,
                next_obs: &next,
                masks: None,
                next_masks: None,
            })
            .expect("observe");
        metrics.extend(out);
    }
    metrics
}

fn spaces() -> [Space; 2] {
    [Space::Discrete(3), Space::Box(BoxSpace::uniform(2, -1.0, 1.0))]
}

fn obs_space() -> Space {
    Space::Box(BoxSpace::uniform(OBS, -1.0, 1.0))
}

fn metric(update: &[(&'static str, f64)], name: &str) -> f64 {
    update.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap_or(f64::NAN)
}

/// One epoch, one minibatch (`batch_size` = the whole batch) and a clip range and KL target
/// too wide to bind take the clipped surrogate's path (ratio, clamp, minimum, KL statistics)
/// and must leave every parameter and optimizer moment exactly where REINFORCE's single step
/// leaves them, on both backends: at θ_old the ratio is exactly 1 and `min` splits its
/// gradient evenly between two equal terms.
#[test]
fn neutral_reuse_options_are_reinforces_update_bit_for_bit() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for backend in ["kernel", "libtorch"] {
        for action in spaces() {
            let plain = base(backend);
            let neutral = ReinforceConfig {
                n_epochs: 1,
                batch_size: Some(plain.n_steps * ENVS),
                clip_range: Some(1e6),
                target_kl: Some(1e6),
                ..plain.clone()
            };
            let mut agents = [&plain, &neutral].map(|cfg| {
                tch::manual_seed(5);
                Reinforce::new(cfg, &obs_space(), &action, ENVS).expect("agent")
            });
            let m0 = drive(&mut agents[0], 11, 40);
            let m1 = drive(&mut agents[1], 11, 40);
            assert_eq!(m0.len(), 5, "five updates");
            for (a, b) in m0.iter().zip(&m1) {
                for key in ["losses/policy_loss", "losses/value_loss", "losses/approx_kl"] {
                    assert_eq!(metric(a, key), metric(b, key), "{backend} {action:?}: {key}");
                }
                assert_eq!(metric(b, "losses/clip_fraction"), 0.0);
                assert_eq!(metric(b, "losses/epochs"), 1.0);
            }
            let (ta, tb) = (agents[0].named_tensors(), agents[1].named_tensors());
            assert_eq!(ta.len(), tb.len());
            for ((name, a), (_, b)) in ta.iter().zip(&tb) {
                assert!(a.equal(b), "{backend} {action:?}: '{name}' differs");
            }
        }
    }
}

/// The same batch reused for 10 epochs of minibatches: without a clip the policy runs far from
/// the one that collected the batch; with `clip_range = 0.05` the clipped samples stop pulling
/// and the KL divergence from the old policy stays several times smaller; some samples are
/// reported clipped.
#[test]
fn the_clip_bounds_how_far_a_reused_batch_moves_the_policy() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for action in spaces() {
        let run = |clip: Option<f64>| {
            let cfg = ReinforceConfig {
                n_epochs: 10,
                batch_size: Some(6),
                clip_range: clip,
                ..base("auto")
            };
            tch::manual_seed(5);
            let mut agent = Reinforce::new(&cfg, &obs_space(), &action, ENVS).expect("agent");
            drive(&mut agent, 11, 8)
        };
        let (free, clipped) = (run(None), run(Some(0.05)));
        let (kl_free, kl_clipped) =
            (metric(&free[0], "losses/approx_kl"), metric(&clipped[0], "losses/approx_kl"));
        let fraction = metric(&clipped[0], "losses/clip_fraction");
        eprintln!("{action:?}: KL unclipped {kl_free:.3e}, clipped {kl_clipped:.3e}, {fraction}");
        assert!(kl_free > 3.0 * kl_clipped, "{action:?}: KL {kl_free} vs clipped {kl_clipped}");
        assert!(fraction > 0.0 && fraction < 1.0, "{action:?}: clip fraction {fraction}");
        assert!(free[0].iter().all(|(n, _)| *n != "losses/clip_fraction"));
    }
}

/// With a KL target the epochs stop once a minibatch's KL exceeds 1.5 × the target (never
/// before the first step); a loose target lets all of them run.
#[test]
fn the_target_kl_stops_the_epochs_early() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for action in spaces() {
        let epochs = |target: f64| {
            let cfg = ReinforceConfig {
                n_epochs: 10,
                batch_size: Some(6),
                clip_range: Some(0.2),
                target_kl: Some(target),
                ..base("auto")
            };
            tch::manual_seed(5);
            let mut agent = Reinforce::new(&cfg, &obs_space(), &action, ENVS).expect("agent");
            metric(&drive(&mut agent, 11, 8)[0], "losses/epochs")
        };
        let (tight, loose) = (epochs(1e-5), epochs(1e3));
        assert!((1.0..10.0).contains(&tight), "{action:?}: {tight} epochs under a tight target");
        assert_eq!(loose, 10.0, "{action:?}: a loose target stops nothing");
    }
}

#[test]
fn bad_reuse_settings_name_the_key() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let err = |cfg: ReinforceConfig| {
        Reinforce::new(&cfg, &obs_space(), &Space::Discrete(2), ENVS).unwrap_err().to_string()
    };
    let b = base("auto");
    let e = err(ReinforceConfig { n_epochs: 0, ..b.clone() });
    assert!(e.contains("n_epochs"), "{e}");
    let e = err(ReinforceConfig { batch_size: Some(0), ..b.clone() });
    assert!(e.contains("batch_size"), "{e}");
    let e = err(ReinforceConfig { batch_size: Some(25), ..b.clone() });
    assert!(e.contains("batch_size") && e.contains("8 * 3 = 24, got 25"), "{e}");
    let e = err(ReinforceConfig { clip_range: Some(-0.2), ..b.clone() });
    assert!(e.contains("clip_range: must be a finite number > 0, got -0.2"), "{e}");
    let e = err(ReinforceConfig { clip_range_vf: Some(f64::NAN), ..b.clone() });
    assert!(e.contains("clip_range_vf"), "{e}");
    let e = err(ReinforceConfig { target_kl: Some(0.0), ..b.clone() });
    assert!(e.contains("target_kl"), "{e}");
    let e = err(ReinforceConfig { grad_diagnostics: true, batch_size: Some(4), ..b });
    assert!(e.contains("grad_diagnostics") && e.contains("batch_size"), "{e}");
}
