//! The off-policy replay buffer: a ring of the most recent transitions, sampled uniformly.
//!
//! Storage is one preallocated `[capacity, width]` tensor whose rows are laid out as
//! `obs | action | reward | terminated | next_obs`, followed, for an agent that acts within
//! action masks, by `mask | next_mask` (`0.0`/`1.0` flags in the action space's mask layout: the
//! masks of `obs`' and `next_obs`' states, so that each update evaluates the policy at both
//! states under the masks the environment gave them). One row layout instead of five tensors means a
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
    /// `[batch, mask_len]` the action masks of `obs` (1.0: allowed), for a buffer built with
    /// masks ([`ReplayBuffer::with_masks`]).
    pub masks: Option<Tensor>,
    /// `[batch, mask_len]` the action masks of `next_obs`, for a buffer built with masks.
    pub next_masks: Option<Tensor>,
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
    /// Flags per action mask (0: no masks stored).
    mask_len: usize,
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
        Self::with_masks(capacity, obs_dim, action_dim, 0, device)
    }

    /// [`ReplayBuffer::new_on`] storing with each transition the action masks of its two states,
    /// `mask_len` flags each (0: none; then this is `new_on`). Push with
    /// [`ReplayBuffer::push_masked`].
    pub fn with_masks(
        capacity: usize,
        obs_dim: usize,
        action_dim: usize,
        mask_len: usize,
        device: Device,
    ) -> Result<Self, AgentError> {
        if capacity == 0 || obs_dim == 0 || action_dim == 0 {
            return Err(AgentError::Invalid(format!(
                "replay buffer needs capacity, obs_dim and action_dim >= 1, got {capacity}, \
                 {obs_dim}, {action_dim}"
            )));
        }
        let width = 2 * obs_dim + action_dim + 2 + 2 * mask_len;
        // Uninitialized memory is never read: sampling only draws from the first `len` rows.
        let storage = Tensor::f_empty([capacity as i64, width as i64], (Kind::Float, device))?;
        Ok(Self {
            capacity,
            obs_dim,
            action_dim,
            mask_len,
            storage,
            len: 0,
            pos: 0,
            scratch: Vec::new(),
        })
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

    /// Flags per stored action mask (0: the buffer stores no masks).
    pub fn mask_len(&self) -> usize {
        self.mask_len
    }

    /// Makes an empty buffer store action masks of `mask_len` flags with each transition from
    /// now on (see [`ReplayBuffer::with_masks`]), for an agent that learns whether its env
    /// masks actions from its first transition. Errors on a buffer that holds transitions.
    pub fn enable_masks(&mut self, mask_len: usize) -> Result<(), AgentError> {
        if mask_len == self.mask_len {
            return Ok(());
        }
        if !self.is_empty() {
            return Err(AgentError::Invalid(format!(
                "the replay buffer holds {} transitions without action masks; masked ones cannot \
                 join them",
                self.len
            )));
        }
        let device = self.device();
        *self = Self::with_masks(self.capacity, self.obs_dim, self.action_dim, mask_len, device)?;
        Ok(())
    }

    /// Floats per stored row.
    fn width(&self) -> usize {
        2 * self.obs_dim + self.action_dim + 2 + 2 * self.mask_len
    }

    /// Appends `n = rewards.len()` transitions (one per environment), overwriting the oldest once
    /// full. `obs` and `next_obs` hold `n * obs_dim` floats, `actions` `n * action_dim`,
    /// row-major. Errors on mismatched lengths or more rows than the capacity, and on a buffer
    /// that stores masks (see [`ReplayBuffer::push_masked`]).
    pub fn push(
        &mut self,
        obs: &[f32],
        actions: &[f32],
        rewards: &[f64],
        terminated: &[bool],
        next_obs: &[f32],
    ) -> Result<(), AgentError> {
        self.push_masked(obs, actions, rewards, terminated, next_obs, &[], &[])
    }

    /// [`ReplayBuffer::push`] with the action masks of `obs`' and `next_obs`' states,
    /// `n * mask_len` flags (`0.0`/`1.0`) each, row-major; both empty for a buffer without masks.
    #[allow(clippy::too_many_arguments)]
    pub fn push_masked(
        &mut self,
        obs: &[f32],
        actions: &[f32],
        rewards: &[f64],
        terminated: &[bool],
        next_obs: &[f32],
        masks: &[f32],
        next_masks: &[f32],
    ) -> Result<(), AgentError> {
        let n = rewards.len();
        let (od, ad, md) = (self.obs_dim, self.action_dim, self.mask_len);
        for (what, len, want) in [
            ("obs", obs.len(), n * od),
            ("actions", actions.len(), n * ad),
            ("terminated", terminated.len(), n),
            ("next_obs", next_obs.len(), n * od),
            ("masks", masks.len(), n * md),
            ("next_masks", next_masks.len(), n * md),
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
            self.scratch.extend_from_slice(&masks[i * md..(i + 1) * md]);
            self.scratch.extend_from_slice(&next_masks[i * md..(i + 1) * md]);
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
    /// `width = 2·obs_dim + action_dim + 2 (+ 2·mask_len)`: observation, action, reward,
    /// terminated (0 or 1), next observation (then the two masks). Draws the same indices from the same generator as `sample`.
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
    /// `{prefix}/rows` (`Float [len, width]`, the filled rows in storage order),
    /// `{prefix}/position` (`Int64 [2]`: `len` and the next row to write) and, for a buffer
    /// that stores action masks, `{prefix}/mask_len` (`Int64 [1]`).
    pub fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut tensors = vec![
            (format!("{prefix}/rows"), self.storage.narrow(0, 0, self.len as i64).copy()),
            (format!("{prefix}/position"), Tensor::from_slice(&[self.len as i64, self.pos as i64])),
        ];
        if self.mask_len > 0 {
            tensors
                .push((format!("{prefix}/mask_len"), Tensor::from_slice(&[self.mask_len as i64])));
        }
        tensors
    }

    /// Replaces the content with what [`ReplayBuffer::state_tensors`] saved under `prefix`;
    /// empties the buffer when `tensors` holds nothing under `prefix` (a checkpoint saved
    /// without its replay buffer). Saved rows with action masks turn this buffer's mask columns
    /// on ([`ReplayBuffer::enable_masks`]); rows without them turn them off. Checks shapes before
    /// changing anything.
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
        let mask_len = match find("mask_len") {
            None => 0,
            Some(m) => (m.kind() == Kind::Int64 && m.size() == [1])
                .then(|| m.f_int64_value(&[0]))
                .transpose()?
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| bad(format!("mask_len is {:?} {:?}", m.kind(), m.size())))?,
        };
        let width = 2 * self.obs_dim + self.action_dim + 2 + 2 * mask_len;
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
        if rows.kind() != Kind::Float || rows.size() != [len as i64, width as i64] {
            return Err(bad(format!(
                "rows are {:?} {:?}, expected Float [{len}, {width}]",
                rows.kind(),
                rows.size(),
            )));
        }
        if mask_len != self.mask_len {
            let device = self.device();
            *self =
                Self::with_masks(self.capacity, self.obs_dim, self.action_dim, mask_len, device)?;
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
        let (od, ad, md) = (self.obs_dim as i64, self.action_dim as i64, self.mask_len as i64);
        let masks = (md > 0).then(|| rows.narrow(1, 2 * od + ad + 2, md));
        let next_masks = (md > 0).then(|| rows.narrow(1, 2 * od + ad + 2 + md, md));
        ReplaySample {
            obs: rows.narrow(1, 0, od),
            actions: rows.narrow(1, od, ad),
            obs_actions: rows.narrow(1, 0, od + ad),
            rewards: rows.select(1, od + ad),
            terminated: rows.select(1, od + ad + 1),
            next_obs: rows.narrow(1, od + ad + 2, od),
            masks,
            next_masks,
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

    #[test]
    fn masks_of_both_states_are_stored_sampled_and_checkpointed() {
        let mut buffer = ReplayBuffer::with_masks(4, 2, 1, 3, Device::Cpu).expect("buffer");
        for k in 0..6 {
            let x = k as f32;
            let mask = [1.0, f32::from(u8::from(k % 2 == 0)), 1.0];
            let next = [f32::from(u8::from(k % 3 == 0)), 1.0, 0.0];
            buffer
                .push_masked(&[x, x], &[x], &[1.0], &[false], &[x, x], &mask, &next)
                .expect("push");
        }
        let err = buffer.push(&[0.0, 0.0], &[0.0], &[1.0], &[false], &[0.0, 0.0]);
        assert!(err.is_err(), "a masked buffer must refuse a transition without masks");
        let mut copy = ReplayBuffer::with_masks(4, 2, 1, 3, Device::Cpu).expect("buffer");
        copy.load_state_tensors("replay", &buffer.state_tensors("replay")).expect("load");
        let rows = Tensor::arange(4, (Kind::Int64, Device::Cpu));
        for b in [&buffer, &copy] {
            let sample = b.get(&rows).expect("rows");
            let obs = Vec::<f32>::try_from(sample.obs.select(1, 0)).expect("obs");
            let masks = Vec::<f32>::try_from(sample.masks.expect("masks").flatten(0, -1));
            let next = Vec::<f32>::try_from(sample.next_masks.expect("next").flatten(0, -1));
            for (row, &x) in obs.iter().enumerate() {
                let k = x as usize;
                let even = f32::from(u8::from(k % 2 == 0));
                let third = f32::from(u8::from(k % 3 == 0));
                assert_eq!(masks.as_ref().expect("masks")[row * 3..row * 3 + 3], [1.0, even, 1.0]);
                assert_eq!(next.as_ref().expect("next")[row * 3..row * 3 + 3], [third, 1.0, 0.0]);
            }
        }
        // A buffer built without masks takes them on from a checkpoint that has them.
        let mut plain = ReplayBuffer::new(4, 2, 1).expect("buffer");
        plain.load_state_tensors("replay", &buffer.state_tensors("replay")).expect("load");
        assert_eq!(plain.mask_len(), 3);
        let mut state = buffer.state_tensors("replay");
        state.retain(|(n, _)| n != "replay/mask_len");
        let err = plain.load_state_tensors("replay", &state);
        assert!(err.is_err(), "rows with masks but no mask_len must not load");
    }
}
