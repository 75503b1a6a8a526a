//! The on-policy rollout buffer and the returns and advantages computed from it.
//!
//! A rollout is `n_steps` lockstep steps of `n_envs` environments, stored step-major: the entry
//! of step `t` and env `e` is at flat index `t * n_envs + e`, and observations occupy
//! `obs_dim` consecutive floats from `(t * n_envs + e) * obs_dim`.
//!
//! The bootstrapping rule, which every return computed here follows:
//! - **terminated** (a true end): the value after the step is zero, never `V(next_obs)`;
//! - **truncated** (a time limit): the episode could have gone on, so the return bootstraps
//!   from `V(next_obs)`, the value of the episode's *final* observation;
//! - **cut by the end of the rollout** (still running): bootstrap from `V(next_obs)` too.

use tch::{Kind, Tensor};

use crate::agent::{Actions, AgentError, Transition};

/// Advantages and the returns the value function regresses on, one per stored step, step-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Advantages {
    /// `A_t`, the GAE(λ) advantage of each step.
    pub advantages: Vec<f32>,
    /// `A_t + V(s_t)`: the λ-return of each step (with λ = 1, the discounted return-to-go,
    /// bootstrapped as described in the module docs).
    pub returns: Vec<f32>,
}

/// Experience of one rollout of `n_steps` steps in `n_envs` environments.
///
/// Observations, rewards and flags are copied into vectors allocated once; actions are kept as
/// the tensors the agent produced (no copy) and joined once when the rollout is used. Values are
/// not stored: the value network does not change during a rollout, so `V(s)` and `V(next_obs)`
/// are computed for the whole rollout in one batched pass when it is used.
#[derive(Debug)]
pub struct RolloutBuffer {
    n_steps: usize,
    n_envs: usize,
    obs_dim: usize,
    obs: Vec<f32>,
    next_obs: Vec<f32>,
    actions: Actions,
    /// Steps stored.
    steps: usize,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    /// The action masks each action was chosen under, `[len * n_envs * mask_len]` (empty
    /// without masks; the first step fixes `mask_len`).
    masks: Vec<bool>,
    mask_len: usize,
}

impl RolloutBuffer {
    /// An empty buffer for `n_steps` steps of `n_envs` environments with `obs_dim`-float
    /// observations.
    pub fn new(n_steps: usize, n_envs: usize, obs_dim: usize) -> Self {
        let n = n_steps * n_envs;
        Self {
            n_steps,
            n_envs,
            obs_dim,
            obs: Vec::with_capacity(n * obs_dim),
            next_obs: Vec::with_capacity(n * obs_dim),
            actions: Actions::default(),
            steps: 0,
            rewards: Vec::with_capacity(n),
            terminated: Vec::with_capacity(n),
            truncated: Vec::with_capacity(n),
            masks: Vec::new(),
            mask_len: 0,
        }
    }

    /// Appends one lockstep step. Errors if the buffer is full or a slice has the wrong length.
    pub fn push(&mut self, t: &Transition<'_>) -> Result<(), AgentError> {
        if self.is_full() {
            return Err(AgentError::Invalid(format!(
                "rollout buffer is full ({} steps); call clear() before pushing more",
                self.n_steps
            )));
        }
        let (n, d) = (self.n_envs, self.obs_dim);
        let check = |what: &str, len: usize, want: usize| {
            if len == want {
                Ok(())
            } else {
                Err(AgentError::Invalid(format!(
                    "transition {what} has {len} values, expected {want} ({n} envs)"
                )))
            }
        };
        check("obs", t.obs.len(), n * d)?;
        check("next_obs", t.next_obs.len(), n * d)?;
        check("rewards", t.rewards.len(), n)?;
        check("terminated", t.terminated.len(), n)?;
        check("truncated", t.truncated.len(), n)?;
        check("actions", t.actions.rows(), n)?;
        let mask_len = match t.masks {
            Some(m) if m.len() % n == 0 && !m.is_empty() => m.len() / n,
            Some(m) => {
                return Err(AgentError::Invalid(format!(
                    "transition masks have {} flags, which do not fill {n} rows",
                    m.len()
                )));
            }
            None => 0,
        };
        if self.steps > 0 && mask_len != self.mask_len {
            return Err(AgentError::Invalid(format!(
                "transition masks have {mask_len} flags a row; this rollout holds {} (0: none)",
                self.mask_len
            )));
        }
        self.append_actions(t.actions)?;
        self.mask_len = mask_len;
        self.masks.extend_from_slice(t.masks.unwrap_or_default());
        self.obs.extend_from_slice(t.obs);
        self.next_obs.extend_from_slice(t.next_obs);
        self.steps += 1;
        self.rewards.extend_from_slice(t.rewards);
        self.terminated.extend_from_slice(t.terminated);
        self.truncated.extend_from_slice(t.truncated);
        Ok(())
    }

    /// Appends one step's actions (the first step fixes their kind and width).
    fn append_actions(&mut self, actions: &Actions) -> Result<(), AgentError> {
        let held = self.actions.to_string();
        let mismatch = || {
            AgentError::Invalid(format!(
                "transition actions are {actions}; this rollout holds {held}"
            ))
        };
        if self.steps == 0 {
            match actions {
                Actions::Indices { width, .. } => {
                    self.actions.indices(0, *width);
                }
                Actions::Floats { width, .. } => {
                    self.actions.floats(0, *width);
                }
            }
        }
        match (&mut self.actions, actions) {
            (Actions::Indices { values, width }, Actions::Indices { values: new, width: w })
                if width == w =>
            {
                values.extend_from_slice(new)
            }
            (Actions::Floats { values, width }, Actions::Floats { values: new, width: w })
                if width == w =>
            {
                values.extend_from_slice(new)
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }

    /// Number of steps stored.
    pub fn len(&self) -> usize {
        self.steps
    }

    /// Whether no step is stored.
    pub fn is_empty(&self) -> bool {
        self.steps == 0
    }

    /// Whether all `n_steps` steps are stored.
    pub fn is_full(&self) -> bool {
        self.steps == self.n_steps
    }

    /// Forgets every stored step, keeping the allocations.
    pub fn clear(&mut self) {
        self.obs.clear();
        self.next_obs.clear();
        match &mut self.actions {
            Actions::Indices { values, .. } => values.clear(),
            Actions::Floats { values, .. } => values.clear(),
        }
        self.steps = 0;
        self.rewards.clear();
        self.terminated.clear();
        self.truncated.clear();
        self.masks.clear();
    }

    /// Steps per rollout.
    pub fn n_steps(&self) -> usize {
        self.n_steps
    }

    /// Environments per step.
    pub fn n_envs(&self) -> usize {
        self.n_envs
    }

    /// Floats per observation.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Observations the actions were chosen from, `[len * n_envs * obs_dim]` step-major.
    pub fn obs(&self) -> &[f32] {
        &self.obs
    }

    /// Observations after each step (final observations where an episode ended).
    pub fn next_obs(&self) -> &[f32] {
        &self.next_obs
    }

    /// Rewards, `[len * n_envs]` step-major.
    pub fn rewards(&self) -> &[f64] {
        &self.rewards
    }

    /// Terminated flags, `[len * n_envs]` step-major.
    pub fn terminated(&self) -> &[bool] {
        &self.terminated
    }

    /// Truncated flags, `[len * n_envs]` step-major.
    pub fn truncated(&self) -> &[bool] {
        &self.truncated
    }

    /// The action masks the actions were chosen under, `[len * n_envs * mask_len]`
    /// step-major, or `None` when the transitions carried none.
    pub fn masks(&self) -> Option<&[bool]> {
        (self.mask_len > 0).then_some(&self.masks[..])
    }

    /// The stored steps as named tensors under `prefix`, for checkpoints taken mid-rollout:
    /// `{prefix}/steps` (`Int64 [1]`), and when it is not 0 `{prefix}/obs`, `{prefix}/next_obs`
    /// (`Float`), `{prefix}/rewards` (`Double`), `{prefix}/terminated`, `{prefix}/truncated`
    /// (`Bool`), `{prefix}/actions` (as [`RolloutBuffer::actions`]) and, with masks,
    /// `{prefix}/masks` (`Bool [len * n_envs, mask_len]`).
    pub fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut state = vec![(format!("{prefix}/steps"), Tensor::from_slice(&[self.len() as i64]))];
        if !self.is_empty() {
            state.extend([
                (format!("{prefix}/obs"), Tensor::from_slice(&self.obs)),
                (format!("{prefix}/next_obs"), Tensor::from_slice(&self.next_obs)),
                (format!("{prefix}/rewards"), Tensor::from_slice(&self.rewards)),
                (format!("{prefix}/terminated"), Tensor::from_slice(&self.terminated)),
                (format!("{prefix}/truncated"), Tensor::from_slice(&self.truncated)),
                (format!("{prefix}/actions"), self.actions.to_tensor()),
            ]);
            if self.mask_len > 0 {
                let masks = Tensor::from_slice(&self.masks).view([-1, self.mask_len as i64]);
                state.push((format!("{prefix}/masks"), masks));
            }
        }
        state
    }

    /// Replaces the stored steps with those [`RolloutBuffer::state_tensors`] saved under
    /// `prefix` in `tensors`. Checks every length before changing anything.
    pub fn load_state_tensors(
        &mut self,
        prefix: &str,
        tensors: &[(String, Tensor)],
    ) -> Result<(), AgentError> {
        let get = |name: &str| {
            let full = format!("{prefix}/{name}");
            tensors.iter().find(|(n, _)| *n == full).map(|(_, t)| t).ok_or_else(|| {
                AgentError::Invalid(format!("checkpoint is missing tensor '{full}'"))
            })
        };
        let steps = get("steps")?.f_int64_value(&[0])?;
        let steps = usize::try_from(steps).ok().filter(|&s| s < self.n_steps).ok_or_else(|| {
            AgentError::Invalid(format!(
                "checkpoint rollout holds {steps} steps; this buffer takes fewer than {}",
                self.n_steps
            ))
        })?;
        if steps == 0 {
            self.clear();
            return Ok(());
        }
        let (n, d) = (self.n_envs, self.obs_dim);
        let rows = steps * n;
        let read = |name: &str, kind: Kind, want: usize| -> Result<Tensor, AgentError> {
            let t = get(name)?;
            if t.kind() != kind || t.numel() != want {
                return Err(AgentError::Invalid(format!(
                    "checkpoint tensor '{prefix}/{name}' is {:?} {:?}, expected {kind:?} with \
                     {want} values",
                    t.kind(),
                    t.size()
                )));
            }
            Ok(t.f_flatten(0, -1)?)
        };
        let obs = Vec::<f32>::try_from(&read("obs", Kind::Float, rows * d)?)?;
        let next_obs = Vec::<f32>::try_from(&read("next_obs", Kind::Float, rows * d)?)?;
        let rewards = Vec::<f64>::try_from(&read("rewards", Kind::Double, rows)?)?;
        let terminated = Vec::<bool>::try_from(&read("terminated", Kind::Bool, rows)?)?;
        let truncated = Vec::<bool>::try_from(&read("truncated", Kind::Bool, rows)?)?;
        let actions = get("actions")?;
        let bad_actions = || {
            AgentError::Invalid(format!(
                "checkpoint tensor '{prefix}/actions' is {:?} {:?}, expected {rows} rows of \
                 Int64 indices or Float values",
                actions.kind(),
                actions.size()
            ))
        };
        let size = actions.size();
        if size.first().copied() != Some(rows as i64) || size.len() > 2 {
            return Err(bad_actions());
        }
        let width = size.get(1).copied().unwrap_or(1).max(0) as usize;
        let flat = actions.f_flatten(0, -1)?;
        let loaded = match actions.kind() {
            Kind::Int64 => Actions::Indices { values: Vec::<i64>::try_from(&flat)?, width },
            Kind::Float => Actions::Floats { values: Vec::<f32>::try_from(&flat)?, width },
            _ => return Err(bad_actions()),
        };
        let (masks, mask_len) = match tensors.iter().find(|(n, _)| *n == format!("{prefix}/masks"))
        {
            None => (Vec::new(), 0),
            Some((_, t)) => {
                let size = t.size();
                let width = size.get(1).copied().unwrap_or(0).max(0) as usize;
                if t.kind() != Kind::Bool || size.len() != 2 || size[0] != rows as i64 || width == 0
                {
                    return Err(AgentError::Invalid(format!(
                        "checkpoint tensor '{prefix}/masks' is {:?} {size:?}, expected Bool \
                         [{rows}, mask length]",
                        t.kind()
                    )));
                }
                (Vec::<bool>::try_from(&t.f_flatten(0, -1)?)?, width)
            }
        };
        self.clear();
        self.masks = masks;
        self.mask_len = mask_len;
        self.obs = obs;
        self.next_obs = next_obs;
        self.rewards = rewards;
        self.terminated = terminated;
        self.truncated = truncated;
        self.actions = loaded;
        self.steps = steps;
        Ok(())
    }

    /// The stored actions, `len * n_envs` rows, step-major like everything else.
    pub fn actions(&self) -> &Actions {
        &self.actions
    }

    /// Advantages and returns of the stored steps given `values[i] = V(obs_i)` and
    /// `next_values[i] = V(next_obs_i)`, both `[len * n_envs]` step-major.
    ///
    /// # Panics
    /// If `values` or `next_values` do not have one entry per stored step and env.
    pub fn advantages(
        &self,
        values: &[f32],
        next_values: &[f32],
        gamma: f64,
        gae_lambda: f64,
    ) -> Advantages {
        generalized_advantages(
            &StepRecord {
                n_envs: self.n_envs,
                rewards: &self.rewards,
                terminated: &self.terminated,
                truncated: &self.truncated,
                values,
                next_values,
            },
            gamma,
            gae_lambda,
        )
    }
}

/// The per-step quantities GAE needs, as step-major slices of `n_steps * n_envs` entries.
#[derive(Clone, Copy, Debug)]
pub struct StepRecord<'a> {
    /// Environments per step.
    pub n_envs: usize,
    /// `r_t`.
    pub rewards: &'a [f64],
    /// Whether step `t` ended its episode for real.
    pub terminated: &'a [bool],
    /// Whether step `t` ended its episode by a time limit.
    pub truncated: &'a [bool],
    /// `V(s_t)`.
    pub values: &'a [f32],
    /// `V(next_obs_t)`: the next state's value, or the final observation's value where the
    /// episode ended.
    pub next_values: &'a [f32],
}

/// GAE(λ) advantages (Schulman et al. 2016) and λ-returns, computed backwards per env in f64:
///
/// - `δ_t = r_t + γ (1 - terminated_t) V(next_obs_t) - V(s_t)`
/// - `A_t = δ_t + γ λ (1 - done_t) A_{t+1}`, with `done = terminated || truncated` and
///   `A_{n_steps} = 0`
/// - `return_t = A_t + V(s_t)`
///
/// Only `terminated` removes the bootstrap term; `truncated` merely stops the recursion from
/// reaching into the next episode, whose first observation follows in the same env slot. With
/// `λ = 1` the return is the discounted reward-to-go, bootstrapped from `V(next_obs)` at a
/// truncation or at the end of the rollout (REINFORCE with a baseline); with `λ = 0` it is the
/// one-step TD target.
///
/// # Panics
/// If the slices differ in length or their length is not a multiple of `n_envs`.
pub fn generalized_advantages(steps: &StepRecord<'_>, gamma: f64, gae_lambda: f64) -> Advantages {
    let len = steps.rewards.len();
    let n_envs = steps.n_envs;
    for (what, l) in [
        ("terminated", steps.terminated.len()),
        ("truncated", steps.truncated.len()),
        ("values", steps.values.len()),
        ("next_values", steps.next_values.len()),
    ] {
        assert_eq!(l, len, "{what} has {l} entries but rewards has {len}");
    }
    assert!(n_envs > 0 && len % n_envs == 0, "{len} entries do not fill rows of {n_envs} envs");

    let mut advantages = vec![0.0f32; len];
    let mut returns = vec![0.0f32; len];
    // The running advantage of each env at step t + 1.
    let mut next_advantage = vec![0.0f64; n_envs];
    for t in (0..len / n_envs).rev() {
        for (e, carry) in next_advantage.iter_mut().enumerate() {
            let i = t * n_envs + e;
            let value = f64::from(steps.values[i]);
            let bootstrap = if steps.terminated[i] { 0.0 } else { f64::from(steps.next_values[i]) };
            let delta = steps.rewards[i] + gamma * bootstrap - value;
            let done = steps.terminated[i] || steps.truncated[i];
            let continuation = if done { 0.0 } else { gamma * gae_lambda * *carry };
            let advantage = delta + continuation;
            *carry = advantage;
            advantages[i] = advantage as f32;
            returns[i] = (advantage + value) as f32;
        }
    }
    Advantages { advantages, returns }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One index per row.
    fn indices(values: &[i64]) -> Actions {
        Actions::Indices { values: values.to_vec(), width: 1 }
    }

    /// One env over five steps (γ = 0.5) exercising each end of an episode:
    /// step 1 terminates, step 3 is truncated, step 4 is cut by the end of the rollout.
    fn five_steps<'a>(values: &'a [f32], next_values: &'a [f32]) -> StepRecord<'a> {
        StepRecord {
            n_envs: 1,
            rewards: &[1.0, 2.0, 4.0, 8.0, 16.0],
            terminated: &[false, true, false, false, false],
            truncated: &[false, false, false, true, false],
            values,
            next_values,
        }
    }

    // V(s_t) for the five steps, and V(next_obs_t): the values after non-final steps equal the
    // next step's V(s) as in a real rollout; after the termination it is a huge value that must
    // be ignored; after the truncation and at the rollout end they are the bootstrap values.
    const VALUES: [f32; 5] = [0.5, 0.25, 3.0, 1.0, 2.0];
    const NEXT_VALUES: [f32; 5] = [0.25, 1000.0, 1.0, 10.0, 20.0];

    #[test]
    fn lambda_one_gives_discounted_returns_bootstrapped_only_after_truncation_or_cut() {
        let out = generalized_advantages(&five_steps(&VALUES, &NEXT_VALUES), 0.5, 1.0);
        // By hand, γ = 0.5:
        // G4 = 16 + 0.5 * V(next_obs_4) = 16 + 10 = 26        (cut by the rollout end)
        // G3 = 8 + 0.5 * V(final obs) = 8 + 5 = 13             (truncated: bootstrap)
        // G2 = 4 + 0.5 * G3 = 10.5
        // G1 = 2                                               (terminated: no bootstrap)
        // G0 = 1 + 0.5 * G1 = 2
        let expected_returns = [2.0, 2.0, 10.5, 13.0, 26.0];
        assert_eq!(out.returns, expected_returns, "returns-to-go differ from the hand computation");
        let expected_adv: Vec<f32> =
            expected_returns.iter().zip(VALUES).map(|(g, v)| g - v).collect();
        assert_eq!(out.advantages, expected_adv, "advantage must be return - V(s) when λ = 1");
    }

    #[test]
    fn lambda_zero_gives_one_step_td_targets() {
        let out = generalized_advantages(&five_steps(&VALUES, &NEXT_VALUES), 0.5, 0.0);
        // r + γ V(next) except after the termination: [1.125, 2, 4.5, 13, 26].
        assert_eq!(out.returns, [1.125, 2.0, 4.5, 13.0, 26.0]);
    }

    #[test]
    fn gae_matches_the_hand_computed_recursion_for_an_intermediate_lambda() {
        let (gamma, lambda) = (0.5f64, 0.5f64);
        let out = generalized_advantages(&five_steps(&VALUES, &NEXT_VALUES), gamma, lambda);
        let delta = |r: f64, v_next: f64, v: f64| r + gamma * v_next - v;
        let a4 = delta(16.0, 20.0, 2.0);
        let a3 = delta(8.0, 10.0, 1.0); // truncated: bootstrap, no carry from step 4
        let a2 = delta(4.0, 1.0, 3.0) + gamma * lambda * a3;
        let a1 = delta(2.0, 0.0, 0.25); // terminated: no bootstrap, no carry
        let a0 = delta(1.0, 0.25, 0.5) + gamma * lambda * a1;
        let expected = [a0, a1, a2, a3, a4].map(|a| a as f32);
        assert_eq!(out.advantages, expected);
    }

    #[test]
    fn envs_are_independent_in_the_step_major_layout() {
        // Two envs interleaved: env 0 terminates at step 0, env 1 never ends.
        let steps = StepRecord {
            n_envs: 2,
            rewards: &[1.0, 10.0, 1.0, 10.0],
            terminated: &[true, false, false, false],
            truncated: &[false, false, false, false],
            values: &[0.0; 4],
            next_values: &[0.0, 0.0, 4.0, 40.0],
        };
        let out = generalized_advantages(&steps, 0.5, 1.0);
        // env 0: G0 = 1 (terminated), G1 = 1 + 0.5 * 4 = 3.
        // env 1: G1 = 10 + 0.5 * 40 = 30, G0 = 10 + 0.5 * 30 = 25.
        assert_eq!(out.returns, [1.0, 25.0, 3.0, 30.0]);
    }

    #[test]
    fn buffer_stores_steps_in_order_and_joins_actions() {
        let mut buffer = RolloutBuffer::new(2, 2, 1);
        for t in 0..2 {
            let obs = [t as f32, 10.0 + t as f32];
            let actions = indices(&[t as i64, 1 - t as i64]);
            buffer
                .push(&Transition {
                    obs: &obs,
                    actions: &actions,
                    rewards: &[1.0, 2.0],
                    terminated: &[false, t == 1],
                    truncated: &[t == 1, false],
                    next_obs: &obs,
                    masks: None,
                    next_masks: None,
                })
                .unwrap();
        }
        assert!(buffer.is_full());
        assert_eq!(buffer.obs(), [0.0, 10.0, 1.0, 11.0]);
        assert_eq!(buffer.terminated(), [false, false, false, true]);
        assert_eq!(buffer.actions(), &indices(&[0, 1, 1, 0]));
        let extra = indices(&[0, 0]);
        let full = buffer.push(&Transition {
            obs: &[0.0; 2],
            actions: &extra,
            rewards: &[0.0; 2],
            terminated: &[false; 2],
            truncated: &[false; 2],
            next_obs: &[0.0; 2],
            masks: None,
            next_masks: None,
        });
        assert!(full.is_err(), "pushing into a full buffer must fail");
        buffer.clear();
        assert!(buffer.is_empty() && buffer.obs().is_empty());
    }

    #[test]
    fn buffer_rejects_a_transition_with_the_wrong_number_of_envs() {
        let mut buffer = RolloutBuffer::new(4, 2, 3);
        let actions = indices(&[0, 1]);
        let err = buffer
            .push(&Transition {
                obs: &[0.0; 6],
                actions: &actions,
                rewards: &[0.0; 3],
                terminated: &[false; 2],
                truncated: &[false; 2],
                next_obs: &[0.0; 6],
                masks: None,
                next_masks: None,
            })
            .unwrap_err();
        assert!(err.to_string().contains("rewards has 3 values"), "unexpected error: {err}");
    }

    #[test]
    fn float_actions_round_trip_and_a_change_of_kind_or_width_is_refused() {
        let mut buffer = RolloutBuffer::new(3, 2, 1);
        fn step(actions: &Actions) -> Transition<'_> {
            Transition {
                obs: &[0.0, 1.0],
                actions,
                rewards: &[0.0, 1.0],
                terminated: &[false, false],
                truncated: &[false, false],
                next_obs: &[1.0, 2.0],
                masks: None,
                next_masks: None,
            }
        }
        let floats = Actions::Floats { values: vec![0.5, -1.5, 2.0, 0.25], width: 2 };
        buffer.push(&step(&floats)).expect("push");
        let err = buffer.push(&step(&indices(&[0, 1]))).expect_err("indices after floats");
        assert!(
            err.to_string().contains(
                "transition actions are 2 rows of 1 indices; this rollout \
                 holds 2 rows of 2 floats"
            ),
            "{err}"
        );
        let narrow = Actions::Floats { values: vec![0.5, 1.0], width: 1 };
        let err = buffer.push(&step(&narrow)).expect_err("a narrower action");
        assert!(err.to_string().contains("2 rows of 1 floats"), "{err}");
        assert_eq!(buffer.len(), 1, "a refused step must not be stored");
        let state = buffer.state_tensors("rollout");
        let mut copy = RolloutBuffer::new(3, 2, 1);
        copy.load_state_tensors("rollout", &state).expect("load");
        assert_eq!(copy.actions(), &floats);
    }

    #[test]
    fn a_partial_rollout_round_trips_through_its_state_tensors() {
        let mut buffer = RolloutBuffer::new(4, 2, 3);
        for t in 0..3 {
            let obs: Vec<f32> = (0..6).map(|i| (t * 6 + i) as f32).collect();
            let next_obs: Vec<f32> = obs.iter().map(|x| x + 0.5).collect();
            let actions = indices(&[t as i64, 1 - t as i64]);
            // Two envs, masks of 3 flags each.
            let masks = [t != 0, true, false, true, t == 1, true];
            buffer
                .push(&Transition {
                    obs: &obs,
                    actions: &actions,
                    rewards: &[f64::from(t), 0.25],
                    terminated: &[t == 1, false],
                    truncated: &[false, t == 2],
                    next_obs: &next_obs,
                    masks: Some(&masks),
                    next_masks: None,
                })
                .expect("push");
        }
        let state = buffer.state_tensors("rollout");
        let mut copy = RolloutBuffer::new(4, 2, 3);
        copy.load_state_tensors("rollout", &state).expect("load");
        assert_eq!(copy.len(), 3, "restored step count");
        assert_eq!((copy.obs(), copy.next_obs()), (buffer.obs(), buffer.next_obs()));
        assert_eq!((copy.rewards(), copy.terminated()), (buffer.rewards(), buffer.terminated()));
        assert_eq!(copy.truncated(), buffer.truncated());
        assert_eq!(copy.actions(), &indices(&[0, 1, 1, 0, 2, -1]));
        assert_eq!(copy.masks().map(<[bool]>::len), Some(18), "masks of 3 steps, 2 envs, 3 flags");
        assert_eq!(copy.masks(), buffer.masks());

        let mut empty = RolloutBuffer::new(4, 2, 3);
        empty.load_state_tensors("rollout", &empty.state_tensors("rollout")).expect("load");
        assert!(empty.is_empty());
        let mut small = RolloutBuffer::new(3, 2, 3);
        let err = small.load_state_tensors("rollout", &state).expect_err("3 steps into 3");
        assert!(err.to_string().contains("3 steps"), "{err}");
    }
}
