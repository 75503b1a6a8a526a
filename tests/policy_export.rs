//! A trained policy leaves rlpg: for every agent and action space, `rlpg::Policy` acts as
//! `rlpg eval` does, the export (`rlpg::export::export_run`) loaded by `rlpg_policy::Policy`
//! (no libtorch) agrees with it and with a libtorch computation of the manifest
//! (`common/policy_reference.rs`) on 10,000 random observations (greedy actions and
//! distributions, with and without action masks), as does every head with random weights, and
//! damaged or mismatched input is an error naming the file or the expected length. (The ONNX
//! graph is held to rlpg-policy by `scripts/check_policy_export.sh`, on the same heads.)

use std::path::{Path, PathBuf};

use rlpg::agents::ActMode;
use rlpg::checkpoint::Checkpoint;
use rlpg::envs::{Action, ActionBuf, Env, EnvError, Observation, Space, Step};
use rlpg::export::export_run;
use rlpg::run::{
    EnvSource, build_agent, default_eval_checkpoint, evaluate_run, registry_factory, train,
};
use rlpg::trainer::{ActionAdapter, OBS_CLIP};
use rlpg::{AgentKind, Config, Policy};

mod common;
use common::Scratch;
#[path = "../policy/examples/common/fixtures.rs"]
mod fixtures;
#[path = "common/policy_reference.rs"]
mod reference;

/// One combination of agent, estimator and action space, with a short training run.
struct Combo {
    name: &'static str,
    env: &'static str,
    agent: AgentKind,
    sets: &'static [&'static str],
}

fn combos() -> Vec<Combo> {
    vec![
        Combo {
            name: "reinforce_categorical",
            env: "CartPole-v1",
            agent: AgentKind::Reinforce,
            sets: &["total_timesteps=4096", "normalize_obs=true", "reinforce.activation=\"tanh\""],
        },
        Combo {
            name: "reinforce_gaussian_log_std_parameter",
            env: "Pendulum-v1",
            agent: AgentKind::Reinforce,
            sets: &["total_timesteps=4096", "normalize_obs=true", "reinforce.activation=\"elu\""],
        },
        Combo {
            name: "reinforce_gaussian_state_dependent",
            env: "Pendulum-v1",
            agent: AgentKind::Reinforce,
            sets: &["total_timesteps=4096", "reinforce.state_dependent_std=true"],
        },
        Combo {
            name: "pathwise_sac_squashed_gaussian",
            env: "Pendulum-v1",
            agent: AgentKind::Pathwise,
            sets: &["total_timesteps=600", "pathwise.learning_starts=100", "normalize_obs=true"],
        },
        Combo {
            name: "pathwise_td3_deterministic",
            env: "Pendulum-v1",
            agent: AgentKind::Pathwise,
            sets: &[
                "total_timesteps=600",
                "pathwise.learning_starts=100",
                "pathwise.estimator=\"td3\"",
                "pathwise.activation=\"silu\"",
            ],
        },
        Combo {
            name: "pathwise_sac_gumbel_softmax",
            env: "CartPole-v1",
            agent: AgentKind::Pathwise,
            sets: &["total_timesteps=600", "pathwise.learning_starts=100"],
        },
        Combo {
            name: "pathwise_sac_gumbel_softmax_bounded",
            env: "CartPole-v1",
            agent: AgentKind::Pathwise,
            sets: &[
                "total_timesteps=600",
                "pathwise.learning_starts=100",
                "pathwise.logit_bound=2.0",
                "pathwise.activation=\"leaky_relu\"",
                "normalize_obs=true",
            ],
        },
    ]
}

/// The config of `combo`: short, evaluated only at the end with 3 episodes.
fn config(combo: &Combo) -> Config {
    let text = Config::new(combo.env, combo.agent).to_toml_string().expect("toml");
    let overrides: Vec<rlpg::Override> =
        ["eval_every=0", "eval_episodes=3", "checkpoint_every=0", "seed=5"]
            .iter()
            .chain(combo.sets)
            .map(|s| rlpg::Override::parse(s).expect("override"))
            .collect();
    Config::from_toml_str(&text, combo.name, &overrides).expect("config")
}

/// Trains `combo` under `root` and returns the run directory.
fn trained_run(combo: &Combo, root: &Path) -> (Config, PathBuf) {
    let config = config(combo);
    let run = train(&config, root, None, false).expect("train");
    (config, run.run_dir.path().to_owned())
}

/// Raw observations: `rows` drawn around the environment's scale (standard normal times
/// `scale`), from a small fixed generator.
fn random_observations(rows: usize, dim: usize, scale: f64, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..rows * dim)
        .map(|_| {
            let (u, v) = (1.0 - uniform(), uniform());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos() * scale) as f32
        })
        .collect()
}

/// The actions `rlpg eval` sends to the env for raw observations `obs`: the checkpoint's agent
/// acting deterministically on the normalised observations, converted by the trainer's adapter.
fn eval_actions(config: &Config, run_dir: &Path, obs: &[f32]) -> Vec<ActionBuf> {
    let probe = registry_factory(config)().expect("env");
    agent_actions(config, run_dir, probe.as_ref(), obs, None)
}

/// The greedy actions of the run's checkpointed agent for raw observations `obs` under `masks`
/// (if given), converted by the trainer's adapter: what `rlpg eval` sends to `probe`'s kind of
/// env.
fn agent_actions(
    config: &Config,
    run_dir: &Path,
    probe: &dyn Env,
    obs: &[f32],
    masks: Option<&[bool]>,
) -> Vec<ActionBuf> {
    let path = default_eval_checkpoint(run_dir).expect("checkpoint");
    let checkpoint = Checkpoint::read(&path).expect("read");
    let mut agent =
        build_agent(config, probe.observation_space(), probe.action_space()).expect("agent");
    checkpoint.restore_agent(agent.as_mut(), &path).expect("restore");
    let dim = probe.observation_space().flat_dim();
    let mut input = obs.to_vec();
    if config.normalize_obs {
        let rms = checkpoint.meta.envs.obs_rms().expect("statistics");
        rms.normalize(obs, &mut input, rlpg_envs::DEFAULT_NORM_EPSILON, OBS_CLIP);
    }
    let rows = obs.len() / dim;
    let mut actions = rlpg_agents::Actions::default();
    agent.act_masked(&input, masks, ActMode::Deterministic, &mut actions).expect("act");
    let mut adapter = ActionAdapter::new(probe.action_space());
    let width = adapter.width();
    let converted = adapter.convert(&actions).expect("convert");
    (0..rows).map(|i| ActionBuf::from(converted.get(i, width).expect("one action a row"))).collect()
}

/// Asserts two action lists agree: identical indices, vectors within `1e-5` (relative beyond
/// 1); `what` names the comparison.
fn assert_actions_agree(what: &str, got: &[ActionBuf], expected: &[ActionBuf]) {
    assert_eq!(got.len(), expected.len(), "{what}: number of actions");
    let mut worst = 0.0f64;
    for (row, (g, e)) in got.iter().zip(expected).enumerate() {
        match (g, e) {
            (ActionBuf::Discrete(a), ActionBuf::Discrete(b)) => {
                assert_eq!(a, b, "{what}: row {row} chose {a}, expected {b}");
            }
            (ActionBuf::Continuous(a), ActionBuf::Continuous(b)) => {
                for (x, y) in a.iter().zip(b) {
                    let diff = f64::from(x - y).abs() / f64::from(y.abs()).max(1.0);
                    assert!(diff <= 1e-5, "{what}: row {row}: {a:?} vs {b:?}");
                    worst = worst.max(diff);
                }
            }
            _ if std::mem::discriminant(g) == std::mem::discriminant(e) => {
                assert_eq!(g, e, "{what}: row {row}");
            }
            _ => panic!("{what}: row {row}: {g} and {e} are of different kinds"),
        }
    }
}

/// Runs `episodes` episodes with `act` on raw observations of registry envs, env `i` reset with
/// `seed + i` (as `rlpg eval` does), and returns their returns.
fn episode_returns(
    env: &str,
    episodes: usize,
    seed: u64,
    act: &dyn Fn(&[f32]) -> ActionBuf,
) -> Vec<f64> {
    (0..episodes)
        .map(|i| {
            let mut env = rlpg_envs::make(env).expect("env");
            let mut obs = env.reset(Some(seed + i as u64)).expect("reset").to_vec();
            let mut total = 0.0;
            loop {
                let step = env.step(act(&obs).as_action()).expect("step");
                total += step.reward;
                obs = step.obs.to_vec();
                if step.terminated || step.truncated {
                    return total;
                }
            }
        })
        .collect()
}

#[test]
fn every_agent_and_space_acts_as_rlpg_eval_and_its_export_agrees_without_libtorch() {
    let root = Scratch::new("policy-combos");
    for combo in combos() {
        let (config, run_dir) = trained_run(&combo, &root.join(combo.name));
        let out = root.join(combo.name).join("export");
        let exported = export_run(&run_dir, None, &out, EnvSource::Builtin).expect("export");
        assert!(exported.checkpoint.ends_with("checkpoints/best.safetensors"), "{}", combo.name);
        assert_eq!(exported.files.len(), 3);

        let policy = Policy::load(&run_dir).expect("rlpg::Policy from the run");
        let light = rlpg_policy::Policy::load(&out).expect("rlpg_policy::Policy from the export");
        let dim = policy.obs_dim();

        // 1. rlpg::Policy on raw observations = the agent acting as `rlpg eval` does.
        let obs = random_observations(512, dim, 2.0, 1);
        let eval = eval_actions(&config, &run_dir, &obs);
        let what = format!("{}: rlpg::Policy vs the agent", combo.name);
        assert_actions_agree(&what, &policy.act_batch(&obs).expect("act"), &eval);
        let singles: Vec<ActionBuf> =
            obs.chunks_exact(dim).map(|o| policy.act(o).expect("act")).collect();
        assert_actions_agree(&format!("{}: single vs batch", combo.name), &singles, &eval);

        // ... and over whole episodes: the same returns as `rlpg eval`.
        let seed = 77;
        let evaluated = evaluate_run(&run_dir, 3, seed, EnvSource::Builtin).expect("eval");
        let returns = episode_returns(combo.env, 3, seed, &|o| policy.act(o).expect("act"));
        for (r, e) in returns.iter().zip(&evaluated.returns) {
            assert!(
                (r - e).abs() <= 1e-3 * e.abs().max(1.0),
                "{}: {returns:?} vs eval {:?}",
                combo.name,
                evaluated.returns
            );
        }
        let light_returns = episode_returns(combo.env, 3, seed, &|o| light.act(o).expect("act"));
        for (r, e) in light_returns.iter().zip(&evaluated.returns) {
            assert!(
                (r - e).abs() <= 1e-3 * e.abs().max(1.0),
                "{}: rlpg_policy {light_returns:?} vs eval {:?}",
                combo.name,
                evaluated.returns
            );
        }

        // 2. The export without libtorch agrees on 10,000 random observations.
        let obs = random_observations(10_000, dim, 3.0, 2);
        let what = format!("{}: rlpg_policy vs rlpg::Policy", combo.name);
        assert_actions_agree(
            &what,
            &light.act_batch(&obs).expect("act"),
            &policy.act_batch(&obs).expect("act"),
        );

        // ... and with libtorch's computation of the manifest, distributions included, with
        // and without masks.
        let export = rlpg::deploy::Export::read(&out).expect("read export");
        let worst = reference::assert_parity(combo.name, &export, &light, &obs, None);
        let mut line =
            format!("{}: rlpg_policy vs libtorch, largest difference {worst:.1e}", combo.name);
        if light.mask_len() > 0 {
            let space = rlpg::deploy::manifest::ActionSpace::from(light.action_space());
            let masks = fixtures::masks(&mut fixtures::Rng::new(3), 10_000, &space);
            let what = format!("{} masked", combo.name);
            let worst = reference::assert_parity(&what, &export, &light, &obs, Some(&masks));
            line += &format!(", masked {worst:.1e}");
            assert_eq!(
                policy.act_batch_masked(&obs, Some(&masks)).unwrap(),
                light.act_batch_masked(&obs, Some(&masks)).unwrap(),
                "{}: rlpg::Policy under masks",
                combo.name
            );
        }
        println!("{line}");

        // The export loads as rlpg::Policy too, without the env being registered.
        let from_export = Policy::load(&out).expect("rlpg::Policy from the export");
        assert_eq!(
            from_export.act_batch(&obs[..dim * 64]).unwrap(),
            policy.act_batch(&obs[..dim * 64]).unwrap()
        );
        assert_eq!(
            light.action_space(),
            &registry_factory(&config)().unwrap().action_space().clone()
        );
    }
}

#[test]
fn every_head_with_random_weights_matches_libtorch_with_and_without_masks() {
    let mut rng = fixtures::Rng::new(2026);
    for case in fixtures::cases() {
        let export = fixtures::export(&case, &mut rng);
        let policy = rlpg::deploy::Policy::from_export(&export).expect("a checked export");
        let obs = fixtures::observations(&mut rng, 10_000, case.obs_dim);
        let worst = reference::assert_parity(case.name, &export, &policy, &obs, None);
        let mut line = format!("{}: largest difference {worst:.1e}", case.name);
        if policy.mask_len() > 0 {
            let masks = fixtures::masks(&mut rng, 10_000, &case.space);
            let what = format!("{} masked", case.name);
            let worst = reference::assert_parity(&what, &export, &policy, &obs, Some(&masks));
            line += &format!(", masked {worst:.1e}");
        }
        println!("{line}");
    }
}

/// A toy env of any discrete action space with a random mask each step: the observation is
/// four random values and the mask's flags; the reward is the number of parts that take the
/// highest allowed choice. It fails on a masked action, as a real system would.
struct MaskedToy {
    action_space: Space,
    observation_space: Space,
    mask: Vec<bool>,
    rng: rlpg::envs::EnvRng,
    t: usize,
}

impl MaskedToy {
    fn new(action_space: Space) -> Self {
        let m = action_space.mask_len();
        Self {
            observation_space: Space::Box(rlpg::envs::BoxSpace::uniform(m + 4, -5.0, 5.0)),
            action_space,
            mask: vec![true; m],
            rng: rlpg::envs::EnvRng::new(),
            t: 0,
        }
    }

    fn draw(&mut self) -> rlpg::envs::Observation {
        use rlpg::envs::rand::RngExt;
        let rng = self.rng.stream();
        let noise: Vec<f32> = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        for f in &mut self.mask {
            *f = rng.random_bool(0.6);
        }
        let mut start = 0;
        for k in self.action_space.mask_components() {
            let keep = rng.random_range(0..k);
            self.mask[start + keep] = true;
            start += k;
        }
        noise.into_iter().chain(self.mask.iter().map(|&f| f32::from(u8::from(f)))).collect()
    }
}

impl Env for MaskedToy {
    fn id(&self) -> &str {
        "MaskedToy-v0"
    }
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }
    fn action_space(&self) -> &Space {
        &self.action_space
    }
    fn masks_actions(&self) -> bool {
        true
    }
    fn action_mask(&self, mask: &mut [bool]) -> Result<(), EnvError> {
        mask.copy_from_slice(&self.mask);
        Ok(())
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        self.rng.for_reset(seed);
        self.t = 0;
        Ok(self.draw())
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        if !self.action_space.mask_allows(&self.mask, action) {
            return Err(EnvError::Other {
                env: self.id().to_owned(),
                message: format!("step {}: the action {action} is outside the mask", self.t),
            });
        }
        let chosen: Vec<usize> = match action {
            Action::Discrete(a) => vec![a],
            Action::MultiDiscrete(a) => a.to_vec(),
            Action::MultiBinary(a) => a.iter().map(|&b| usize::from(b)).collect(),
            Action::Continuous(_) => Vec::new(),
        };
        let mut start = 0;
        let mut reward = 0.0;
        for (v, k) in chosen.iter().zip(self.action_space.mask_components()) {
            let best = (0..k).rev().find(|&c| self.mask[start + c]);
            reward += f64::from(u8::from(best == Some(*v)));
            start += k;
        }
        self.t += 1;
        Ok(Step { obs: self.draw(), reward, terminated: false, truncated: self.t == 20 })
    }
}

#[test]
fn masked_multi_part_policies_export_their_mask_and_agree_with_the_agent_and_libtorch() {
    let root = Scratch::new("policy-masked");
    // REINFORCE's heads (multi_categorical, bernoulli, categorical) and the pathwise agent's
    // (gumbel_softmax per component over each space, a bit a two-way one; bounded per component
    // in some).
    let (reinforce, pathwise) = (AgentKind::Reinforce, AgentKind::Pathwise);
    let bounded: &[&str] = &["pathwise.logit_bound=2.0"];
    let cases = [
        ("restock_multi_categorical", reinforce, None, &[][..]),
        ("toy_multi_discrete", reinforce, Some(Space::MultiDiscrete(vec![3, 1, 4])), &[]),
        ("toy_bernoulli", reinforce, Some(Space::MultiBinary(3)), &[]),
        ("toy_categorical", reinforce, Some(Space::Discrete(5)), &[]),
        ("pathwise_restock_gumbel_softmax", pathwise, None, &[]),
        (
            "pathwise_toy_multi_discrete",
            pathwise,
            Some(Space::MultiDiscrete(vec![3, 1, 4])),
            bounded,
        ),
        ("pathwise_toy_multi_binary", pathwise, Some(Space::MultiBinary(3)), &[]),
        ("pathwise_toy_multi_binary_bounded", pathwise, Some(Space::MultiBinary(3)), bounded),
        ("pathwise_toy_discrete", pathwise, Some(Space::Discrete(5)), bounded),
    ];
    for (name, agent, toy, sets) in cases {
        let env = if toy.is_some() { "MaskedToy-v0" } else { "Restock-v0" };
        let text = Config::new(env, agent).to_toml_string().expect("toml");
        let steps: &[&str] = match agent {
            AgentKind::Reinforce => &["total_timesteps=4096"],
            AgentKind::Pathwise => &["total_timesteps=600", "pathwise.learning_starts=100"],
        };
        let overrides: Vec<rlpg::Override> = [
            "eval_every=0",
            "eval_episodes=2",
            "checkpoint_every=0",
            "seed=4",
            "normalize_obs=true",
        ]
        .iter()
        .chain(steps)
        .chain(sets)
        .map(|s| rlpg::Override::parse(s).expect("override"))
        .collect();
        let config = Config::from_toml_str(&text, name, &overrides).expect("config");
        let toy_factory = toy.map(|space| {
            move || -> Result<Box<dyn Env>, EnvError> {
                Ok(Box::new(MaskedToy::new(space.clone())))
            }
        });
        let make = || -> Box<dyn Env> {
            match &toy_factory {
                Some(f) => f().expect("env"),
                None => registry_factory(&config)().expect("env"),
            }
        };
        let factory: Option<rlpg::trainer::EnvFactory<'_>> =
            toy_factory.as_ref().map(|f| f as rlpg::trainer::EnvFactory<'_>);
        let run = train(&config, &root.join(name), factory, false).expect("train");
        let run_dir = run.run_dir.path().to_owned();
        let out = root.join(name).join("export");
        let source = factory.map_or(EnvSource::Builtin, EnvSource::Factory);
        let exported = export_run(&run_dir, None, &out, source).expect("export");
        let probe = make();
        let space = probe.action_space().clone();
        let mask_spec = rlpg::deploy::manifest::MaskSpec::of(&space);
        assert!(mask_spec.is_some());
        assert_eq!(exported.manifest.action.mask, mask_spec, "{name}: the mask is declared");
        let light = rlpg_policy::Policy::load(&out).expect("load the export");
        let export = rlpg::deploy::Export::read(&out).expect("read export");

        // The agent's greedy actions (as `rlpg eval` takes them), with and without masks.
        let dim = light.obs_dim();
        let manifest_space = rlpg::deploy::manifest::ActionSpace::from(&space);
        let obs = random_observations(512, dim, 1.0, 8);
        let masks = fixtures::masks(&mut fixtures::Rng::new(9), 512, &manifest_space);
        let agent = agent_actions(&config, &run_dir, probe.as_ref(), &obs, Some(&masks));
        let what = format!("{name}: rlpg_policy vs the agent under masks");
        assert_actions_agree(&what, &light.act_batch_masked(&obs, Some(&masks)).unwrap(), &agent);
        let agent = agent_actions(&config, &run_dir, probe.as_ref(), &obs, None);
        let what = format!("{name}: rlpg_policy vs the agent");
        assert_actions_agree(&what, &light.act_batch(&obs).unwrap(), &agent);

        // libtorch's computation of the manifest, 10,000 observations, with and without masks.
        let obs = random_observations(10_000, dim, 2.0, 10);
        let masks = fixtures::masks(&mut fixtures::Rng::new(11), 10_000, &manifest_space);
        let free = reference::assert_parity(name, &export, &light, &obs, None);
        let what = format!("{name} masked");
        let masked = reference::assert_parity(&what, &export, &light, &obs, Some(&masks));
        println!(
            "{name}: rlpg_policy vs libtorch, largest difference {free:.1e}, masked {masked:.1e}"
        );

        // Samples within the env's own masks are always accepted, over whole episodes.
        let mut env = make();
        let mut o = env.reset(Some(1)).expect("reset").to_vec();
        let mut mask = vec![false; space.mask_len()];
        for t in 0..300u64 {
            env.action_mask(&mut mask).expect("mask");
            let a = light.sample_masked(&o, Some(&mask), t).expect("sample");
            assert!(space.mask_allows(&mask, a.as_action()), "{name}: step {t}: {a} is masked");
            let step = env.step(a.as_action()).expect("a masked env accepts the sample");
            o = if step.terminated || step.truncated {
                env.reset(Some(t)).expect("reset").to_vec()
            } else {
                step.obs.to_vec()
            };
        }
    }
}

#[test]
fn sampling_is_seeded_and_follows_the_policy() {
    let root = Scratch::new("policy-sample");
    let combo = &combos()[0];
    let (_, run_dir) = trained_run(combo, &root);
    let policy = Policy::load(&run_dir).expect("policy");
    let obs = random_observations(2000, policy.obs_dim(), 1.0, 3);
    let a = policy.sample_batch(&obs, 9).expect("sample");
    assert_eq!(a, policy.sample_batch(&obs, 9).expect("sample"), "same seed, same actions");
    assert_ne!(a, policy.sample_batch(&obs, 10).expect("sample"), "another seed differs");
    assert!(a.iter().all(|x| x.is_in(policy.action_space())));

    let (_, sac_run) = trained_run(&combos()[3], &root.join("sac"));
    let sac = Policy::load(&sac_run).expect("policy");
    let one = random_observations(1, sac.obs_dim(), 1.0, 4);
    let mode = match sac.act(&one).unwrap() {
        ActionBuf::Continuous(x) => x[0],
        other => panic!("a box action, not {other}"),
    };
    let draws: Vec<f32> = (0..400)
        .map(|s| match sac.sample(&one, s).unwrap() {
            ActionBuf::Continuous(x) => x[0],
            other => panic!("a box action, not {other}"),
        })
        .collect();
    let Space::Box(b) = sac.action_space() else { panic!("box") };
    assert!(draws.iter().all(|x| (b.low[0]..=b.high[0]).contains(x)), "samples stay in the box");
    let spread = draws.iter().map(|x| (x - mode).abs()).fold(0.0f32, f32::max);
    assert!(spread > 1e-3, "the squashed Gaussian's samples vary around its mode: {spread}");
}

#[test]
fn damaged_or_mismatched_checkpoints_and_bad_observations_are_clear_errors() {
    let root = Scratch::new("policy-bad");
    let (_, run_dir) = trained_run(&combos()[0], &root);
    let best = default_eval_checkpoint(&run_dir).expect("best");
    let out = root.join("export");

    // A damaged checkpoint: one byte of tensor data flipped.
    let damaged = root.join("damaged.safetensors");
    let mut bytes = std::fs::read(&best).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&damaged, &bytes).unwrap();
    let e = export_run(&run_dir, Some(damaged.to_str().unwrap()), &out, EnvSource::Builtin)
        .unwrap_err();
    let message = e.to_string();
    assert!(message.contains("damaged.safetensors") && message.contains("corrupt"), "{message}");
    assert!(!out.join("policy.json").exists(), "nothing is written for a damaged checkpoint");

    // A mismatched checkpoint: its config asks for other hidden sizes than its tensors have.
    let mut checkpoint = Checkpoint::read(&best).unwrap();
    checkpoint.meta.config = checkpoint.meta.config.replace("hidden = [64, 64]", "hidden = [32]");
    assert!(checkpoint.meta.config.contains("hidden = [32]"), "the preset's hidden sizes changed");
    let mismatched = root.join("mismatched.safetensors");
    checkpoint.write(&mismatched).unwrap();
    let e = export_run(&run_dir, Some(mismatched.to_str().unwrap()), &out, EnvSource::Builtin)
        .unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("mismatched.safetensors") && message.contains("does not fit"),
        "{message}"
    );

    // An observation of the wrong length.
    let policy = Policy::load(&run_dir).unwrap();
    let e = policy.act(&[0.0; 3]).unwrap_err();
    assert_eq!(e.to_string(), "observation has 3 values, the policy expects 4");
    let e = policy.act_batch(&[0.0; 7]).unwrap_err();
    assert!(e.to_string().contains("not a whole number of observations of 4"), "{e}");
}

/// Act latency of rlpg_policy (plain Rust) and libtorch side by side, at batch 1 and 256, on
/// the pathwise Pendulum preset's actor (64x64 relu, squashed Gaussian): rlpg_policy's greedy
/// actions against libtorch's forward pass of the same export (weights loaded once, one thread)
/// with the squash, rescale and clip. Prints the numbers and leaves the export in
/// `target/policy-latency-export` for the onnxruntime measurement
/// (`scripts/check_policy_export.sh --latency target/policy-latency-export`).
#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
fn act_latency_side_by_side() {
    let root = Scratch::new("policy-latency");
    let combo = Combo {
        name: "latency",
        env: "Pendulum-v1",
        agent: AgentKind::Pathwise,
        sets: &["total_timesteps=300", "pathwise.learning_starts=100", "normalize_obs=true"],
    };
    let (_, run_dir) = trained_run(&combo, &root);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/policy-latency-export");
    export_run(&run_dir, None, &out, EnvSource::Builtin).expect("export");
    tch::set_num_threads(1);
    let light = rlpg_policy::Policy::load(&out).unwrap();
    let export = rlpg::deploy::Export::read(&out).unwrap();
    let net = reference::TorchNet::new(&export);
    let rescale = export.manifest.action.rescale.clone().expect("a squashed head's rescale");
    let (scale, loc) =
        (tch::Tensor::from_slice(&rescale.scale), tch::Tensor::from_slice(&rescale.loc));
    let torch_act = |obs: &[f32]| -> Vec<f32> {
        let _guard = tch::no_grad_guard();
        let y = net.outputs(obs).narrow(1, 0, 1).tanh() * &scale + &loc;
        Vec::<f32>::try_from(y.clamp(-2.0, 2.0).view(-1)).expect("f32")
    };
    for batch in [1usize, 256] {
        let obs = random_observations(batch, 3, 1.0, 5);
        let iterations = if batch == 1 { 20_000 } else { 2_000 };
        let time = |f: &dyn Fn()| {
            for _ in 0..iterations / 10 {
                f();
            }
            let start = std::time::Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_secs_f64() / iterations as f64 * 1e6
        };
        let t_light = time(&|| {
            std::hint::black_box(light.act_batch(&obs).unwrap());
        });
        let t_torch = time(&|| {
            std::hint::black_box(torch_act(&obs));
        });
        println!(
            "batch {batch}: rlpg_policy {t_light:.2} us, libtorch {t_torch:.2} us, ratio {:.1}x",
            t_torch / t_light
        );
    }
}
