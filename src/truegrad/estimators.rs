//! The estimators measured: score-function gradients with their advantages, and the pathwise
//! gradient through the run's critic.

use rlpg_agents::PolicyProbe;
use tch::{Kind, Tensor};

use super::rollout::{Episodes, torch};
use crate::run::RunError;

/// How the score-function estimators weigh `∇log π(a_t|s_t)`.
#[derive(Clone, Debug)]
pub(super) enum Advantage {
    /// The reward-to-go `G_t`.
    RewardToGo,
    /// `G_t − b_t` with a baseline per row.
    Baseline(Vec<f64>),
    /// GAE(λ) from the value per row; `V = 0` after the episode's end.
    Gae(f64, Vec<f64>),
}

/// Each row's weight `γ^t A_t` in the score-function estimator.
pub(super) fn row_weights(episodes: &Episodes, gamma: f64, advantage: &Advantage) -> Vec<f64> {
    let to_go = episodes.rewards_to_go(gamma);
    let n = to_go.len();
    let adv: Vec<f64> = match advantage {
        Advantage::RewardToGo => to_go,
        Advantage::Baseline(b) => (0..n).map(|i| to_go[i] - b[i]).collect(),
        Advantage::Gae(lambda, v) => {
            let mut out = vec![0.0; n];
            for e in 0..episodes.len() {
                let mut acc = 0.0;
                let (first, end) = (episodes.starts[e], episodes.starts[e + 1]);
                for i in (first..end).rev() {
                    let next = if i + 1 < end { v[i + 1] } else { 0.0 };
                    let delta = episodes.rewards[i] + gamma * next - v[i];
                    acc = delta + gamma * lambda * acc;
                    out[i] = acc;
                }
            }
            out
        }
    };
    adv.iter().zip(&episodes.time).map(|(a, &t)| gamma.powi(t as i32) * a).collect()
}

/// The score-function estimate of `∇J` from episodes `range`: `(1/n) Σ rows w · ∇log π`.
pub(super) fn score_gradient(
    probe: &dyn PolicyProbe,
    episodes: &Episodes,
    range: std::ops::Range<usize>,
    weights: &[f64],
) -> Result<Tensor, RunError> {
    let count = range.len() as f64;
    let (first, rows) = episodes.rows_of(range);
    let obs = episodes.obs.narrow(0, first as i64, rows as i64);
    let noise = episodes.noise.narrow(0, first as i64, rows as i64);
    let w: Vec<f32> = weights[first..first + rows].iter().map(|&w| (w / count) as f32).collect();
    let log_prob = probe.log_prob_from_noise(&obs, &noise);
    let surrogate = (log_prob * Tensor::from_slice(&w)).sum(Kind::Float);
    Ok(probe.policy_parameters().grad(&surrogate)?)
}

/// The pathwise estimate of `∇J` through the probe's critic from the rows `picks`, each
/// weighted (`T_e γ^t` for a state drawn uniformly from its episode of length `T_e`): `None`
/// when the policy has no reparameterization or no critic.
pub(super) fn pathwise_gradient(
    probe: &dyn PolicyProbe,
    episodes: &Episodes,
    picks: &[(usize, f64)],
) -> Result<Option<Tensor>, RunError> {
    let index: Vec<i64> = picks.iter().map(|&(row, _)| row as i64).collect();
    let index = Tensor::from_slice(&index);
    let obs = episodes.obs.index_select(0, &index);
    let noise = episodes.noise.index_select(0, &index);
    let Some(actions) = probe.reparameterized_action(&obs, &noise) else { return Ok(None) };
    let Some(q) = probe.critic(&obs, &actions) else { return Ok(None) };
    let w: Vec<f32> = picks.iter().map(|&(_, w)| (w / picks.len() as f64) as f32).collect();
    let surrogate = (q * Tensor::from_slice(&w)).sum(Kind::Float);
    Ok(Some(probe.policy_parameters().grad(&surrogate)?))
}

/// The values per row of `episodes` (the probe's value network).
pub(super) fn values(
    probe: &dyn PolicyProbe,
    episodes: &Episodes,
) -> Result<Option<Vec<f64>>, RunError> {
    match tch::no_grad(|| probe.value(&episodes.obs)) {
        Some(v) => Ok(Some(
            Vec::<f32>::try_from(&v.flatten(0, -1))
                .map_err(torch)?
                .into_iter()
                .map(f64::from)
                .collect(),
        )),
        None => Ok(None),
    }
}
