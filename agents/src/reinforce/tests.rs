//! Tests of the REINFORCE agent's settings and helpers (the agent's behaviour is tested in
//! `agents/tests/reinforce_agent.rs`).

use super::agent::{explained_variance, normalize};
use super::settings::ReinforceConfig;
use crate::settings::SettingsContext;

#[test]
fn defaults_are_valid_and_round_trip_through_serde() {
    let cfg = ReinforceConfig::default();
    cfg.validate(&SettingsContext::RANGES_ONLY).expect("defaults must validate");
    let json = serde_json::to_string(&cfg).unwrap();
    let back: ReinforceConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
    let partial: ReinforceConfig = serde_json::from_str(r#"{"gamma": 0.9}"#).unwrap();
    assert_eq!(partial, ReinforceConfig { gamma: 0.9, ..ReinforceConfig::default() });
    let unknown = serde_json::from_str::<ReinforceConfig>(r#"{"gama": 0.9}"#);
    assert!(unknown.is_err(), "a misspelled key must be rejected");
}

#[test]
fn validate_names_the_key_and_the_allowed_range() {
    let bad = |f: fn(&mut ReinforceConfig)| {
        let mut cfg = ReinforceConfig::default();
        f(&mut cfg);
        cfg.validate(&SettingsContext::RANGES_ONLY).unwrap_err().to_string()
    };
    assert_eq!(bad(|c| c.gamma = 1.5), "gamma: must be in (0, 1], got 1.5");
    assert_eq!(bad(|c| c.gae_lambda = -0.1), "gae_lambda: must be in [0, 1], got -0.1");
    assert_eq!(bad(|c| c.learning_rate = 0.0), "learning_rate: must be a finite number > 0, got 0");
    assert_eq!(
        bad(|c| c.value_learning_rate = f64::NAN),
        "value_learning_rate: must be a finite number > 0, got NaN"
    );
    assert_eq!(bad(|c| c.n_steps = 0), "n_steps: must be an integer >= 1, got 0");
    assert!(bad(|c| c.hidden = vec![0]).starts_with("hidden: "));
    assert!(bad(|c| c.ent_coef = -1.0).starts_with("ent_coef: "));
    assert!(bad(|c| c.max_grad_norm = f64::INFINITY).starts_with("max_grad_norm: "));
    assert!(bad(|c| c.value_epochs = 0).starts_with("value_epochs: "));
    assert!(bad(|c| c.value_minibatches = 0).starts_with("value_minibatches: "));
    assert!(bad(|c| c.log_std_init = f64::NAN).starts_with("log_std_init: "));
}

#[test]
fn normalize_gives_zero_mean_and_unit_sample_std() {
    let mut xs = [1.0f32, 2.0, 3.0, 6.0];
    normalize(&mut xs);
    let mean: f32 = xs.iter().sum::<f32>() / 4.0;
    let var: f32 = xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / 3.0;
    assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "mean {mean}, variance {var}");
    let mut one = [5.0f32];
    normalize(&mut one);
    assert_eq!(one, [0.0], "a single advantage is only centred");
}

#[test]
fn explained_variance_is_one_for_perfect_and_zero_for_constant_predictions() {
    let returns = [1.0, 2.0, 3.0, 4.0];
    assert!((explained_variance(&returns, &returns) - 1.0).abs() < 1e-12);
    assert!(explained_variance(&[2.5; 4], &returns).abs() < 1e-12);
    assert!(explained_variance(&[0.0; 4], &[1.0; 4]).is_nan());
}
