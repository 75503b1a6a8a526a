//! The off-policy replay buffer: a ring of the most recent transitions, sampled uniformly.
//!
//! Storage is one preallocated `[capacity, width]` tensor whose rows are laid out as
//! `obs | action | reward | terminated | next_obs`. One row layout instead of five tensors means a
//! push is one copy and a minibatch is one `index_select`; observation and action sit side by
//! side so that the critic's input `(s, a)` is a view, not a concatenation.
//!
//! Only `terminated` is stored: a truncated transition is an ordinary one whose `next_obs` is the
//! episode's final observation, and the learner bootstraps from it like from any other.

use tch::{Device, Kind, Tensor};

use crate::agent::AgentError;

/// A uniformly drawn minibatch, as views into one gathered `[batch, width]` tensor.
#[derive(Debug)]
pub struct ReplaySample {
    /// `[batch, obs_dim]` observations.
    pub obs: Tensor,
    /// `[batch, action_dim]` actions, in the encoding they were pushed with.
    pub actions: Tensor,
    /// `[batch, obs_dim + action_dim]` observation and action side by side: the input of a
    /// critic `Q(s, a)`.
    pub obs_actions: Tensor,
    /// `[batch]` rewards.
    pub rewards: Tensor,
    /// `[batch]` 1.0 where the episode truly ended (no bootstrapping), else 0.0.
    pub terminated: Tensor,
    /// `[batch, obs_dim]` the observations the actions led to (an episode's final observation
    /// where it ended).
    pub next_obs: Tensor,
}

/// A ring buffer of the last `capacity` transitions with uniform sampling.
///
/// Sampling draws indices with `Tensor::randint` from libtorch's global generator, so
/// `tch::manual_seed` makes the minibatch sequence reproducible.
#[derive(Debug)]
pub struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    action_dim: usize,
    /// `[capacity, width]` rows; only the first `len` (in ring order) hold data.
    storage: Tensor,
    /// Number of stored transitions (at most `capacity`).
    len: usize,
    /// Row the next transition goes to.
    pos: usize,
    /// Rows of the push in progress, reused so that a push allocates nothing in Rust.
    scratch: Vec<f32>,
}

impl ReplayBuffer {
    /// An empty buffer for `capacity` transitions with `obs_dim`-float observations and
    /// `action_dim`-float actions. Memory is allocated (uninitialized) up front.
    pub fn new(capacity: usize, obs_dim: usize, action_dim: usize) -> Result<Self, AgentError> {
        if capacity == 0 || obs_dim == 0 || action_dim == 0 {
            return Err(AgentError::Invalid(format!(
                "replay buffer needs capacity, obs_dim and action_dim >= 1, got {capacity}, \
                 {obs_dim}, {action_dim}"
            )));
        }
        let width = 2 * obs_dim + action_dim + 2;
        // Uninitialized memory is never read: sampling only draws from the first `len` rows.
        let storage = Tensor::f_empty([capacity as i64, width as i64], (Kind::Float, Device::Cpu))?;
        Ok(Self { capacity, obs_dim, action_dim, storage, len: 0, pos: 0, scratch: Vec::new() })
    }

    /// Maximum number of transitions kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of transitions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been stored yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Floats per stored row.
    fn width(&self) -> usize {
        2 * self.obs_dim + self.action_dim + 2
    }

    /// Appends `n = rewards.len()` transitions (one per environment), overwriting the oldest once
    /// full. `obs` and `next_obs` hold `n * obs_dim` floats, `actions` `n * action_dim`,
    /// row-major. Errors on mismatched lengths or more rows than the capacity.
    pub fn push(
        &mut self,
        obs: &[f32],
        actions: &[f32],
        rewards: &[f64],
        terminated: &[bool],
        next_obs: &[f32],
    ) -> Result<(), AgentError> {
        let n = rewards.len();
        let (od, ad) = (self.obs_dim, self.action_dim);
        for (what, len, want) in [
            ("obs", obs.len(), n * od),
            ("actions", actions.len(), n * ad),
            ("terminated", terminated.len(), n),
            ("next_obs", next_obs.len(), n * od),
        ] {
            if len != want {
                return Err(AgentError::Invalid(format!(
                    "replay push: {what} has {len} values, expected {want} for {n} transitions"
                )));
            }
        }
        if n > self.capacity {
            return Err(AgentError::Invalid(format!(
                "replay push of {n} transitions exceeds the capacity {}",
                self.capacity
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let width = self.width();
        self.scratch.clear();
        for i in 0..n {
            self.scratch.extend_from_slice(&obs[i * od..(i + 1) * od]);
            self.scratch.extend_from_slice(&actions[i * ad..(i + 1) * ad]);
            self.scratch.push(rewards[i] as f32);
            self.scratch.push(if terminated[i] { 1.0 } else { 0.0 });
            self.scratch.extend_from_slice(&next_obs[i * od..(i + 1) * od]);
        }
        let rows = Tensor::from_slice(&self.scratch).view([n as i64, width as i64]);
        // At most two contiguous copies: up to the end of the ring, then from its start.
        let first = n.min(self.capacity - self.pos);
        tch::no_grad(|| -> Result<(), AgentError> {
            self.storage.narrow(0, self.pos as i64, first as i64).f_copy_(&rows.narrow(
                0,
                0,
                first as i64,
            ))?;
            if first < n {
                let rest = (n - first) as i64;
                self.storage.narrow(0, 0, rest).f_copy_(&rows.narrow(0, first as i64, rest))?;
            }
            Ok(())
        })?;
        self.pos = (self.pos + n) % self.capacity;
        self.len = (self.len + n).min(self.capacity);
        Ok(())
    }

    /// `batch_size` transitions drawn uniformly with replacement. Errors when the buffer is
    /// empty or `batch_size` is 0.
    pub fn sample(&self, batch_size: usize) -> Result<ReplaySample, AgentError> {
        if self.is_empty() || batch_size == 0 {
            return Err(AgentError::Invalid(format!(
                "cannot sample {batch_size} transitions from a replay buffer holding {}",
                self.len
            )));
        }
        let index =
            Tensor::f_randint(self.len as i64, [batch_size as i64], (Kind::Int64, Device::Cpu))?;
        let rows = self.storage.f_index_select(0, &index)?;
        Ok(self.split(&rows))
    }

    /// The transitions in rows `index` (`Int64 [batch]`, each `< len()`), for inspection and
    /// tests. Row `i` is the `i`-th transition pushed since the ring last wrapped past it; once
    /// full, the oldest transition is at [`ReplayBuffer::oldest_row`].
    pub fn get(&self, index: &Tensor) -> Result<ReplaySample, AgentError> {
        Ok(self.split(&self.storage.narrow(0, 0, self.len as i64).f_index_select(0, index)?))
    }

    /// Row of the oldest stored transition (0 until the ring wraps).
    pub fn oldest_row(&self) -> usize {
        if self.len < self.capacity { 0 } else { self.pos }
    }

    /// Names the column blocks of gathered rows.
    fn split(&self, rows: &Tensor) -> ReplaySample {
        let (od, ad) = (self.obs_dim as i64, self.action_dim as i64);
        ReplaySample {
            obs: rows.narrow(1, 0, od),
            actions: rows.narrow(1, od, ad),
            obs_actions: rows.narrow(1, 0, od + ad),
            rewards: rows.select(1, od + ad),
            terminated: rows.select(1, od + ad + 1),
            next_obs: rows.narrow(1, od + ad + 2, od),
        }
    }
}
