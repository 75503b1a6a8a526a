//! [`AsyncVecEnv`]: asynchronous batches, as EnvPool's `send`/`recv`: the envs step on threads
//! of their own, and the caller acts on whichever `batch` of them finished first while the
//! others are still stepping.
//!
//! Which envs make up a batch depends on how long each step took, so a run is not
//! reproducible: this is for envs whose step time varies (one slow step holds back only its own
//! env), and only when asked for (`async_batch`).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::core::{Action, Env, EnvError, Space, StepInfo};
use crate::running_mean_std::RunningMeanStd;
use crate::validate::{Origin, check_observation, check_reward};
use crate::vec_env::{VecActions, VecEnv, VecEnvSnapshot, VecStep};
use crate::wrappers::episode_statistics::EpisodeRecord;
use crate::wrappers::normalize::DEFAULT_NORM_EPSILON;

/// One env and what its last step left, owned by whichever thread holds its lock: a stepping
/// thread while the env steps, the caller once it is ready.
struct Slot {
    env: Box<dyn Env>,
    /// The action of its next step (a discrete action, or a row of `continuous`).
    discrete: usize,
    continuous: Vec<f32>,
    /// The observation the step led to, and the first one of the next episode when it ended.
    next_obs: Vec<f32>,
    first_obs: Vec<f32>,
    info: StepInfo,
    /// The error of its step, or of the reset that followed it.
    step_error: Option<EnvError>,
}

// SAFETY: an `AsyncVecEnv` is made only from a vector env whose envs were all handed over as
// `Box<dyn Env + Send>` (`VecEnv::into_send_envs`); every other field is `Send`.
unsafe impl Send for Slot {}

/// The queues of env indices: to step, and stepped (ready for the caller), in the order they
/// finished.
#[derive(Default)]
struct Queues {
    todo: VecDeque<usize>,
    done: VecDeque<usize>,
    shutdown: bool,
}

struct Shared {
    slots: Vec<Mutex<Slot>>,
    queues: Mutex<Queues>,
    /// Signalled when an env is queued to step.
    work: Condvar,
    /// Signalled when an env finished stepping.
    ready: Condvar,
    discrete: bool,
    observation_space: Space,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a stepping thread panicked outside an env's step, which `step_slot`
    // prevents; the data is still whole (every write is a plain store).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Steps the env of `slot` with its action and, when its episode ended, resets it (continuing
/// its random stream). A panic of the env becomes its error, so that no thread dies with it.
fn step_slot(slot: &mut Slot, discrete: bool, space: &Space) {
    let Slot { env, next_obs, first_obs, .. } = slot;
    let action = if discrete {
        Action::Discrete(slot.discrete)
    } else {
        Action::Continuous(&slot.continuous)
    };
    let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let info = env.step_into(action, next_obs)?;
        if info.done() {
            let first = env.reset(None)?;
            check_observation(env.id(), space, &first, Origin::Reset)?;
            first_obs.copy_from_slice(&first);
        }
        Ok::<_, EnvError>(info)
    }));
    slot.step_error = None;
    match stepped {
        Ok(Ok(info)) => slot.info = info,
        Ok(Err(e)) => slot.step_error = Some(e),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            slot.step_error = Some(EnvError::Other {
                env: slot.env.id().to_owned(),
                message: format!("panicked while stepping: {message}"),
            });
        }
    }
}

/// A stepping thread: takes envs off the queue, steps them, and queues them as ready.
fn stepping_thread(shared: &Shared) {
    loop {
        let i = {
            let mut queues = lock(&shared.queues);
            loop {
                if queues.shutdown {
                    return;
                }
                if let Some(i) = queues.todo.pop_front() {
                    break i;
                }
                queues = shared.work.wait(queues).unwrap_or_else(|p| p.into_inner());
            }
        };
        step_slot(&mut lock(&shared.slots[i]), shared.discrete, &shared.observation_space);
        lock(&shared.queues).done.push_back(i);
        shared.ready.notify_one();
    }
}

/// One batch from [`AsyncVecEnv::recv`]: the envs that finished first, with their results.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AsyncBatch {
    /// The envs of the batch (indices in the vector env), in the order they finished.
    pub envs: Vec<usize>,
    /// Whether the envs stepped: `false` for the batches right after [`AsyncVecEnv::reset`],
    /// whose envs have only been reset (`step` then holds only their first observations).
    pub stepped: bool,
    /// `[batch * obs_dim]` the observation each env acted on in the step (normalised if
    /// normalisation is on): the transition's `obs`.
    pub prev_obs: Vec<f32>,
    /// The step of the batch's envs, one row per env in the batch's order, with
    /// [`VecStep`]'s conventions (same-step autoreset); its episodes name envs by their index in
    /// the vector env.
    pub step: VecStep,
}

/// `n` environments stepped asynchronously on threads of their own: [`AsyncVecEnv::recv`]
/// returns the first `batch` envs whose step finished, [`AsyncVecEnv::send`] starts their next
/// step and returns at once, so the caller acts (and learns) while the other envs step.
///
/// Same-step autoreset and the same checks as [`VecEnv`] (an observation of the wrong length or
/// with a non-finite value, a non-finite reward: an error naming the env and its step; an env
/// that panics: an error, not a dead thread). Unlike [`VecEnv`], which envs make up a batch
/// depends on their step times: runs are not reproducible, and envs cannot be snapshotted while
/// they step ([`AsyncVecEnv::snapshot`] holds no env states; a resumed run resets its envs).
pub struct AsyncVecEnv {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    id: String,
    action_space: Space,
    obs_dim: usize,
    act_dim: usize,
    batch_size: usize,
    /// The observation each env acts on next (raw) and the normalised one it acted on last.
    obs: Vec<f32>,
    acted_on: Vec<f32>,
    episode_returns: Vec<f64>,
    episode_lengths: Vec<usize>,
    /// Envs of the last batch, held by the caller until `send`.
    held: Vec<usize>,
    /// Envs sent and not yet received: queued, stepping or ready.
    outstanding: usize,
    /// How many of the envs have never stepped since the last reset.
    fresh: usize,
    normalization: Option<(RunningMeanStd, f32)>,
    out: AsyncBatch,
    /// Set after an error: the envs must be reset.
    broken: bool,
}

impl std::fmt::Debug for AsyncVecEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncVecEnv")
            .field("id", &self.id)
            .field("batch_size", &self.batch_size)
            .field("threads", &self.handles.len())
            .finish_non_exhaustive()
    }
}

impl AsyncVecEnv {
    /// The envs of `vec` (made with [`VecEnv::new_send`] or [`VecEnv::make`], `Send`, running no
    /// Python code) stepped on `threads` threads of their own (at least one), returned in batches
    /// of `batch` (`1 <= batch <= n`, dividing `n`, so that the batches right after a reset hold
    /// only reset envs). Its observation normalisation, if on, carries over.
    pub fn new(vec: VecEnv, batch: usize, threads: usize) -> Result<Self, EnvError> {
        let n = vec.num_envs();
        let id = vec.id().to_owned();
        if batch == 0 || batch > n || n % batch != 0 {
            return Err(EnvError::Other {
                env: id,
                message: format!(
                    "a batch of {batch} envs out of {n}: it must be from 1 to {n} and divide {n}"
                ),
            });
        }
        let (observation_space, action_space) =
            (vec.observation_space().clone(), vec.action_space().clone());
        let normalization = vec.obs_rms().cloned().zip(vec.obs_clip());
        let (obs_dim, act_dim) = (observation_space.flat_dim(), action_space.flat_dim());
        let discrete = match &action_space {
            Space::Discrete(_) => true,
            Space::Box(_) => false,
            other => {
                return Err(EnvError::Other {
                    env: id,
                    message: format!(
                        "asynchronous batches take Discrete or Box actions, not {other}"
                    ),
                });
            }
        };
        let envs = vec.into_send_envs()?;
        let slots = envs
            .into_iter()
            .map(|env| {
                Mutex::new(Slot {
                    env,
                    discrete: 0,
                    continuous: vec![0.0; act_dim],
                    next_obs: vec![0.0; obs_dim],
                    first_obs: vec![0.0; obs_dim],
                    info: StepInfo { reward: 0.0, terminated: false, truncated: false },
                    step_error: None,
                })
            })
            .collect();
        let shared = Arc::new(Shared {
            slots,
            queues: Mutex::new(Queues::default()),
            work: Condvar::new(),
            ready: Condvar::new(),
            discrete,
            observation_space,
        });
        let mut handles = Vec::new();
        for t in 0..threads.max(1) {
            let theirs = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("rlpg-async-{t}"))
                .spawn(move || stepping_thread(&theirs))
                .map_err(|e| EnvError::Other {
                    env: id.clone(),
                    message: format!("cannot start a thread to step the envs: {e}"),
                });
            match handle {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    Self::stop(&shared, handles);
                    return Err(e);
                }
            }
        }
        Ok(Self {
            shared,
            handles,
            id,
            action_space,
            obs_dim,
            act_dim,
            batch_size: batch,
            obs: vec![0.0; n * obs_dim],
            acted_on: vec![0.0; n * obs_dim],
            episode_returns: vec![0.0; n],
            episode_lengths: vec![0; n],
            held: Vec::new(),
            outstanding: 0,
            fresh: 0,
            normalization,
            out: AsyncBatch::default(),
            broken: true,
        })
    }

    /// Stops the stepping threads (each finishes the step it is in).
    fn stop(shared: &Shared, handles: Vec<JoinHandle<()>>) {
        lock(&shared.queues).shutdown = true;
        shared.work.notify_all();
        for handle in handles {
            // A stepping thread never panics (envs' panics are caught).
            let _ = handle.join();
        }
    }

    /// Number of environments.
    pub fn num_envs(&self) -> usize {
        self.shared.slots.len()
    }

    /// Envs per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Threads stepping the envs.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// The observation space shared by all envs.
    pub fn observation_space(&self) -> &Space {
        &self.shared.observation_space
    }

    /// The action space shared by all envs.
    pub fn action_space(&self) -> &Space {
        &self.action_space
    }

    /// The observation statistics, if normalisation is on.
    pub fn obs_rms(&self) -> Option<&RunningMeanStd> {
        self.normalization.as_ref().map(|(rms, _)| rms)
    }

    /// Replaces the observation statistics (resuming); an error if normalisation is off or the
    /// dimension differs.
    pub fn set_obs_rms(&mut self, rms: RunningMeanStd) -> Result<(), EnvError> {
        match &mut self.normalization {
            Some((ours, _)) if rms.dim() == self.obs_dim => {
                *ours = rms;
                Ok(())
            }
            _ => Err(EnvError::Other {
                env: self.id.clone(),
                message: "observation statistics for a vector env without normalisation or of \
                          another dimension"
                    .to_owned(),
            }),
        }
    }

    /// Waits until no env is queued or stepping; returns the queues.
    fn quiesce(&mut self) -> MutexGuard<'_, Queues> {
        let mut queues = lock(&self.shared.queues);
        while queues.done.len() < self.outstanding {
            queues = self.shared.ready.wait(queues).unwrap_or_else(|p| p.into_inner());
        }
        queues
    }

    /// Waits for every env to finish its step, then resets all (env `i` with `seed + i`); the
    /// first batches after it hold the reset envs, in env order.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<(), EnvError> {
        drop(self.quiesce());
        self.broken = true;
        self.held.clear();
        let n = self.num_envs();
        for i in 0..n {
            let mut slot = lock(&self.shared.slots[i]);
            let env = &mut slot.env;
            let obs =
                env.reset(seed.map(|s| s.wrapping_add(i as u64))).map_err(|e| e.in_vec_env(i))?;
            check_observation(env.id(), &self.shared.observation_space, &obs, Origin::Reset)
                .map_err(|e| e.in_vec_env(i))?;
            self.obs[i * self.obs_dim..(i + 1) * self.obs_dim].copy_from_slice(&obs);
        }
        self.episode_returns.fill(0.0);
        self.episode_lengths.fill(0);
        self.fresh = n;
        let mut queues = lock(&self.shared.queues);
        queues.done.clear();
        queues.done.extend(0..n);
        drop(queues);
        self.outstanding = n;
        self.broken = false;
        Ok(())
    }

    /// Waits for the first `batch` envs to be ready and returns them (see [`AsyncBatch`]). The
    /// actions for exactly these envs must be sent ([`AsyncVecEnv::send`]) before the next call.
    pub fn recv(&mut self) -> Result<&AsyncBatch, EnvError> {
        if self.broken {
            return Err(EnvError::NotReset { env: self.id.clone() });
        }
        if !self.held.is_empty() {
            return Err(EnvError::Other {
                env: self.id.clone(),
                message: "recv called twice: send the actions of the last batch first".to_owned(),
            });
        }
        let batch = self.batch_size;
        let ids: Vec<usize> = {
            let mut queues = lock(&self.shared.queues);
            while queues.done.len() < batch {
                queues = self.shared.ready.wait(queues).unwrap_or_else(|p| p.into_inner());
            }
            queues.done.drain(..batch).collect()
        };
        self.outstanding -= batch;
        self.held.clone_from(&ids);
        // The batches right after a reset hold reset envs only (the batch divides `n`, and reset
        // envs are queued before any step finishes).
        let stepped = self.fresh == 0;
        if !stepped {
            self.fresh -= batch;
        }
        self.collect(ids, stepped).inspect_err(|_| self.broken = true)?;
        Ok(&self.out)
    }

    /// Fills `self.out` with the envs `ids`: their step's results (when `stepped`), checked as
    /// [`VecEnv`] checks them, and the observations to act on.
    fn collect(&mut self, ids: Vec<usize>, stepped: bool) -> Result<(), EnvError> {
        let d = self.obs_dim;
        let AsyncBatch { envs, stepped: was_stepped, prev_obs, step: out } = &mut self.out;
        prev_obs.clear();
        for v in [&mut out.obs, &mut out.next_obs] {
            v.clear();
        }
        out.rewards.clear();
        out.terminated.clear();
        out.truncated.clear();
        out.episodes.clear();
        *was_stepped = stepped;
        for &i in &ids {
            let row = i * d..(i + 1) * d;
            if stepped {
                let slot = lock(&self.shared.slots[i]);
                let length = self.episode_lengths[i] + 1;
                if let Some(e) = &slot.step_error {
                    return Err(e.clone().in_vec_env(i));
                }
                let (info, env) = (slot.info, slot.env.id());
                let space = &self.shared.observation_space;
                check_observation(env, space, &slot.next_obs, Origin::Step(length))
                    .and_then(|()| check_reward(env, info.reward, Origin::Step(length)))
                    .map_err(|e| e.in_vec_env(i))?;
                prev_obs.extend_from_slice(&self.acted_on[row.clone()]);
                out.next_obs.extend_from_slice(&slot.next_obs);
                out.rewards.push(info.reward);
                out.terminated.push(info.terminated);
                out.truncated.push(info.truncated);
                self.episode_returns[i] += info.reward;
                self.episode_lengths[i] = length;
                let next = if info.done() {
                    out.episodes.push(EpisodeRecord {
                        env: i,
                        ret: self.episode_returns[i],
                        length,
                    });
                    self.episode_returns[i] = 0.0;
                    self.episode_lengths[i] = 0;
                    &slot.first_obs
                } else {
                    &slot.next_obs
                };
                self.obs[row.clone()].copy_from_slice(next);
            }
            out.obs.extend_from_slice(&self.obs[row]);
        }
        if let Some((rms, clip)) = &mut self.normalization {
            // As VecNormalize: the statistics follow the observations acted on next.
            rms.update(&out.obs);
            let raw = out.obs.clone();
            rms.normalize(&raw, &mut out.obs, DEFAULT_NORM_EPSILON, *clip);
            let raw = out.next_obs.clone();
            rms.normalize(&raw, &mut out.next_obs, DEFAULT_NORM_EPSILON, *clip);
        }
        *envs = ids;
        Ok(())
    }

    /// The last batch [`AsyncVecEnv::recv`] returned (still readable after `send`).
    pub fn last_batch(&self) -> &AsyncBatch {
        &self.out
    }

    /// Starts the next step of the envs of the last batch with `actions` (one per env, in the
    /// batch's order) and returns at once.
    pub fn send(&mut self, actions: VecActions<'_>) -> Result<(), EnvError> {
        let (b, d, a) = (self.held.len(), self.obs_dim, self.act_dim);
        let wrong = match actions {
            _ if b == 0 => Some("send called without a batch from recv".to_owned()),
            VecActions::Discrete(x)
                if !matches!(self.action_space, Space::Discrete(_)) || x.len() != b =>
            {
                Some(format!(
                    "{} discrete actions for a batch of {b} envs of {}",
                    x.len(),
                    self.action_space
                ))
            }
            VecActions::Continuous(x)
                if !matches!(self.action_space, Space::Box(_)) || x.len() != b * a =>
            {
                Some(format!(
                    "{} action values for a batch of {b} envs of {}",
                    x.len(),
                    self.action_space
                ))
            }
            VecActions::MultiDiscrete(_) | VecActions::MultiBinary(_) => Some(format!(
                "asynchronous batches take Discrete or Box actions, not those of {}",
                self.action_space
            )),
            _ => None,
        };
        if let Some(message) = wrong {
            return Err(EnvError::Other { env: self.id.clone(), message });
        }
        for (k, &i) in self.held.iter().enumerate() {
            let mut slot = lock(&self.shared.slots[i]);
            match actions {
                VecActions::Discrete(x) => slot.discrete = x[k],
                VecActions::Continuous(x) => {
                    slot.continuous.copy_from_slice(&x[k * a..(k + 1) * a])
                }
                // Refused above.
                VecActions::MultiDiscrete(_) | VecActions::MultiBinary(_) => {}
            }
            // The transition's `obs`: what the env acts on, as the caller saw it.
            let acted_on = &self.out.step.obs[k * d..(k + 1) * d];
            self.acted_on[i * d..(i + 1) * d].copy_from_slice(acted_on);
        }
        self.outstanding += self.held.len();
        lock(&self.shared.queues).todo.extend(self.held.drain(..));
        self.shared.work.notify_all();
        Ok(())
    }

    /// What a checkpoint can hold of envs that are stepping: no env states (a resumed run resets
    /// the envs), the observations and running episode statistics as last seen, and the
    /// observation statistics.
    pub fn snapshot(&self) -> VecEnvSnapshot {
        VecEnvSnapshot::without_env_states_of(
            &self.obs,
            &self.episode_returns,
            &self.episode_lengths,
            self.normalization.as_ref().map(|(rms, clip)| (rms, *clip)),
        )
    }
}

impl Drop for AsyncVecEnv {
    fn drop(&mut self) {
        Self::stop(&self.shared, std::mem::take(&mut self.handles));
    }
}
