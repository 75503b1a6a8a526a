//! The SAC update written out by hand for the CPU: the same update as the tensor code in
//! `agent`, in plain Rust on the networks' flat parameter buffers ([`crate::dense`]), without
//! libtorch's per-operation and autograd overhead, which is most of an update's time at
//! classic-control sizes and a good part of it at Stable-Baselines3's 256×256.
//!
//! It computes what the tensor code computes, from the same random draws (replay indices,
//! uniform and normal noise come from libtorch's generator in the same order and shapes), so a
//! seeded run follows the same trajectory up to float rounding; `tests/pathwise_cpu_update.rs`
//! compares the two update by update. The gradients are derived here rather than by autograd.
//!
//! **Critics** (both kinds): loss `mean((Q_1 − y)²) + mean((Q_2 − y)²)`, so
//! `∂L/∂Q_k = 2 (Q_k − y) / B`; a per-action critic `Q_k(s, a) = Σ_j a_j q_kj(s)` (discrete
//! actions) passes `∂L/∂Q_k · a_j` to its output `j`, a concatenated one `q_k(s, a)` (box
//! actions) takes `∂L/∂Q_k` directly.
//!
//! **Actor**, loss `mean(α log π(ã|s) − min(Q_1, Q_2)(s, ã))` with `ã` the reparameterized
//! sample; `min` passes the gradient to the smaller critic (half to each on a tie, as libtorch's
//! `minimum` does), and the critics' weights get none.
//! - Discrete (Gumbel-softmax): `ã` is the straight-through (or plain) sample
//!   `softmax((log p + g) / τ)` and `log π` is replaced by the exact `Σ_j p_j log p_j`. A
//!   per-action critic's slope in the action is `q(s)`; then the softmax, `log_softmax` and,
//!   with a logit bound, the centring and `tanh` are differentiated in closed form.
//! - Box (tanh-squashed Gaussian): `ã = tanh(u)`, `u = μ + σ ε`, `log σ` the clamped second
//!   half of the actor's outputs, and
//!   `log π = Σ_j (−ε_j²/2 − log σ_j − ln √(2π) − ln(1 − tanh² u_j))`. The critic's slope in the
//!   action comes from backpropagating through it to its input; then
//!   `∂/∂u = ∂/∂ã (1 − ã²) + α/B · 2ã`, `∂/∂μ = ∂/∂u`, `∂/∂log σ = ∂/∂u · σε − α/B` (zero where
//!   the clamp is active).
//!
//! It runs for SAC on the CPU without gradient diagnostics (per-action critics for discrete
//! actions, concatenated ones for a box); [`CpuUpdate::new`] says when.

use tch::{Device, Kind, Tensor};

use crate::agent::AgentError;
use crate::dense::{DenseMlp, Trace};
use crate::distributions::{LOG_STD_MAX, LOG_STD_MIN};
use crate::optim::FlatParams;

use super::actor::ActionCoding;
use super::agent::{Pathwise, bootstrapped_target_value};
use super::critic::ActionInput;
use super::settings::{Estimator, PathwiseConfig};

/// Uniform draws are floored here before the Gumbel transform, as `GumbelSoftmax` does.
const UNIFORM_FLOOR: f32 = 1e-20;
/// `ln √(2π)`.
const HALF_LN_2PI: f32 = 0.918_938_5;

/// The Gumbel-softmax actor's settings.
#[derive(Clone, Copy, Debug)]
struct Relaxation {
    temperature: f32,
    straight_through: bool,
    logit_bound: f32,
    /// The TD target's soft value as the exact expectation over actions, not a sample.
    expected_value: bool,
}

/// The actor's policy family and its settings.
#[derive(Clone, Copy, Debug)]
enum Head {
    /// Gumbel-softmax over `n` actions, with per-action critics.
    Relaxed(Relaxation),
    /// A tanh-squashed Gaussian on the unit box (the actor's outputs are `d` means, then `d`
    /// log-std), with concatenated critics.
    Squashed,
}

/// The layouts of the networks in their flat buffers, the settings the update needs, and its
/// working memory (reused, so an update allocates nothing once warm).
#[derive(Debug)]
pub(crate) struct CpuUpdate {
    actor: DenseMlp,
    /// The twin critics `q1`, `q2`; the target critics have the same layout.
    critics: [DenseMlp; 2],
    obs_dim: usize,
    /// Floats per action: the number of discrete actions, or the box's dimension.
    act_dim: usize,
    head: Head,
    scratch: Scratch,
}

/// Working memory of one update.
#[derive(Debug, Default)]
struct Scratch {
    rows: Vec<f32>,
    obs: Vec<f32>,
    actions: Vec<f32>,
    /// `[obs, action]` rows of the minibatch (concatenated critics only; empty otherwise).
    obs_actions: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<f32>,
    next_obs: Vec<f32>,
    /// The critics' regression targets.
    target: Vec<f32>,
    /// Uniform (Gumbel) or standard normal draws.
    noise: Vec<f32>,
    /// Discrete: the actor's log-probabilities, `[B, n]`, and the centred raw logits of a
    /// bounded actor.
    log_probs: Vec<f32>,
    centred: Vec<f32>,
    /// Discrete: the relaxed sample. Box: the squashed sample `ã`.
    sample: Vec<f32>,
    /// Box: `σ ε`, and 1 where the log-std clamp passes the gradient, 0 where it is active.
    sigma_eps: Vec<f32>,
    clamp_pass: Vec<f32>,
    /// `log π` (box) or `Σ p log p` (discrete) of each row.
    neg_entropy: Vec<f32>,
    /// Concatenated critics' `[obs, sampled action]` input rows.
    critic_input: Vec<f32>,
    /// The critics' outputs at the last inputs they were given.
    values: [Vec<f32>; 2],
    /// Gradient with respect to some network's outputs, and a critic's input gradient.
    d_out: Vec<f32>,
    d_input: Vec<f32>,
    d_action: Vec<f32>,
    actor_trace: Trace,
    critic_traces: [Trace; 2],
    critic_grad: Vec<f32>,
    actor_grad: Vec<f32>,
}

impl CpuUpdate {
    /// The hand-written update for `agent`'s networks, or `None` when it does not apply: TD3,
    /// concatenated critics on a discrete space, gradient diagnostics (which need autograd's
    /// graph), or networks off the CPU.
    pub(crate) fn new(
        cfg: &PathwiseConfig,
        input: ActionInput,
        coding: &ActionCoding,
        obs_dim: usize,
        actor: &FlatParams,
        critic: &FlatParams,
        device: Device,
    ) -> Result<Option<Self>, AgentError> {
        let act_dim = coding.dim();
        let head = match (coding, input) {
            (ActionCoding::Discrete { .. }, ActionInput::PerAction) => Head::Relaxed(Relaxation {
                temperature: cfg.gumbel_temperature as f32,
                straight_through: cfg.straight_through,
                logit_bound: cfg.logit_bound as f32,
                expected_value: cfg.expected_discrete_value,
            }),
            (ActionCoding::Box { .. }, ActionInput::Concatenated) => Head::Squashed,
            _ => return Ok(None),
        };
        if cfg.estimator != Estimator::Sac || cfg.grad_diagnostics || device != Device::Cpu {
            return Ok(None);
        }
        let actor_net = DenseMlp::find(actor, "", cfg.activation)?;
        let critics = [
            DenseMlp::find(critic, "q1.", cfg.activation)?,
            DenseMlp::find(critic, "q2.", cfg.activation)?,
        ];
        let (actor_out, critic_in, critic_out) = match head {
            Head::Relaxed(_) => (act_dim, obs_dim, act_dim),
            Head::Squashed => (2 * act_dim, obs_dim + act_dim, 1),
        };
        let widths_ok = actor_net.in_dim() == obs_dim
            && actor_net.out_dim() == actor_out
            && critics.iter().all(|q| q.in_dim() == critic_in && q.out_dim() == critic_out);
        if !widths_ok {
            return Err(AgentError::Invalid(format!(
                "the networks' widths do not match {obs_dim} observations and {act_dim} action \
                 inputs"
            )));
        }
        Ok(Some(Self {
            actor: actor_net,
            critics,
            obs_dim,
            act_dim,
            head,
            scratch: Scratch::default(),
        }))
    }

    /// Loads a minibatch of `batch` rows drawn from `agent`'s replay buffer into the scratch
    /// buffers.
    fn load_batch(&mut self, agent: &Pathwise, batch: usize) -> Result<(), AgentError> {
        let rows = agent.replay.sample_rows(batch)?;
        let (od, ad) = (self.obs_dim, self.act_dim);
        let width = 2 * od + ad + 2;
        // `[obs, action]` rows are the critics' input only where they are concatenated.
        let concatenated = matches!(self.head, Head::Squashed);
        let s = &mut self.scratch;
        s.rows.resize(batch * width, 0.0);
        rows.f_copy_data(&mut s.rows, batch * width)?;
        let parts = [
            &mut s.obs,
            &mut s.actions,
            &mut s.obs_actions,
            &mut s.rewards,
            &mut s.terminated,
            &mut s.next_obs,
        ];
        for v in parts {
            v.clear();
        }
        for row in s.rows.chunks_exact(width) {
            s.obs.extend_from_slice(&row[..od]);
            s.actions.extend_from_slice(&row[od..od + ad]);
            if concatenated {
                s.obs_actions.extend_from_slice(&row[..od + ad]);
            }
            s.rewards.push(row[od + ad]);
            s.terminated.push(row[od + ad + 1]);
            s.next_obs.extend_from_slice(&row[od + ad + 2..]);
        }
        Ok(())
    }

    /// Fills `scratch.noise` with `rows × cols` draws from libtorch's generator: uniform
    /// (`normal = false`) or standard normal, the draws the tensor code's `rand_like` or
    /// `randn_like` takes.
    fn draw(&mut self, rows: usize, cols: usize, normal: bool) -> Result<(), AgentError> {
        let shape = [rows as i64, cols as i64];
        let options = (Kind::Float, Device::Cpu);
        let t =
            if normal { Tensor::f_randn(shape, options)? } else { Tensor::f_rand(shape, options)? };
        self.scratch.noise.resize(rows * cols, 0.0);
        t.f_copy_data(&mut self.scratch.noise, rows * cols)?;
        Ok(())
    }

    /// The discrete actor's log-probabilities at `batch` observations (the minibatch's next
    /// observations, or its observations) into `scratch.log_probs`, and with a logit bound the
    /// centred raw logits into `scratch.centred`.
    fn relaxed_policy(&mut self, theta: &[f32], obs_is_next: bool, batch: usize, bound: f32) {
        let s = &mut self.scratch;
        let obs = if obs_is_next { &s.next_obs } else { &s.obs };
        let raw = self.actor.forward(theta, obs, batch, &mut s.actor_trace);
        log_probs(raw, self.act_dim, bound, &mut s.log_probs, &mut s.centred);
    }

    /// A reparameterized sample of the box actor at `batch` observations (the minibatch's next
    /// observations, or its observations) from fresh normal draws: `ã` into `scratch.sample`,
    /// `log π(ã|s)` into `scratch.neg_entropy`, and what the backward pass needs (`σ ε`, the
    /// clamp's mask) beside them.
    fn squashed_sample(
        &mut self,
        theta: &[f32],
        obs_is_next: bool,
        batch: usize,
    ) -> Result<(), AgentError> {
        self.draw(batch, self.act_dim, true)?;
        self.squashed_from_noise(theta, obs_is_next, batch);
        Ok(())
    }

    /// [`CpuUpdate::squashed_sample`] with the standard normal noise already in
    /// `scratch.noise`.
    fn squashed_from_noise(&mut self, theta: &[f32], obs_is_next: bool, batch: usize) {
        let d = self.act_dim;
        let s = &mut self.scratch;
        let obs = if obs_is_next { &s.next_obs } else { &s.obs };
        let outputs = self.actor.forward(theta, obs, batch, &mut s.actor_trace);
        for v in [&mut s.sample, &mut s.sigma_eps, &mut s.clamp_pass, &mut s.neg_entropy] {
            v.clear();
        }
        let (min, max) = (LOG_STD_MIN as f32, LOG_STD_MAX as f32);
        for (out, eps) in outputs.chunks_exact(2 * d).zip(s.noise.chunks_exact(d)) {
            let mut log_prob = 0.0f32;
            for j in 0..d {
                let (mean, raw) = (out[j], out[d + j]);
                let log_std = raw.clamp(min, max);
                let std = log_std.exp();
                let sigma_eps = std * eps[j];
                let u = mean + sigma_eps;
                let z = (u - mean) / std;
                // ln(1 − tanh² u) as `log_one_minus_tanh_squared` computes it.
                let log_one_minus_tanh2 = (-u - softplus(-2.0 * u) + std::f32::consts::LN_2) * 2.0;
                log_prob += z * z * -0.5 - log_std - HALF_LN_2PI - log_one_minus_tanh2;
                s.sample.push(u.tanh());
                s.sigma_eps.push(sigma_eps);
                s.clamp_pass.push(if (min..=max).contains(&raw) { 1.0 } else { 0.0 });
            }
            s.neg_entropy.push(log_prob);
        }
    }

    /// `[obs, scratch.sample]` rows into `scratch.critic_input`.
    fn critic_input(&mut self, obs_is_next: bool) {
        let s = &mut self.scratch;
        let obs = if obs_is_next { &s.next_obs } else { &s.obs };
        s.critic_input.clear();
        let rows = obs.chunks_exact(self.obs_dim).zip(s.sample.chunks_exact(self.act_dim));
        for (o, a) in rows {
            s.critic_input.extend_from_slice(o);
            s.critic_input.extend_from_slice(a);
        }
    }

    /// Actions at `rows` observations `obs` (`[rows, obs_dim]`), in the agent's form, as the
    /// tensor code's `Actor::act` returns them, from the same draws of libtorch's generator:
    /// - discrete: exploring, a categorical sample by the Gumbel-max trick from `rows × n`
    ///   uniform draws; otherwise the most probable action. `Int64 [rows]`.
    /// - box: exploring, `tanh(μ + σ ε)` with `ε` from `rows × d` normal draws, or `eps`
    ///   (`[rows, d]`, temporally correlated noise) when given; otherwise `tanh(μ)`.
    ///   `Float [rows, d]` on the unit box.
    ///
    /// Errors on observations or noise of another shape (which the tensor code then reports).
    pub(crate) fn act(
        &mut self,
        actor: &FlatParams,
        obs: &Tensor,
        explore: bool,
        eps: Option<&Tensor>,
    ) -> Result<Tensor, AgentError> {
        let rows = self.load_obs(obs)?;
        let theta = actor.cpu_values()?;
        match self.head {
            Head::Relaxed(r) => self.act_relaxed(theta, rows, explore, r.logit_bound),
            Head::Squashed => self.act_squashed(theta, rows, explore, eps),
        }
    }

    /// Copies observations `[rows, obs_dim]` into `scratch.obs`; returns `rows`.
    fn load_obs(&mut self, obs: &Tensor) -> Result<usize, AgentError> {
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
        s.obs.resize(rows * width, 0.0);
        obs.f_to_kind(Kind::Float)?.f_copy_data(&mut s.obs, rows * width)?;
        Ok(rows)
    }

    fn act_squashed(
        &mut self,
        theta: &[f32],
        rows: usize,
        explore: bool,
        eps: Option<&Tensor>,
    ) -> Result<Tensor, AgentError> {
        let d = self.act_dim;
        match (explore, eps) {
            (true, None) => self.squashed_sample(theta, false, rows)?,
            (true, Some(eps)) => {
                if eps.size() != [rows as i64, d as i64] {
                    return Err(AgentError::Invalid(format!(
                        "exploration noise of shape {:?}, expected [{rows}, {d}]",
                        eps.size()
                    )));
                }
                self.scratch.noise.resize(rows * d, 0.0);
                eps.f_to_kind(Kind::Float)?.f_copy_data(&mut self.scratch.noise, rows * d)?;
                self.squashed_from_noise(theta, false, rows);
            }
            (false, _) => {
                let s = &mut self.scratch;
                let outputs = self.actor.forward(theta, &s.obs, rows, &mut s.actor_trace);
                s.sample.clear();
                let means = outputs.chunks_exact(2 * d).flat_map(|out| &out[..d]);
                s.sample.extend(means.map(|m| m.tanh()));
            }
        }
        Ok(Tensor::from_slice(&self.scratch.sample).view([rows as i64, d as i64]))
    }

    fn act_relaxed(
        &mut self,
        theta: &[f32],
        rows: usize,
        explore: bool,
        bound: f32,
    ) -> Result<Tensor, AgentError> {
        let n = self.act_dim;
        let s = &mut self.scratch;
        let raw = self.actor.forward(theta, &s.obs, rows, &mut s.actor_trace);
        log_probs(raw, n, bound, &mut s.log_probs, &mut s.centred);
        if explore {
            self.draw(rows, n, false)?;
        }
        let s = &self.scratch;
        let actions: Vec<i64> = s
            .log_probs
            .chunks_exact(n)
            .enumerate()
            .map(|(i, lp)| {
                let best = if explore {
                    let u = &s.noise[i * n..(i + 1) * n];
                    gumbel_max(lp, u)
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
            let neg_entropy = match self.head {
                Head::Relaxed(r) => self.relaxed_actor_step(agent, batch, alpha, r)?,
                Head::Squashed => self.squashed_actor_step(agent, batch, alpha)?,
            };
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

    /// The critics' regression targets into `scratch.target`: `r + γ (1 − terminated) V'(s')`
    /// with SAC's soft value under the target critics.
    fn td_target(&mut self, agent: &Pathwise, batch: usize, alpha: f64) -> Result<(), AgentError> {
        let (n, alpha) = (self.act_dim, alpha as f32);
        let actor_theta = agent.actor.params.cpu_values()?;
        let theta = agent.critic_target.params.cpu_values()?;
        match self.head {
            Head::Relaxed(Relaxation { logit_bound, expected_value, .. }) => {
                self.relaxed_policy(actor_theta, true, batch, logit_bound);
                if !expected_value {
                    self.draw(batch, n, false)?;
                }
                let s = &mut self.scratch;
                let (traces, values) = (&mut s.critic_traces, &mut s.values);
                critic_values(&self.critics, theta, &s.next_obs, batch, traces, values);
                let [q1, q2] = &s.values;
                s.target.clear();
                for i in 0..batch {
                    let row = i * n..(i + 1) * n;
                    let lp = &s.log_probs[row.clone()];
                    s.target.push(if expected_value {
                        // Σ_a π(a) (min(Q1', Q2')(a) − α log π(a)).
                        lp.iter()
                            .enumerate()
                            .map(|(a, &l)| l.exp() * (q1[i * n + a].min(q2[i * n + a]) - l * alpha))
                            .sum::<f32>()
                    } else {
                        // A categorical sample a' by the Gumbel-max trick, and the exact −H.
                        let a = gumbel_max(lp, &s.noise[row]);
                        q1[i * n + a].min(q2[i * n + a]) - neg_entropy(lp) * alpha
                    });
                }
            }
            Head::Squashed => {
                self.squashed_sample(actor_theta, true, batch)?;
                self.critic_input(true);
                let s = &mut self.scratch;
                let (traces, values) = (&mut s.critic_traces, &mut s.values);
                critic_values(&self.critics, theta, &s.critic_input, batch, traces, values);
                let [q1, q2] = &s.values;
                s.target.clear();
                s.target.extend((0..batch).map(|i| q1[i].min(q2[i]) - s.neg_entropy[i] * alpha));
            }
        }
        // `scratch.target` holds V'(s'); the bootstrapped targets replace it.
        let s = &mut self.scratch;
        for ((target, &r), &t) in s.target.iter_mut().zip(&s.rewards).zip(&s.terminated) {
            *target = bootstrapped_target_value(r, t, *target, agent.cfg.gamma);
        }
        Ok(())
    }

    /// One Adam step of both critics toward `scratch.target`.
    fn critic_step(&mut self, agent: &mut Pathwise, batch: usize) -> Result<(), AgentError> {
        let guard = agent.finite();
        let n = self.act_dim;
        let per_action = matches!(self.head, Head::Relaxed(_));
        let s = &mut self.scratch;
        let theta = agent.critic.params.cpu_values()?;
        s.critic_grad.resize(theta.len(), 0.0);
        let input = if per_action { &s.obs } else { &s.obs_actions };
        let mut losses = [0.0f64; 2];
        let mut q1_sum = 0.0f64;
        for (k, (q, trace)) in self.critics.iter().zip(&mut s.critic_traces).enumerate() {
            let values = q.forward(theta, input, batch, trace);
            s.d_out.clear();
            let mut sum = 0.0f64;
            for i in 0..batch {
                let a = &s.actions[i * n..(i + 1) * n];
                let chosen = if per_action {
                    a.iter().zip(&values[i * n..(i + 1) * n]).map(|(&a, &v)| a * v).sum()
                } else {
                    values[i]
                };
                if k == 0 {
                    q1_sum += f64::from(chosen);
                }
                let err = chosen - s.target[i];
                sum += f64::from(err * err);
                let d = 2.0 * err / batch as f32;
                if per_action {
                    s.d_out.extend(a.iter().map(|&a| d * a));
                } else {
                    s.d_out.push(d);
                }
            }
            losses[k] = sum / batch as f64;
            q.backward(theta, input, trace, &s.d_out, Some(&mut s.critic_grad), None);
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

    /// The actor's Adam step on the gradient in `scratch.d_out` (with respect to its outputs at
    /// the minibatch's observations), after the loss `loss` was checked; returns the mean of
    /// `scratch.neg_entropy` for the temperature step.
    fn finish_actor_step(
        &mut self,
        agent: &mut Pathwise,
        batch: usize,
        loss: f64,
    ) -> Result<f64, AgentError> {
        let guard = agent.finite();
        let loss = guard.check("losses/actor_loss", loss)?;
        let s = &mut self.scratch;
        let theta = agent.actor.params.cpu_values()?;
        s.actor_grad.resize(theta.len(), 0.0);
        let grad = Some(s.actor_grad.as_mut_slice());
        self.actor.backward(theta, &s.obs, &mut s.actor_trace, &s.d_out, grad, None);
        let norm = clip(&mut s.actor_grad, agent.cfg.max_grad_norm);
        guard.check("losses/actor_grad_norm", norm)?;
        agent.actor.opt.step_cpu(&mut agent.actor.params, &s.actor_grad)?;
        agent.metrics.add("losses/actor_loss", loss);
        agent.metrics.add("losses/actor_grad_norm", norm);
        Ok(s.neg_entropy.iter().map(|&v| f64::from(v)).sum::<f64>() / batch as f64)
    }

    /// One Adam step of the box actor through the critics at the minibatch's observations.
    fn squashed_actor_step(
        &mut self,
        agent: &mut Pathwise,
        batch: usize,
        alpha: f64,
    ) -> Result<f64, AgentError> {
        let (od, d) = (self.obs_dim, self.act_dim);
        self.squashed_sample(agent.actor.params.cpu_values()?, false, batch)?;
        self.critic_input(false);
        let critic_theta = agent.critic.params.cpu_values()?;
        let s = &mut self.scratch;
        let (traces, values) = (&mut s.critic_traces, &mut s.values);
        critic_values(&self.critics, critic_theta, &s.critic_input, batch, traces, values);
        let (alpha, inv_batch) = (alpha as f32, 1.0 / batch as f32);
        let mut loss_sum = 0.0f64;
        // ∂loss/∂ã through each critic: backpropagate ∂loss/∂Q_k to the critic's input.
        s.d_action.clear();
        s.d_action.resize(batch * d, 0.0);
        for k in 0..2 {
            s.d_out.clear();
            for i in 0..batch {
                let (q1, q2) = (s.values[0][i], s.values[1][i]);
                if k == 0 {
                    loss_sum += f64::from(s.neg_entropy[i] * alpha - q1.min(q2));
                }
                let (d1, d2) = min_gradient(q1, q2, inv_batch);
                s.d_out.push(if k == 0 { d1 } else { d2 });
            }
            let trace = &mut s.critic_traces[k];
            let input = Some(&mut s.d_input);
            self.critics[k].backward(critic_theta, &s.critic_input, trace, &s.d_out, None, input);
            for (da, row) in s.d_action.chunks_exact_mut(d).zip(s.d_input.chunks_exact(od + d)) {
                for (x, &g) in da.iter_mut().zip(&row[od..]) {
                    *x += g;
                }
            }
        }
        // Through tanh and the reparameterization to the means and the raw log-std.
        s.d_out.clear();
        for i in 0..batch {
            let row = i * d..(i + 1) * d;
            let (a, da) = (&s.sample[row.clone()], &s.d_action[row.clone()]);
            let (sigma_eps, pass) = (&s.sigma_eps[row.clone()], &s.clamp_pass[row]);
            let du: Vec<f32> = (0..d)
                .map(|j| da[j] * (1.0 - a[j] * a[j]) + alpha * inv_batch * 2.0 * a[j])
                .collect();
            s.d_out.extend_from_slice(&du);
            s.d_out.extend((0..d).map(|j| (du[j] * sigma_eps[j] - alpha * inv_batch) * pass[j]));
        }
        self.finish_actor_step(agent, batch, loss_sum / batch as f64)
    }

    /// One Adam step of the discrete actor through the critics at the minibatch's
    /// observations.
    fn relaxed_actor_step(
        &mut self,
        agent: &mut Pathwise,
        batch: usize,
        alpha: f64,
        relaxation: Relaxation,
    ) -> Result<f64, AgentError> {
        let Relaxation { temperature: tau, straight_through, logit_bound: bound, .. } = relaxation;
        let n = self.act_dim;
        self.relaxed_policy(agent.actor.params.cpu_values()?, false, batch, bound);
        self.draw(batch, n, false)?;
        let critic_theta = agent.critic.params.cpu_values()?;
        let s = &mut self.scratch;
        let (traces, values) = (&mut s.critic_traces, &mut s.values);
        critic_values(&self.critics, critic_theta, &s.obs, batch, traces, values);
        let (alpha, inv_batch) = (alpha as f32, 1.0 / batch as f32);
        let mut loss_sum = 0.0f64;
        s.sample.resize(batch * n, 0.0);
        s.neg_entropy.clear();
        s.d_out.clear();
        for i in 0..batch {
            let row = i * n..(i + 1) * n;
            let lp = &s.log_probs[row.clone()];
            let u = &s.noise[row.clone()];
            // The relaxed sample softmax((log p + g) / τ) and the hard one-hot of the argmax of
            // log p + g.
            let relaxed = &mut s.sample[row.clone()];
            for ((r, &l), &u) in relaxed.iter_mut().zip(lp).zip(u) {
                *r = l + gumbel(u);
            }
            let hard = argmax(relaxed.iter().copied());
            relaxed.iter_mut().for_each(|z| *z /= tau);
            softmax_in_place(relaxed);
            let (v1, v2) = (&s.values[0][row.clone()], &s.values[1][row.clone()]);
            let (mut q1, mut q2) = (0.0f32, 0.0f32);
            for a in 0..n {
                let action = if straight_through {
                    let one_hot = if a == hard { 1.0 } else { 0.0 };
                    (one_hot - relaxed[a]) + relaxed[a]
                } else {
                    relaxed[a]
                };
                q1 += action * v1[a];
                q2 += action * v2[a];
            }
            let neg_entropy = neg_entropy(lp);
            let penalty: f32 = if bound > 0.0 {
                s.centred[row.clone()].iter().map(|&c| (c.abs() - bound).max(0.0).powi(2)).sum()
            } else {
                0.0
            };
            s.neg_entropy.push(neg_entropy);
            loss_sum += f64::from(neg_entropy * alpha - q1.min(q2) + penalty);

            // Backward, per row, from ∂loss/∂loss_i = 1/B.
            let (d1, d2) = min_gradient(q1, q2, inv_batch);
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
        self.finish_actor_step(agent, batch, loss_sum / batch as f64)
    }
}

/// Both critics' outputs at `rows` inputs `input` into `values`, their traces kept in `traces`
/// for a backward pass.
fn critic_values(
    critics: &[DenseMlp; 2],
    theta: &[f32],
    input: &[f32],
    rows: usize,
    traces: &mut [Trace; 2],
    values: &mut [Vec<f32>; 2],
) {
    for ((q, trace), values) in critics.iter().zip(traces).zip(values) {
        values.clear();
        values.extend_from_slice(q.forward(theta, input, rows, trace));
    }
}

/// The gradient of `−scale · min(q1, q2)` (the actor loss's critic term, `scale = 1/B`) with
/// respect to `q1` and `q2`: the smaller critic gets `−scale`, each gets half of it on a tie,
/// as libtorch's `minimum` passes it.
fn min_gradient(q1: f32, q2: f32, scale: f32) -> (f32, f32) {
    match q1.partial_cmp(&q2) {
        Some(std::cmp::Ordering::Less) => (-scale, 0.0),
        Some(std::cmp::Ordering::Greater) => (0.0, -scale),
        _ => (-0.5 * scale, -0.5 * scale),
    }
}

/// libtorch's `softplus` (β = 1, threshold 20): `ln(1 + eˣ)`, or `x` above the threshold.
fn softplus(x: f32) -> f32 {
    if x > 20.0 { x } else { x.exp().ln_1p() }
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

/// A categorical sample from log-probabilities `lp` and as many uniform draws `u`, by the
/// Gumbel-max trick: the index of the largest `lp_a + gumbel(u_a)`.
fn gumbel_max(lp: &[f32], u: &[f32]) -> usize {
    argmax(lp.iter().zip(u).map(|(&l, &u)| l + gumbel(u)))
}

/// `Σ p log p` of one row of log-probabilities: the exact negative entropy.
fn neg_entropy(lp: &[f32]) -> f32 {
    lp.iter().map(|&l| l.exp() * l).sum()
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
