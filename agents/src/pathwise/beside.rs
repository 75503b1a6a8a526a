//! The pathwise agent's [`Actor`]: its exploring policy on a copy of the actor network's
//! parameters, for acting on another thread while the agent learns (acting beside learning).
//!
//! The forward pass is the kernel's plain-Rust one ([`DenseMlp::forward`], the pass the kernel
//! backend and rlpg-policy run), then the head's rule ([`ActorHead::act`]), the rule
//! [`crate::Agent::act`] applies too, so the actor acts as the agent would with the same
//! parameters and draws (on the libtorch backend up to the rounding of its matrix products).
//! The draws come from the actor's own generator, seeded for every call, never from libtorch's
//! global one, which the learner draws its minibatches from.

use std::sync::Arc;

use rand_distr::StandardNormal;
use rlpg_envs::EnvRng;
use rlpg_envs::rand::RngExt;
use rlpg_kernel::{DenseMlp, Trace};

use crate::agent::{Actions, Actor, ActorParams, AgentError};
use crate::reinforce::rows_of;

use super::actor::{ActionCoding, ActorHead};
use super::agent::Core;
use super::settings::Exploration;

/// The pathwise agent's exploring policy, acting on its own copy of the parameters.
#[derive(Debug)]
pub(super) struct PathwiseActor {
    network: Arc<DenseMlp>,
    head: ActorHead,
    coding: ActionCoding,
    obs_dim: usize,
    exploration_noise: f64,
    params: ActorParams,
    trace: Trace,
    noise: Vec<f32>,
    scratch: Vec<f32>,
}

impl PathwiseActor {
    /// An actor for `core`'s policy, without parameters yet ([`Actor::load`] them). Pink
    /// exploration noise follows each env through its episodes inside the agent, which an actor
    /// elsewhere cannot: an error.
    pub(super) fn new(core: &Core) -> Result<Self, AgentError> {
        if core.cfg.exploration == Exploration::Pink {
            return Err(AgentError::Invalid(
                "pathwise.exploration = \"pink\" keeps each env's noise sequence in the agent; an \
                 actor beside the learner draws i.i.d. noise: use \"gaussian\" exploration to act \
                 beside learning"
                    .to_owned(),
            ));
        }
        let network = match core.actor.mlps.first() {
            Some(mlp) => Arc::clone(&mlp.dense),
            None => return Err(AgentError::Invalid("the actor network has no MLP".to_owned())),
        };
        Ok(Self {
            network,
            head: core.head.clone(),
            coding: core.coding.clone(),
            obs_dim: core.obs_dim,
            exploration_noise: core.cfg.exploration_noise,
            params: ActorParams::default(),
            trace: Trace::default(),
            noise: Vec::new(),
            scratch: Vec::new(),
        })
    }
}

impl Core {
    /// The actor network's parameters and whether acting is still uniformly random, for
    /// [`PathwiseActor`].
    pub(super) fn actor_params(&self, params: &mut ActorParams) -> Result<(), AgentError> {
        match self.actor.params.cpu_values() {
            // On the CPU a plain copy, without a libtorch call per step.
            Ok(values) => {
                params.values.clear();
                params.values.extend_from_slice(values);
            }
            Err(_) => {
                let flat = self.actor.params.values();
                let n = flat.numel();
                params.values.resize(n, 0.0);
                flat.f_to_device(tch::Device::Cpu)?.f_copy_data(&mut params.values, n)?;
            }
        }
        params.random = self.env_steps < self.cfg.learning_starts as u64;
        Ok(())
    }
}

impl Actor for PathwiseActor {
    fn act(&mut self, obs: &[f32], seed: u64, out: &mut Actions) -> Result<(), AgentError> {
        let rows = rows_of(obs, self.obs_dim)?;
        if self.params.values.len() < self.network.extent() {
            return Err(AgentError::Invalid(format!(
                "the actor holds {} parameters, its network needs {}: load the agent's \
                 parameters before acting",
                self.params.values.len(),
                self.network.extent()
            )));
        }
        let mut generator = EnvRng::seeded(seed);
        let rng = generator.stream();
        if self.params.random {
            random_actions(&self.coding, rows, rng, out);
            return Ok(());
        }
        let outputs = self.network.forward(&self.params.values, obs, rows, &mut self.trace);
        let (cols, normal) = self.head.noise();
        self.noise.clear();
        self.noise.extend((0..rows * cols).map(|_| {
            if normal { rng.sample::<f32, _>(StandardNormal) } else { rng.random::<f32>() }
        }));
        let noise = Some(self.noise.as_slice());
        self.head.act(outputs, noise, None, self.exploration_noise, &mut self.scratch, out);
        self.coding.to_env_form(out);
        Ok(())
    }

    fn load(&mut self, params: &ActorParams) -> Result<(), AgentError> {
        if params.values.len() != self.network.extent() {
            return Err(AgentError::Invalid(format!(
                "{} actor parameters do not fit this actor's network of {}",
                params.values.len(),
                self.network.extent()
            )));
        }
        self.params.clone_from(params);
        Ok(())
    }
}

/// `rows` actions drawn uniformly from the action space, in the environment's form (as
/// [`ActionCoding::random`] draws them from libtorch's generator).
fn random_actions(coding: &ActionCoding, rows: usize, rng: &mut impl RngExt, out: &mut Actions) {
    match coding {
        ActionCoding::Box { space, .. } => {
            let values = out.floats(rows, space.dim());
            for a in values.iter_mut() {
                *a = rng.random::<f32>() * 2.0 - 1.0;
            }
            coding.to_env_form(out);
        }
        ActionCoding::Discrete { n } => {
            for a in out.indices(rows, 1) {
                *a = rng.random_range(0..*n as i64);
            }
        }
        ActionCoding::Multi { parts } => {
            let k = parts.len();
            for (i, a) in out.indices(rows, k).iter_mut().enumerate() {
                *a = rng.random_range(0..parts[i % k] as i64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rlpg_envs::{BoxSpace, Space};

    use crate::agent::{ActMode, Actions, ActorParams, Agent};
    use crate::backend::BackendChoice;

    use super::super::{Estimator, Exploration, Pathwise, PathwiseConfig};

    fn pendulum(cfg: &PathwiseConfig, rows: usize) -> Pathwise {
        tch::manual_seed(3);
        let obs = Space::Box(BoxSpace::new(vec![-1.0, -1.0, -8.0], vec![1.0, 1.0, 8.0]));
        let act = Space::Box(BoxSpace::uniform(1, -2.0, 2.0));
        Pathwise::new(cfg, &obs, &act, rows).expect("agent")
    }

    fn floats(actions: &Actions) -> Vec<f32> {
        match actions {
            Actions::Floats { values, .. } => values.clone(),
            other => panic!("expected floats, got {other}"),
        }
    }

    const OBS: [f32; 12] = [1.0, 0.0, 0.5, 0.6, 0.8, -3.0, -1.0, 0.0, 7.9, 0.0, -1.0, 0.0];

    /// The actor's forward pass and head are the agent's: TD3 without exploration noise acts
    /// with its mode, the agent's deterministic action (bit for bit on the kernel backend, to
    /// libtorch's rounding on the other).
    #[test]
    fn the_actor_acts_as_the_agent_with_the_same_parameters() {
        for (backend, tolerance) in [(BackendChoice::Kernel, 0.0), (BackendChoice::Libtorch, 1e-5)]
        {
            let cfg = PathwiseConfig {
                estimator: Estimator::Td3,
                exploration_noise: 0.0,
                learning_starts: 0,
                backend,
                ..PathwiseConfig::default()
            };
            let mut agent = pendulum(&cfg, 4);
            let mut want = Actions::default();
            agent.act(&OBS, ActMode::Deterministic, &mut want).expect("act");
            let mut actor = agent.actor().expect("an actor").expect("made");
            let mut params = ActorParams::default();
            agent.actor_params(&mut params).expect("params");
            assert!(!params.random, "learning_starts = 0: not random");
            actor.load(&params).expect("load");
            let mut got = Actions::default();
            actor.act(&OBS, 7, &mut got).expect("act");
            let (want, got) = (floats(&want), floats(&got));
            assert_eq!(want.len(), got.len());
            for (w, g) in want.iter().zip(&got) {
                assert!((w - g).abs() <= tolerance, "{backend}: agent {want:?}, actor {got:?}");
            }
        }
    }

    /// SAC's actor draws from its own generator: the same seed gives the same actions, another
    /// seed others, inside the action bounds; before `learning_starts` it acts uniformly at
    /// random as the agent does.
    #[test]
    fn the_actor_draws_from_its_seed_and_explores_randomly_before_learning() {
        let cfg = PathwiseConfig { learning_starts: 0, ..PathwiseConfig::default() };
        let agent = pendulum(&cfg, 4);
        let mut actor = agent.actor().expect("an actor").expect("made");
        let mut params = ActorParams::default();
        agent.actor_params(&mut params).expect("params");
        actor.load(&params).expect("load");
        let draw = |actor: &mut Box<dyn crate::agent::Actor>, seed| {
            let mut actions = Actions::default();
            actor.act(&OBS, seed, &mut actions).expect("act");
            floats(&actions)
        };
        let (a, b, c) = (draw(&mut actor, 1), draw(&mut actor, 1), draw(&mut actor, 2));
        assert_eq!(a, b, "same seed, same actions");
        assert_ne!(a, c, "another seed, other actions");
        assert!(a.iter().chain(&c).all(|x| (-2.0..=2.0).contains(x)), "{a:?} {c:?}");

        let random = pendulum(&PathwiseConfig::default(), 4);
        random.actor_params(&mut params).expect("params");
        assert!(params.random, "no transition stored yet: random actions");
        actor.load(&params).expect("load");
        let (r1, r2) = (draw(&mut actor, 1), draw(&mut actor, 1));
        assert_eq!(r1, r2);
        assert!(r1.iter().all(|x| (-2.0..=2.0).contains(x)), "{r1:?}");
    }

    #[test]
    fn the_actor_refuses_foreign_parameters_pink_noise_and_acting_before_loading() {
        let agent = pendulum(&PathwiseConfig::default(), 4);
        let mut actor = agent.actor().expect("an actor").expect("made");
        let mut actions = Actions::default();
        let err = actor.act(&OBS, 1, &mut actions).expect_err("nothing loaded");
        assert!(err.to_string().contains("load the agent's parameters"), "{err}");
        let foreign = ActorParams { values: vec![0.0; 5], random: false };
        let err = actor.load(&foreign).expect_err("wrong size");
        assert!(err.to_string().contains("5 actor parameters"), "{err}");
        let pink = PathwiseConfig { exploration: Exploration::Pink, ..PathwiseConfig::default() };
        let err = pendulum(&pink, 4).actor().expect("offered").expect_err("pink is refused");
        assert!(err.to_string().contains("pink"), "{err}");
    }
}
