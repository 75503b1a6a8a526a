//! The pathwise agent's live gradient diagnostics (`grad/variance`, `grad/snr`): reported once per
//! metrics window, without changing the updates, and zero for the deterministic (TD3) actor when every
//! state in the minibatch is the same, where SAC's sampled actions still make its gradient noisy.
//! On both backends: the kernel takes the per-slice gradients from its tape, libtorch from autograd.

use std::sync::Mutex;

use rlpg_agents::{
    ActMode, Actions, Agent, BackendChoice, Estimator, Metrics, Pathwise, PathwiseConfig,
    SettingsContext, Transition,
};
use rlpg_envs::{BoxSpace, Space};
use tch::Tensor;

const BACKENDS: [BackendChoice; 2] = [BackendChoice::Kernel, BackendChoice::Libtorch];

/// libtorch's generator is global: runs that are compared hold this lock.
static RNG: Mutex<()> = Mutex::new(());

fn spaces() -> (Space, Space) {
    (
        Space::Box(BoxSpace::new(vec![-1.0, -1.0, -8.0], vec![1.0, 1.0, 8.0])),
        Space::Box(BoxSpace::uniform(1, -2.0, 2.0)),
    )
}

fn config(estimator: Estimator, grad_diagnostics: bool, backend: BackendChoice) -> PathwiseConfig {
    PathwiseConfig {
        estimator,
        backend,
        learning_starts: 16,
        batch_size: 32,
        policy_delay: 1,
        metrics_every: 20,
        actor_hidden: vec![32, 32],
        critic_hidden: vec![32, 32],
        grad_diagnostics,
        ..PathwiseConfig::default()
    }
}

/// Trains on `steps` transitions of a made-up task (reward −a², observations from `obs_at`);
/// returns the metrics reports and the final parameters.
fn run(
    cfg: &PathwiseConfig,
    steps: usize,
    obs_at: impl Fn(usize) -> [f32; 3],
) -> (Vec<Metrics>, Vec<(String, Tensor)>) {
    tch::manual_seed(5);
    let (obs_space, act_space) = spaces();
    let mut agent = Pathwise::new(cfg, &obs_space, &act_space, 1).unwrap();
    let mut reports = Vec::new();
    let mut action = Actions::default();
    for i in 0..steps {
        let obs = obs_at(i);
        agent.act(&obs, ActMode::Explore, &mut action).unwrap();
        let a = match &action {
            Actions::Floats { values, .. } => f64::from(values[0]),
            other => panic!("expected a float action, got {other}"),
        };
        let report = agent
            .observe(&Transition {
                obs: &obs,
                actions: &action,
                rewards: &[-a * a],
                terminated: &[false],
                truncated: &[i % 50 == 49],
                next_obs: &obs_at(i + 1),
                masks: None,
                next_masks: None,
            })
            .unwrap();
        reports.extend(report);
    }
    (reports, agent.named_tensors())
}

fn varied(i: usize) -> [f32; 3] {
    let x = i as f32 * 0.37;
    [x.cos(), x.sin(), (x * 1.3).sin() * 4.0]
}

fn value(metrics: &Metrics, tag: &str) -> Option<f64> {
    metrics.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
}

#[test]
fn diagnostics_are_reported_every_window_and_never_change_the_run() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for (estimator, backend) in
        [Estimator::Sac, Estimator::Td3].into_iter().flat_map(|e| BACKENDS.map(|b| (e, b)))
    {
        let (plain, params_plain) = run(&config(estimator, false, backend), 120, varied);
        let (diagnosed, params_diagnosed) = run(&config(estimator, true, backend), 120, varied);
        let estimator = format!("{estimator:?} on {backend}");
        assert_eq!(plain.len(), diagnosed.len(), "{estimator}");
        // Learning starts at 16 transitions and metrics are reported every 20: the windows
        // ending at steps 20, 40, ..., 120 each hold actor updates (policy_delay = 1).
        let with_actor = diagnosed.iter().filter(|m| value(m, "losses/actor_loss").is_some());
        assert_eq!(with_actor.count(), 6, "{estimator}: reports with actor updates");
        let with_grad = diagnosed.iter().filter(|m| value(m, "grad/snr").is_some()).count();
        assert_eq!(with_grad, 6, "{estimator}: reports with gradient diagnostics");
        for (off, on) in plain.iter().zip(&diagnosed) {
            let without: Metrics =
                on.iter().filter(|(t, _)| !t.starts_with("grad/")).cloned().collect();
            assert_eq!(off, &without, "{estimator}: diagnostics changed the losses");
            if value(on, "losses/actor_loss").is_some() {
                let variance = value(on, "grad/variance").expect("grad/variance reported");
                let snr = value(on, "grad/snr").expect("grad/snr reported");
                assert!(variance > 0.0 && variance.is_finite() && snr >= 0.0, "{on:?}");
            }
        }
        for ((name, off), (_, on)) in params_plain.iter().zip(&params_diagnosed) {
            assert!(off.equal(on), "{estimator}: diagnostics changed {name}");
        }
    }
}

#[test]
fn a_deterministic_actor_on_one_state_has_no_gradient_noise_and_sac_has_some() {
    let _guard = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let one_state = |_| [0.6f32, 0.8, 1.0];
    for backend in BACKENDS {
        let last_report = |estimator| {
            let (reports, _) = run(&config(estimator, true, backend), 60, one_state);
            reports.last().cloned().expect("a report after learning started")
        };
        let td3 = last_report(Estimator::Td3);
        let (variance, snr) =
            (value(&td3, "grad/variance").unwrap(), value(&td3, "grad/snr").unwrap());
        // Identical per-sample gradients: zero up to rounding.
        assert!(snr > 1e4, "TD3 on one state, {backend}: variance {variance}, snr {snr}");
        let sac = last_report(Estimator::Sac);
        let snr = value(&sac, "grad/snr").unwrap();
        assert!(snr < 100.0, "SAC's sampled actions make its gradient noisy, {backend}: snr {snr}");
    }
}

#[test]
fn diagnostics_need_two_samples_per_minibatch() {
    let cfg = PathwiseConfig { batch_size: 1, ..config(Estimator::Sac, true, BackendChoice::Auto) };
    let err = cfg.validate(&SettingsContext::RANGES_ONLY).unwrap_err().to_string();
    assert_eq!(
        err,
        "grad_diagnostics: needs batch_size >= 2 (slices of a minibatch), got batch_size = 1"
    );
}
