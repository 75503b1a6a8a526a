//! `rlpg::truegrad` on a problem whose policy gradient is known exactly: a one-step bandit with
//! reward `−(a − c)²` and a Gaussian policy `N(μθ(s), σθ²)`, where `J(θ) = −((μ − c)² + σ²)`.
//! The ground truth, the finite differences and every unbiased estimator must agree with the
//! exact gradient within 3 standard errors; the pathwise estimator through a wrong critic must
//! not.

use rlpg::agents::{Agent, PolicyProbe, Reinforce, ReinforceConfig};
use rlpg::envs::{Action, BoxSpace, Env, EnvError, Observation, Space, Step};
use rlpg::tch::{Kind, Tensor};
use rlpg::truegrad::{GradStats, TrueGradOptions, measure_probe};

/// libtorch's generator is global to the process: the tests take turns, so that each seeded
/// measurement draws the same numbers every run.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Where the bandit's reward peaks.
const TARGET: f64 = 1.0;

/// One step: observe `[1]`, act `a`, get `−(a − TARGET)²`, terminate.
struct Bandit {
    obs: Space,
    act: Space,
}

impl Bandit {
    fn new() -> Self {
        Self {
            obs: Space::Box(BoxSpace::uniform(1, -1.0, 1.0)),
            act: Space::Box(BoxSpace::uniform(1, -100.0, 100.0)),
        }
    }
}

impl Env for Bandit {
    fn id(&self) -> &str {
        "Bandit-v0"
    }
    fn observation_space(&self) -> &Space {
        &self.obs
    }
    fn action_space(&self) -> &Space {
        &self.act
    }
    fn reset(&mut self, _seed: Option<u64>) -> Result<Observation, EnvError> {
        Ok(Observation::from_slice(&[1.0]))
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let a = match action {
            Action::Continuous(x) => f64::from(x[0]),
            Action::Discrete(i) => i as f64,
            other => {
                return Err(EnvError::Other { env: "Bandit".into(), message: format!("{other}") });
            }
        };
        Ok(Step {
            obs: Observation::from_slice(&[1.0]),
            reward: -(a - TARGET).powi(2),
            terminated: true,
            truncated: false,
        })
    }
}

/// A REINFORCE agent's policy with a critic `Q(s, a) = −(a − peak)²`: the true action value
/// of the bandit when `peak == TARGET`, a wrong one otherwise.
struct WithCritic<'a> {
    inner: &'a dyn PolicyProbe,
    peak: f64,
}

impl PolicyProbe for WithCritic<'_> {
    fn policy_parameters(&self) -> &rlpg::agents::optim::FlatParams {
        self.inner.policy_parameters()
    }
    fn draw_noise(&self, rows: usize) -> Tensor {
        self.inner.draw_noise(rows)
    }
    fn act_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        self.inner.act_from_noise(obs, noise)
    }
    fn log_prob_from_noise(&self, obs: &Tensor, noise: &Tensor) -> Tensor {
        self.inner.log_prob_from_noise(obs, noise)
    }
    fn reparameterized_action(&self, obs: &Tensor, noise: &Tensor) -> Option<Tensor> {
        self.inner.reparameterized_action(obs, noise)
    }
    fn value(&self, obs: &Tensor) -> Option<Tensor> {
        self.inner.value(obs)
    }
    fn critic(&self, _obs: &Tensor, actions: &Tensor) -> Option<Tensor> {
        Some(-(actions - self.peak).square().sum_dim_intlist(-1, false, Kind::Float))
    }
    fn gamma(&self) -> f64 {
        self.inner.gamma()
    }
    fn batch_samples(&self) -> usize {
        self.inner.batch_samples()
    }
}

fn agent() -> Reinforce {
    rlpg::tch::manual_seed(3);
    let cfg = ReinforceConfig { hidden: vec![8], n_steps: 64, ..ReinforceConfig::default() };
    let env = Bandit::new();
    let agent = Reinforce::new(&cfg, env.observation_space(), env.action_space(), 1)
        .expect("a REINFORCE agent for the bandit");
    // Move the policy away from its near-zero initial output so every parameter has a gradient
    // worth measuring.
    let params = agent.probe().expect("a probe").policy_parameters().values().shallow_clone();
    rlpg::tch::no_grad(|| {
        params.shallow_clone().copy_(&(&params + params.randn_like() * 0.3));
    });
    agent
}

/// `∇J` by autograd of the closed form `J = −((μ − c)² + σ²)` at the bandit's observation.
fn exact_gradient(probe: &dyn PolicyProbe) -> Vec<f64> {
    let obs = Tensor::from_slice(&[1.0f32]).view([1, 1]);
    let zero = Tensor::zeros([1, 1], (Kind::Float, rlpg::tch::Device::Cpu));
    let mu = probe.reparameterized_action(&obs, &zero).expect("a Gaussian policy");
    let sigma = probe.reparameterized_action(&obs, &(&zero + 1.0)).expect("a Gaussian") - &mu;
    let j = -((&mu - TARGET).square() + sigma.square()).sum(Kind::Float);
    let g = probe.policy_parameters().grad(&j).expect("a gradient");
    Vec::<f32>::try_from(&g).expect("floats").into_iter().map(f64::from).collect()
}

/// The largest |z| of `stats`' mean against `exact` along the exact gradient and two fixed
/// random unit directions.
fn worst_z(stats: &GradStats, exact: &[f64], truth_se: Option<&GradStats>) -> f64 {
    let n = exact.len();
    let unit = |v: Vec<f64>| {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.into_iter().map(|x| x / norm).collect::<Vec<f64>>()
    };
    let mut directions = vec![unit(exact.to_vec())];
    for k in 0..2u64 {
        // A fixed pseudo-random direction (splitmix-like hash of the index).
        directions.push(unit(
            (0..n as u64)
                .map(|i| {
                    let h = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(k * 7919);
                    ((h >> 11) as f64 / (1u64 << 53) as f64) - 0.5
                })
                .collect(),
        ));
    }
    directions
        .iter()
        .map(|u| {
            let (est, se) = stats.project(u);
            let extra = truth_se.map_or(0.0, |t| t.project(u).1);
            let exact_proj: f64 = u.iter().zip(exact).map(|(a, b)| a * b).sum();
            (est - exact_proj).abs() / (se * se + extra * extra).sqrt()
        })
        .fold(0.0, f64::max)
}

fn options() -> TrueGradOptions {
    TrueGradOptions {
        truth_episodes: 16_384,
        chunk_episodes: 512,
        estimates: 64,
        lambdas: vec![0.0],
        fd_directions: 2,
        fd_episodes: 4096,
        fd_step: 0.01,
        batch_episodes: Some(64),
        max_steps: 10,
        seed: 5,
        threads: 1,
    }
}

#[test]
fn truth_and_unbiased_estimators_agree_with_the_exact_gradient_and_a_wrong_critic_shows_bias() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let agent = agent();
    let inner = agent.probe().expect("REINFORCE offers a probe");
    let exact = exact_gradient(inner);
    let make = || -> Result<Box<dyn Env>, EnvError> { Ok(Box::new(Bandit::new())) };

    let right = WithCritic { inner, peak: TARGET };
    let m = measure_probe(&right, &make, None, &options()).expect("a measurement");
    let exact_norm = exact.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(exact_norm > 0.1, "the exact gradient is too small to test with: {exact_norm}");

    let z = worst_z(&m.truth, &exact, None);
    assert!(z < 3.0, "the ground truth is {z:.2} standard errors from the exact gradient");
    let rel = m.report.truth.se_norm / m.report.truth.norm;
    assert!(rel < 0.1, "the ground truth's standard error is {rel:.3} of its norm");
    for f in &m.report.finite_differences {
        assert!(f.z.abs() < 3.0, "finite difference disagrees with the truth: {f:?}");
    }
    assert_eq!(m.estimators.len(), 4, "{:?}", m.report.estimators);
    for ((name, stats), row) in m.estimators.iter().zip(&m.report.estimators) {
        let z = worst_z(stats, &exact, None);
        assert!(z < 3.0, "{name}: {z:.2} standard errors from the exact gradient");
        assert!(row.bias_z.abs() < 3.0, "{name}: bias z {}", row.bias_z);
        assert!(
            row.bias < 3.0 * row.noise_floor,
            "{name}: bias {} above 3 noise floors {}",
            row.bias,
            row.noise_floor
        );
    }
    // The pathwise estimator has far less variance per sample than the score function here.
    let sf = &m.report.estimators[0];
    let pw = m.report.estimators.last().expect("the pathwise row");
    assert!(pw.unit == "states" && pw.variance_per_sample < sf.variance_per_sample);

    // A critic peaked at the wrong action: its pathwise gradient is biased.
    let wrong = WithCritic { inner, peak: TARGET + 1.0 };
    let m = measure_probe(&wrong, &make, None, &TrueGradOptions { fd_directions: 0, ..options() })
        .expect("a measurement");
    let (name, stats) = m.estimators.last().expect("the pathwise estimator");
    let z = worst_z(stats, &exact, None);
    assert!(z > 10.0, "{name} through a wrong critic is only {z:.2} standard errors off");
    let row = m.report.estimators.last().expect("the pathwise row");
    assert!(row.bias > 10.0 * row.noise_floor && row.bias_z > 10.0, "{row:?}");
}

#[test]
fn finite_differences_agree_with_the_truth_on_pendulum_at_an_untrained_policy() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Many steps, discounting, a time limit and clipped actions: the truth (score function with
    // the untrained value baseline) against finite differences of J with common random numbers.
    rlpg::tch::manual_seed(1);
    let make = || rlpg::envs::make("Pendulum-v1");
    let env = make().expect("Pendulum");
    let cfg = ReinforceConfig { hidden: vec![16], ..ReinforceConfig::default() };
    let agent =
        Reinforce::new(&cfg, env.observation_space(), env.action_space(), 4).expect("an agent");
    let probe = agent.probe().expect("a probe");
    let options = TrueGradOptions {
        truth_episodes: 2048,
        chunk_episodes: 256,
        estimates: 2,
        lambdas: vec![],
        fd_directions: 2,
        fd_episodes: 512,
        fd_step: 0.01,
        batch_episodes: Some(1),
        max_steps: 1000,
        seed: 2,
        threads: 1,
    };
    let m = measure_probe(probe, &make, None, &options).expect("a measurement");
    assert_eq!(m.report.truth.mean_length, 200.0);
    assert_eq!(m.report.finite_differences.len(), 3);
    for f in &m.report.finite_differences {
        assert!(f.z.abs() < 3.0, "finite difference disagrees with the truth: {f:?}");
    }
    // Along the pilot batch's gradient the slope is far from zero, so agreeing there is a test.
    let along = &m.report.finite_differences[0];
    assert!(along.truth.abs() > 5.0 * along.truth_se, "{along:?}");
    assert!(along.finite_difference.abs() > 5.0 * along.finite_difference_se, "{along:?}");
}

/// One step: observe `[1]`, pick arm 0 or 1, get the arm's number as reward, terminate. With a
/// categorical policy `J = π(1)`.
struct TwoArms {
    obs: Space,
    act: Space,
}

impl Env for TwoArms {
    fn id(&self) -> &str {
        "TwoArms-v0"
    }
    fn observation_space(&self) -> &Space {
        &self.obs
    }
    fn action_space(&self) -> &Space {
        &self.act
    }
    fn reset(&mut self, _seed: Option<u64>) -> Result<Observation, EnvError> {
        Ok(Observation::from_slice(&[1.0]))
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let reward = match action {
            Action::Discrete(a) if a < 2 => a as f64,
            _ => return Err(EnvError::invalid_action("TwoArms-v0", action, &self.act)),
        };
        Ok(Step {
            obs: Observation::from_slice(&[1.0]),
            reward,
            terminated: true,
            truncated: false,
        })
    }
}

#[test]
fn a_categorical_policy_gets_the_exact_gradient_and_no_pathwise_row() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    rlpg::tch::manual_seed(4);
    let two_arms =
        || TwoArms { obs: Space::Box(BoxSpace::uniform(1, -1.0, 1.0)), act: Space::Discrete(2) };
    let env = two_arms();
    let cfg = ReinforceConfig { hidden: vec![8], n_steps: 64, ..ReinforceConfig::default() };
    let agent = Reinforce::new(&cfg, env.observation_space(), env.action_space(), 1)
        .expect("a REINFORCE agent for two arms");
    let probe = agent.probe().expect("a probe");
    let params = probe.policy_parameters().values().shallow_clone();
    rlpg::tch::no_grad(|| {
        params.shallow_clone().copy_(&(&params + params.randn_like() * 0.3));
    });
    // A uniform of 0 picks arm 0 (inverse CDF), so J = 1 − π(0) by autograd.
    let obs = Tensor::from_slice(&[1.0f32]).view([1, 1]);
    let zero = Tensor::zeros([1, 1], (Kind::Float, rlpg::tch::Device::Cpu));
    let j = 1.0 - probe.log_prob_from_noise(&obs, &zero).exp().sum(Kind::Float);
    let g = probe.policy_parameters().grad(&j).expect("a gradient");
    let exact: Vec<f64> =
        Vec::<f32>::try_from(&g).expect("floats").into_iter().map(f64::from).collect();

    let make = || -> Result<Box<dyn Env>, EnvError> { Ok(Box::new(two_arms())) };
    let m = measure_probe(probe, &make, None, &options()).expect("a measurement");
    let z = worst_z(&m.truth, &exact, None);
    assert!(z < 3.0, "the ground truth is {z:.2} standard errors from the exact gradient");
    for ((name, stats), row) in m.estimators.iter().zip(&m.report.estimators) {
        let z = worst_z(stats, &exact, None);
        assert!(z < 3.0, "{name}: {z:.2} standard errors from the exact gradient");
        assert!(row.bias_z.abs() < 3.0, "{name}: bias z {}", row.bias_z);
    }
    assert_eq!(m.estimators.len(), 3, "no baseline, V, GAE(0); no pathwise for a categorical");
    assert!(m.report.not_measured.iter().any(|n| n.starts_with("pathwise")));
}
