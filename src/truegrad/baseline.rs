//! The baseline fitted on a pilot batch, for policies without a value network.

use rlpg_agents::PolicyProbe;
use tch::{Kind, Tensor};

use super::rollout::{Episodes, torch};
use crate::run::RunError;

/// A state-and-time baseline `b(s, t) = φ(s, t) · w` fitted by least squares to the
/// reward-to-go of a pilot batch. The features are `[1, s, s_i s_j, V(s), Q(s, mode(s))]` (the
/// last two where the run has them), each also multiplied by `γ^(T − t)` with `T` the longest
/// pilot episode, so that a return cut off by a time limit is in reach of a linear fit.
pub(super) struct FittedBaseline {
    weights: Tensor,
    horizon: f64,
    gamma: f64,
    value: bool,
    critic: bool,
}

impl FittedBaseline {
    pub(super) fn fit(
        probe: &dyn PolicyProbe,
        pilot: &Episodes,
        gamma: f64,
    ) -> Result<Self, RunError> {
        let horizon = pilot.time.iter().copied().max().map_or(0.0, |t| (t + 1) as f64);
        let probe_rows = pilot.obs.narrow(0, 0, pilot.obs.size()[0].min(1));
        let value = tch::no_grad(|| probe.value(&probe_rows)).is_some();
        let critic = tch::no_grad(|| {
            let zero = probe.draw_noise(probe_rows.size()[0] as usize).zeros_like();
            probe
                .reparameterized_action(&probe_rows, &zero)
                .and_then(|a| probe.critic(&probe_rows, &a))
                .is_some()
        });
        let mut fitted = Self {
            weights: Tensor::zeros([0], (Kind::Double, tch::Device::Cpu)),
            horizon,
            gamma,
            value,
            critic,
        };
        let x = fitted.features(probe, pilot)?;
        let y = Tensor::from_slice(&pilot.rewards_to_go(gamma));
        let xtx = x.tr().mm(&x);
        let f = xtx.size()[0];
        // A tiny ridge keeps the normal equations solvable when features coincide.
        let ridge = 1e-9 * xtx.trace().double_value(&[]) / f as f64 + 1e-12;
        let a = xtx + Tensor::eye(f, (Kind::Double, tch::Device::Cpu)) * ridge;
        let b = x.tr().mv(&y).unsqueeze(1);
        fitted.weights = Tensor::f_linalg_solve(&a, &b, true).map_err(torch)?.squeeze_dim(1);
        Ok(fitted)
    }

    pub(super) fn describe(&self) -> String {
        let mut parts = vec!["1", "s", "s_i s_j"];
        if self.value {
            parts.push("V(s)");
        }
        if self.critic {
            parts.push("Q(s, mode(s))");
        }
        format!("[{}] × [1, γ^(T−t)], T = {}", parts.join(", "), self.horizon)
    }

    fn features(&self, probe: &dyn PolicyProbe, episodes: &Episodes) -> Result<Tensor, RunError> {
        let obs = episodes.obs.to_kind(Kind::Double);
        let rows = obs.size()[0];
        let d = obs.size()[1];
        let mut cols =
            vec![Tensor::ones([rows, 1], (Kind::Double, tch::Device::Cpu)), obs.shallow_clone()];
        for i in 0..d {
            for j in i..d {
                cols.push((obs.narrow(1, i, 1) * obs.narrow(1, j, 1)).view([rows, 1]));
            }
        }
        tch::no_grad(|| {
            if self.value {
                if let Some(v) = probe.value(&episodes.obs) {
                    cols.push(v.to_kind(Kind::Double).view([rows, 1]));
                }
            }
            if self.critic {
                let zero = probe.draw_noise(rows as usize).zeros_like();
                if let Some(q) = probe
                    .reparameterized_action(&episodes.obs, &zero)
                    .and_then(|a| probe.critic(&episodes.obs, &a))
                {
                    cols.push(q.to_kind(Kind::Double).view([rows, 1]));
                }
            }
        });
        let base = Tensor::cat(&cols, 1);
        let decay: Vec<f64> =
            episodes.time.iter().map(|&t| self.gamma.powf(self.horizon - t as f64)).collect();
        let decay = Tensor::from_slice(&decay).view([rows, 1]);
        Ok(Tensor::cat(&[&base, &(&base * decay)], 1))
    }

    pub(super) fn predict(
        &self,
        probe: &dyn PolicyProbe,
        episodes: &Episodes,
    ) -> Result<Vec<f64>, RunError> {
        let x = self.features(probe, episodes)?;
        Vec::<f64>::try_from(&x.mv(&self.weights)).map_err(torch)
    }
}
