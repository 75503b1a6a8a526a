//! The discrete SAC update (Gumbel-softmax actor, per-action twin critics) written out by hand
//! for the CPU: the same update as the tensor code in `agent`, in plain Rust on the networks'
//! flat parameter buffers ([`crate::dense`]), without libtorch's per-operation and autograd
//! overhead, which is most of an update's time at classic-control sizes.
//!
//! It computes what the tensor code computes, from the same random draws (replay indices and
//! uniform noise come from libtorch's generator in the same order and shapes), so a seeded run
//! follows the same trajectory up to float rounding; `tests` compares the two update by update.
//! The gradients are derived here rather than by autograd:
//! - **critics**: `Q_k(s, a) = Σ_j a_j q_kj(s)` with `a` the stored one-hot, loss
//!   `mean((Q_1 − y)²) + mean((Q_2 − y)²)`, so `∂L/∂q_kj = 2 (Q_k − y) a_j / B`;
//! - **actor**: loss `mean(α Σ_j p_j log p_j − min(Q_1, Q_2)(s, ã))` (plus the logit-bound
//!   penalty), where `ã` is the straight-through (or plain) Gumbel-softmax sample
//!   `softmax((log p + g) / τ)`. `min` passes the gradient to the smaller critic (half to each
//!   on a tie, as libtorch's `minimum` does); a per-action critic's slope in the action is
//!   `q(s)`; then the softmax, `log_softmax` and, with a logit bound, the centring and `tanh`
//!   are differentiated in closed form. The critics' weights get no gradient.
//!
//! It runs when the agent is SAC on a `Discrete` space with per-action critics, on the CPU,
//! without gradient diagnostics; [`CpuUpdate::new`] says when.

use tch::{Device, Kind, Tensor};

use crate::agent::AgentError;
use crate::dense::{DenseMlp, Trace};
use crate::optim::FlatParams;

use super::agent::{Pathwise, bootstrapped_target_value};
use super::critic::ActionInput;
use super::settings::{Estimator, PathwiseConfig};

/// Uniform draws are floored here before the Gumbel transform, as `GumbelSoftmax` does.
const UNIFORM_FLOOR: f32 = 1e-20;

/// The layouts of the networks in their flat buffers, the settings the update needs, and its
/// working memory (reused, so an update allocates nothing once warm).
#[derive(Debug)]
pub(crate) struct CpuUpdate {
    actor: DenseMlp,
    /// The twin critics `q1`, `q2`; the target critics have the same layout.
    critics: [DenseMlp; 2],
    obs_dim: usize,
    /// Number of actions.
    n: usize,
    temperature: f32,
    straight_through: bool,
    logit_bound: f32,
    expected_value: bool,
    scratch: Scratch,
}

/// Working memory of one update.
#[derive(Debug, Default)]
struct Scratch {
    rows: Vec<f32>,
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<f32>,
    next_obs: Vec<f32>,
    /// The critics' regression targets.
    target: Vec<f32>,
    /// Uniform draws for the Gumbel noise.
    uniform: Vec<f32>,
    /// The actor's log-probabilities, `[B, n]`, and its bounded logits' pre-`tanh` values.
    log_probs: Vec<f32>,
    centred: Vec<f32>,
    /// The relaxed sample and the critics' per-action values at the actor's states.
    relaxed: Vec<f32>,
    values: [Vec<f32>; 2],
    /// Gradient with respect to some network's outputs.
    d_out: Vec<f32>,
    actor_trace: Trace,
    critic_traces: [Trace; 2],
    critic_grad: Vec<f32>,
    actor_grad: Vec<f32>,
}

impl CpuUpdate {
    /// The hand-written update for `agent`'s networks, or `None` when it does not apply: an
    /// estimator other than SAC, a `Box` action space, concatenated critics, gradient
    /// diagnostics (which need autograd's graph), or networks off the CPU.
    pub(crate) fn new(
        cfg: &PathwiseConfig,
        input: ActionInput,
        discrete_actions: Option<usize>,
        obs_dim: usize,
        actor: &FlatParams,
        critic: &FlatParams,
        device: Device,
    ) -> Result<Option<Self>, AgentError> {
        let Some(n) = discrete_actions else { return Ok(None) };
        if cfg.estimator != Estimator::Sac
            || input != ActionInput::PerAction
            || cfg.grad_diagnostics
            || device != Device::Cpu
        {
            return Ok(None);
        }
        let actor_net = DenseMlp::find(actor, "", cfg.activation)?;
        let critics = [
            DenseMlp::find(critic, "q1.", cfg.activation)?,
            DenseMlp::find(critic, "q2.", cfg.activation)?,
        ];
        let widths_ok = actor_net.in_dim() == obs_dim
            && actor_net.out_dim() == n
            && critics.iter().all(|q| q.in_dim() == obs_dim && q.out_dim() == n);
        if !widths_ok {
            return Err(AgentError::Invalid(format!(
                "the networks' widths do not match {obs_dim} observations and {n} actions"
            )));
        }
        Ok(Some(Self {
            actor: actor_net,
            critics,
            obs_dim,
            n,
            temperature: cfg.gumbel_temperature as f32,
            straight_through: cfg.straight_through,
            logit_bound: cfg.logit_bound as f32,
            expected_value: cfg.expected_discrete_value,
            scratch: Scratch::default(),
        }))
    }

    /// Loads a minibatch of `batch` rows drawn from `agent`'s replay buffer into the scratch
    /// buffers.
    fn load_batch(&mut self, agent: &Pathwise, batch: usize) -> Result<(), AgentError> {
        let rows = agent.replay.sample_rows(batch)?;
        let (od, n) = (self.obs_dim, self.n);
        let width = 2 * od + n + 2;
        let s = &mut self.scratch;
        s.rows.resize(batch * width, 0.0);
        rows.f_copy_data(&mut s.rows, batch * width)?;
        for v in [&mut s.obs, &mut s.actions, &mut s.rewards, &mut s.terminated, &mut s.next_obs] {
            v.clear();
        }
        for row in s.rows.chunks_exact(width) {
            s.obs.extend_from_slice(&row[..od]);
            s.actions.extend_from_slice(&row[od..od + n]);
            s.rewards.push(row[od + n]);
            s.terminated.push(row[od + n + 1]);
            s.next_obs.extend_from_slice(&row[od + n + 2..]);
        }
        Ok(())
    }

    /// Fills `scratch.uniform` with `batch × n` uniform draws from libtorch's generator (the
    /// draws the tensor code's `rand_like` takes).
    fn draw_uniform(&mut self, batch: usize) -> Result<(), AgentError> {
        let u = Tensor::f_rand([batch as i64, self.n as i64], (Kind::Float, Device::Cpu))?;
        self.scratch.uniform.resize(batch * self.n, 0.0);
        u.f_copy_data(&mut self.scratch.uniform, batch * self.n)?;
        Ok(())
    }

    /// The actor's log-probabilities at `batch` observations (the minibatch's next
    /// observations, or its observations) into `scratch.log_probs`, and with a logit bound the
    /// centred raw logits into `scratch.centred`.
    fn policy(&mut self, theta: &[f32], obs_is_next: bool, batch: usize) {
        let s = &mut self.scratch;
        let obs = if obs_is_next { &s.next_obs } else { &s.obs };
        let raw = self.actor.forward(theta, obs, batch, &mut s.actor_trace);
        log_probs(raw, self.n, self.logit_bound, &mut s.log_probs, &mut s.centred);
    }

    /// Actions for the environment at `rows` observations `obs` (`[rows, obs_dim]`): exploring,
    /// a categorical sample by the Gumbel-max trick from `rows × n` uniform draws of libtorch's
    /// generator (the draws the tensor code's sample takes); otherwise the most probable
    /// action. `Int64 [rows]`, as the tensor code's `Actor::act` returns them.
    pub(crate) fn act(
        &mut self,
        actor: &FlatParams,
        obs: &Tensor,
        explore: bool,
    ) -> Result<Tensor, AgentError> {
        let (rows, width) = match obs.size().as_slice() {
            &[rows, width] => (rows as usize, width as usize),
            shape => {
                return Err(AgentError::Invalid(format!("observations of shape {shape:?}")));
            }
        };
        if width != self.obs_dim {
            return Err(AgentError::Invalid(format!(
                "observations {width} wide, expected {}",
                self.obs_dim
            )));
        }
        let s = &mut self.scratch;
        s.obs.resize(rows * self.obs_dim, 0.0);
        obs.f_to_kind(Kind::Float)?.f_copy_data(&mut s.obs, rows * self.obs_dim)?;
        let raw = self.actor.forward(actor.cpu_values()?, &s.obs, rows, &mut s.actor_trace);
        log_probs(raw, self.n, self.logit_bound, &mut s.log_probs, &mut s.centred);
        if explore {
            self.draw_uniform(rows)?;
        }
        let s = &self.scratch;
        let actions: Vec<i64> = s
            .log_probs
            .chunks_exact(self.n)
            .enumerate()
            .map(|(i, lp)| {
                let best = if explore {
                    let u = &s.uniform[i * self.n..(i + 1) * self.n];
                    argmax(lp.iter().zip(u).map(|(&l, &u)| l + gumbel(u)))
                } else {
                    argmax(lp.iter().copied())
                };
                best as i64
            })
            .collect();
        Ok(Tensor::from_slice(&actions))
    }

    /// One update of `agent` (critic step; actor, temperature and target step when due) on a
    /// fresh minibatch, as `Pathwise::update_on` does it with tensors.
    pub(crate) fn update(&mut self, agent: &mut Pathwise) -> Result<(), AgentError> {
        let batch = agent.cfg.batch_size;
        let alpha = agent.alpha();
        self.load_batch(agent, batch)?;
        self.td_target(agent, batch, alpha)?;
        self.critic_step(agent, batch)?;
        agent.updates += 1;
        if agent.updates % agent.cfg.policy_delay as u64 == 0 {
            let neg_entropy = self.actor_step(agent, batch, alpha)?;
            let guard = agent.finite();
            agent.variant.after_actor_step(
                &agent.actor,
                neg_entropy,
                &agent.cfg,
                &mut agent.metrics,
                guard,
            )?;
            agent.critic_target.follow(&agent.critic, agent.cfg.tau)?;
        }
        Ok(())
    }

    /// The critics' regression targets into `scratch.target`.
    fn td_target(&mut self, agent: &Pathwise, batch: usize, alpha: f64) -> Result<(), AgentError> {
        let n = self.n;
        self.policy(agent.actor.params.cpu_values()?, true, batch);
        if !self.expected_value {
            self.draw_uniform(batch)?;
        }
        let theta = agent.critic_target.params.cpu_values()?;
        let s = &mut self.scratch;
        for (q, trace) in self.critics.iter().zip(&mut s.critic_traces) {
            q.forward(theta, &s.next_obs, batch, trace);
        }
        let [t1, t2] = &s.critic_traces;
        let (q1, q2) = (t1.output(), t2.output());
        let alpha = alpha as f32;
        s.target.clear();
        for i in 0..batch {
            let row = i * n..(i + 1) * n;
            let lp = &s.log_probs[row.clone()];
            let value = if self.expected_value {
                // Σ_a π(a) (min(Q1', Q2')(a) − α log π(a)).
                lp.iter()
                    .enumerate()
                    .map(|(a, &l)| l.exp() * (q1[i * n + a].min(q2[i * n + a]) - l * alpha))
                    .sum::<f32>()
            } else {
                // A categorical sample a' by the Gumbel-max trick, and the exact −H.
                let a = argmax(lp.iter().zip(&s.uniform[row]).map(|(&l, &u)| l + gumbel(u)));
                let neg_entropy: f32 = lp.iter().map(|&l| l.exp() * l).sum();
                q1[i * n + a].min(q2[i * n + a]) - neg_entropy * alpha
            };
            let target =
                bootstrapped_target_value(s.rewards[i], s.terminated[i], value, agent.cfg.gamma);
            s.target.push(target);
        }
        Ok(())
    }

    /// One Adam step of both critics toward `scratch.target`.
    fn critic_step(&mut self, agent: &mut Pathwise, batch: usize) -> Result<(), AgentError> {
        let guard = agent.finite();
        let n = self.n;
        let s = &mut self.scratch;
        let theta = agent.critic.params.cpu_values()?;
        s.critic_grad.resize(theta.len(), 0.0);
        let mut losses = [0.0f64; 2];
        let mut q1_sum = 0.0f64;
        for (k, (q, trace)) in self.critics.iter().zip(&mut s.critic_traces).enumerate() {
            let values = q.forward(theta, &s.obs, batch, trace);
            s.d_out.clear();
            let mut sum = 0.0f64;
            for i in 0..batch {
                let a = &s.actions[i * n..(i + 1) * n];
                let v = &values[i * n..(i + 1) * n];
                let chosen: f32 = a.iter().zip(v).map(|(&a, &v)| a * v).sum();
                if k == 0 {
                    q1_sum += f64::from(chosen);
                }
                let err = chosen - s.target[i];
                sum += f64::from(err * err);
                let d = 2.0 * err / batch as f32;
                s.d_out.extend(a.iter().map(|&a| d * a));
            }
            losses[k] = sum / batch as f64;
            q.backward(theta, &s.obs, trace, &s.d_out, Some(&mut s.critic_grad), None);
        }
        let qf1 = guard.check("losses/qf1_loss", losses[0])?;
        let qf2 = guard.check("losses/qf2_loss", losses[1])?;
        let norm = clip(&mut s.critic_grad, agent.cfg.max_grad_norm);
        guard.check("losses/critic_grad_norm", norm)?;
        agent.critic.opt.step_cpu(&mut agent.critic.params, &s.critic_grad)?;
        agent.metrics.add("losses/qf1_loss", qf1);
        agent.metrics.add("losses/qf2_loss", qf2);
        agent.metrics.add("losses/qf1_values", q1_sum / batch as f64);
        agent.metrics.add("losses/critic_grad_norm", norm);
        Ok(())
    }

    /// One Adam step of the actor through the critics at the minibatch's observations. Returns
    /// the mean of the policy's `Σ p log p` there (the temperature step's input).
    fn actor_step(
        &mut self,
        agent: &mut Pathwise,
        batch: usize,
        alpha: f64,
    ) -> Result<f64, AgentError> {
        let guard = agent.finite();
        let n = self.n;
        self.policy(agent.actor.params.cpu_values()?, false, batch);
        self.draw_uniform(batch)?;
        let critic_theta = agent.critic.params.cpu_values()?;
        let s = &mut self.scratch;
        for ((q, trace), values) in self.critics.iter().zip(&mut s.critic_traces).zip(&mut s.values)
        {
            values.clear();
            values.extend_from_slice(q.forward(critic_theta, &s.obs, batch, trace));
        }
        let (alpha, inv_batch, tau) = (alpha as f32, 1.0 / batch as f32, self.temperature);
        let bound = self.logit_bound;
        let mut loss_sum = 0.0f64;
        let mut neg_entropy_sum = 0.0f64;
        s.relaxed.resize(batch * n, 0.0);
        s.d_out.clear();
        for i in 0..batch {
            let row = i * n..(i + 1) * n;
            let lp = &s.log_probs[row.clone()];
            let u = &s.uniform[row.clone()];
            // The relaxed sample softmax((log p + g) / τ) and the hard one-hot of its argmax.
            let relaxed = &mut s.relaxed[row.clone()];
            for ((r, &l), &u) in relaxed.iter_mut().zip(lp).zip(u) {
                *r = l + gumbel(u);
            }
            let hard = argmax(relaxed.iter().copied());
            relaxed.iter_mut().for_each(|z| *z /= tau);
            softmax_in_place(relaxed);
            let (v1, v2) = (&s.values[0][row.clone()], &s.values[1][row.clone()]);
            let (mut q1, mut q2) = (0.0f32, 0.0f32);
            for a in 0..n {
                let action = if self.straight_through {
                    let one_hot = if a == hard { 1.0 } else { 0.0 };
                    (one_hot - relaxed[a]) + relaxed[a]
                } else {
                    relaxed[a]
                };
                q1 += action * v1[a];
                q2 += action * v2[a];
            }
            let neg_entropy: f32 = lp.iter().map(|&l| l.exp() * l).sum();
            let penalty: f32 = if bound > 0.0 {
                s.centred[row.clone()].iter().map(|&c| (c.abs() - bound).max(0.0).powi(2)).sum()
            } else {
                0.0
            };
            neg_entropy_sum += f64::from(neg_entropy);
            loss_sum += f64::from(neg_entropy * alpha - q1.min(q2) + penalty);

            // Backward, per row, from ∂loss/∂loss_i = 1/B.
            let (d1, d2) = match q1.partial_cmp(&q2) {
                Some(std::cmp::Ordering::Less) => (-inv_batch, 0.0),
                Some(std::cmp::Ordering::Greater) => (0.0, -inv_batch),
                _ => (-0.5 * inv_batch, -0.5 * inv_batch),
            };
            // ∂/∂ã_a = d1 q1_a + d2 q2_a; straight-through passes it to the relaxed sample.
            // Softmax: ∂/∂z_a = r_a (d_a − Σ_b r_b d_b) / τ, and z = log p + g.
            let d_action = |a: usize| d1 * v1[a] + d2 * v2[a];
            let dot: f32 = (0..n).map(|a| relaxed[a] * d_action(a)).sum();
            let start = s.d_out.len();
            for a in 0..n {
                let d_lp = relaxed[a] * (d_action(a) - dot) / tau
                    // α Σ p log p: ∂/∂log p_a = p_a (log p_a + 1).
                    + alpha * inv_batch * lp[a].exp() * (lp[a] + 1.0);
                s.d_out.push(d_lp);
            }
            // log_softmax: ∂/∂logit_a = ∂/∂log p_a − p_a Σ_b ∂/∂log p_b.
            let d_row = &mut s.d_out[start..];
            let total: f32 = d_row.iter().sum();
            for (d, &l) in d_row.iter_mut().zip(lp) {
                *d -= l.exp() * total;
            }
            if bound > 0.0 {
                // logits = L tanh(c / L) with c the centred raw logits, and the penalty
                // Σ max(|c| − L, 0)²; then the centring c = raw − mean(raw).
                let centred = &s.centred[row];
                for (d, &c) in d_row.iter_mut().zip(centred) {
                    let t = (c / bound).tanh();
                    let excess = (c.abs() - bound).max(0.0);
                    *d = *d * (1.0 - t * t) + 2.0 * excess * c.signum() * inv_batch;
                }
                let mean = d_row.iter().sum::<f32>() / n as f32;
                d_row.iter_mut().for_each(|d| *d -= mean);
            }
        }
        let loss = guard.check("losses/actor_loss", loss_sum / batch as f64)?;
        let theta = agent.actor.params.cpu_values()?;
        s.actor_grad.resize(theta.len(), 0.0);
        self.actor.backward(
            theta,
            &s.obs,
            &mut s.actor_trace,
            &s.d_out,
            Some(&mut s.actor_grad),
            None,
        );
        let norm = clip(&mut s.actor_grad, agent.cfg.max_grad_norm);
        guard.check("losses/actor_grad_norm", norm)?;
        agent.actor.opt.step_cpu(&mut agent.actor.params, &s.actor_grad)?;
        agent.metrics.add("losses/actor_loss", loss);
        agent.metrics.add("losses/actor_grad_norm", norm);
        Ok(neg_entropy_sum / batch as f64)
    }
}

/// The log-probabilities of the policy with `n` raw logits per row into `out`: with `bound > 0`
/// the logits are centred and bounded first (`actor::bounded_logits`), and the centred raw
/// logits go to `centred` (for the penalty and its gradient).
fn log_probs(raw: &[f32], n: usize, bound: f32, out: &mut Vec<f32>, centred: &mut Vec<f32>) {
    out.clear();
    out.extend_from_slice(raw);
    centred.clear();
    for row in out.chunks_exact_mut(n) {
        if bound > 0.0 {
            let mean = row.iter().sum::<f32>() / n as f32;
            for x in row.iter_mut() {
                let c = *x - mean;
                centred.push(c);
                *x = (c / bound).tanh() * bound;
            }
        }
        log_softmax_in_place(row);
    }
}

/// `−ln(−ln u)` with `u` floored away from 0.
fn gumbel(u: f32) -> f32 {
    -(-u.max(UNIFORM_FLOOR).ln()).ln()
}

/// Index of the first largest value (libtorch's `argmax` on ties); NaN counts as largest.
fn argmax(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if i == 0 || v > best.1 || (v.is_nan() && !best.1.is_nan()) {
            best = (i, v);
        }
    }
    best.0
}

/// `x ← log_softmax(x)`.
fn log_softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = x.iter().map(|&v| (v - max).exp()).sum::<f32>().ln() + max;
    x.iter_mut().for_each(|v| *v -= log_sum);
}

/// `x ← softmax(x)`.
fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    x.iter_mut().for_each(|v| *v = (*v - max).exp());
    let sum: f32 = x.iter().sum();
    x.iter_mut().for_each(|v| *v /= sum);
}

/// The global L2 norm of `grad`, and `grad` scaled down to `max_norm` when it is larger and
/// `max_norm > 0`, as `optim::clip_grad_norm` does with tensors.
fn clip(grad: &mut [f32], max_norm: f64) -> f64 {
    let norm = grad.iter().map(|&g| f64::from(g) * f64::from(g)).sum::<f64>().sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = (max_norm / (norm + 1e-6)) as f32;
        grad.iter_mut().for_each(|g| *g *= scale);
    }
    norm
}
