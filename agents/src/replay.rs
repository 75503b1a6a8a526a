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
        Self::new_on(capacity, obs_dim, action_dim, Device::Cpu)
    }

    /// [`ReplayBuffer::new`] with its storage on `device` (a GPU keeps the whole buffer in its
    /// memory, so minibatches are gathered there and only each push crosses the bus). Indices
    /// are drawn from `device`'s generator.
    pub fn new_on(
        capacity: usize,
        obs_dim: usize,
        action_dim: usize,
        device: Device,
    ) -> Result<Self, AgentError> {
        if capacity == 0 || obs_dim == 0 || action_dim == 0 {
            return Err(AgentError::Invalid(format!(
                "replay buffer needs capacity, obs_dim and action_dim >= 1, got {capacity}, \
                 {obs_dim}, {action_dim}"
            )));
        }
        let width = 2 * obs_dim + action_dim + 2;
        // Uninitialized memory is never read: sampling only draws from the first `len` rows.
        let storage = Tensor::f_empty([capacity as i64, width as i64], (Kind::Float, device))?;
        Ok(Self { capacity, obs_dim, action_dim, storage, len: 0, pos: 0, scratch: Vec::new() })
    }

    /// The device holding the transitions.
    pub fn device(&self) -> Device {
        self.storage.device()
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
        let rows = Tensor::from_slice(&self.scratch)
            .view([n as i64, width as i64])
            .f_to_device(self.storage.device())?;
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
        Ok(self.split(&self.sample_rows(batch_size)?))
    }

    /// The rows [`ReplayBuffer::sample`] splits, `[batch_size, width]` with
    /// `width = 2·obs_dim + action_dim + 2`: observation, action, reward, terminated (0 or 1),
    /// next observation. Draws the same indices from the same generator as `sample`.
    pub fn sample_rows(&self, batch_size: usize) -> Result<Tensor, AgentError> {
        if self.is_empty() || batch_size == 0 {
            return Err(AgentError::Invalid(format!(
                "cannot sample {batch_size} transitions from a replay buffer holding {}",
                self.len
            )));
        }
        let index =
            Tensor::f_randint(self.len as i64, [batch_size as i64], (Kind::Int64, self.device()))?;
        Ok(self.storage.f_index_select(0, &index)?)
    }

    /// The transitions in rows `index` (`Int64 [batch]`, each `< len()`), for inspection and
    /// tests. Row `i` is the `i`-th transition pushed since the ring last wrapped past it; once
    /// full, the oldest transition is at [`ReplayBuffer::oldest_row`].
    pub fn get(&self, index: &Tensor) -> Result<ReplaySample, AgentError> {
        Ok(self.split(&self.storage.narrow(0, 0, self.len as i64).f_index_select(0, index)?))
    }

    /// The stored transitions as named tensors under `prefix`, for checkpoints:
    /// `{prefix}/rows` (`Float [len, width]`, the filled rows in storage order) and
    /// `{prefix}/position` (`Int64 [2]`: `len` and the next row to write).
    pub fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        vec![
            (format!("{prefix}/rows"), self.storage.narrow(0, 0, self.len as i64).copy()),
            (format!("{prefix}/position"), Tensor::from_slice(&[self.len as i64, self.pos as i64])),
        ]
    }

    /// Replaces the content with what [`ReplayBuffer::state_tensors`] saved under `prefix`;
    /// empties the buffer when `tensors` holds nothing under `prefix` (a checkpoint saved
    /// without its replay buffer). Checks shapes before changing anything.
    pub fn load_state_tensors(
        &mut self,
        prefix: &str,
        tensors: &[(String, Tensor)],
    ) -> Result<(), AgentError> {
        let find = |name: &str| {
            let full = format!("{prefix}/{name}");
            tensors.iter().find(|(n, _)| *n == full).map(|(_, t)| t)
        };
        let (Some(rows), Some(position)) = (find("rows"), find("position")) else {
            self.len = 0;
            self.pos = 0;
            return Ok(());
        };
        let bad = |what: String| AgentError::Invalid(format!("checkpoint replay buffer: {what}"));
        if position.kind() != tch::Kind::Int64 || position.size() != [2] {
            return Err(bad(format!("position has shape {:?}", position.size())));
        }
        let (len, pos) = (position.f_int64_value(&[0])?, position.f_int64_value(&[1])?);
        let (Ok(len), Ok(pos)) = (usize::try_from(len), usize::try_from(pos)) else {
            return Err(bad(format!("negative length {len} or position {pos}")));
        };
        if len > self.capacity || pos >= self.capacity || (len < self.capacity && pos != len) {
            return Err(bad(format!(
                "length {len} and position {pos} do not fit a capacity of {}",
                self.capacity
            )));
        }
        if rows.kind() != Kind::Float || rows.size() != [len as i64, self.width() as i64] {
            return Err(bad(format!(
                "rows are {:?} {:?}, expected Float [{len}, {}]",
                rows.kind(),
                rows.size(),
                self.width()
            )));
        }
        tch::no_grad(|| self.storage.narrow(0, 0, len as i64).f_copy_(rows))?;
        self.len = len;
        self.pos = pos;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn push(buffer: &mut ReplayBuffer, k: usize) {
        let x = k as f32;
        let obs = [x, x + 0.1];
        buffer.push(&obs, &[x], &[f64::from(x)], &[k % 3 == 0], &[x + 1.0, x + 1.1]).expect("push");
    }

    #[test]
    fn a_wrapped_buffer_round_trips_and_samples_the_same_rows() {
        let mut buffer = ReplayBuffer::new(5, 2, 1).expect("buffer");
        for k in 0..7 {
            push(&mut buffer, k);
        }
        let state = buffer.state_tensors("replay");
        let mut copy = ReplayBuffer::new(5, 2, 1).expect("buffer");
        copy.load_state_tensors("replay", &state).expect("load");
        assert_eq!((copy.len(), copy.oldest_row()), (buffer.len(), buffer.oldest_row()));
        // `sample` draws row numbers below `len()` and reads them as `get` does, so equal rows
        // in equal order mean a draw samples the same transitions from both. (Comparing two
        // seeded draws instead would race with the other tests of this binary, which share
        // libtorch's global generator.)
        let rows = Tensor::arange(copy.len() as i64, (Kind::Int64, Device::Cpu));
        let (a, b) = (buffer.get(&rows).expect("rows"), copy.get(&rows).expect("rows"));
        let diff = (&a.obs_actions - &b.obs_actions).abs().max().double_value(&[]);
        assert_eq!(diff, 0.0, "the restored buffer holds other rows");
        assert_eq!(copy.sample(16).expect("sample").obs_actions.size(), [16, 3]);
        // Pushing continues at the same ring position.
        push(&mut buffer, 7);
        push(&mut copy, 7);
        let all = Tensor::arange(5, (Kind::Int64, Device::Cpu));
        let same = (&buffer.get(&all).unwrap().next_obs - &copy.get(&all).unwrap().next_obs)
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(same, 0.0, "pushing after restore wrote another row");
    }

    #[test]
    fn missing_replay_state_empties_the_buffer_and_bad_state_is_refused() {
        let mut buffer = ReplayBuffer::new(5, 2, 1).expect("buffer");
        push(&mut buffer, 0);
        buffer.load_state_tensors("replay", &[]).expect("absent state");
        assert!(buffer.is_empty(), "a checkpoint without replay state must empty the buffer");
        let mut big = ReplayBuffer::new(8, 2, 1).expect("buffer");
        for k in 0..8 {
            push(&mut big, k);
        }
        let err = buffer.load_state_tensors("replay", &big.state_tensors("replay"));
        assert!(err.is_err(), "8 rows must not fit a capacity of 5");
    }
}
