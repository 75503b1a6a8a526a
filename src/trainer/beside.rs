//! Acting beside learning (`act_beside_learning`): the environments step, and the agent's
//! [`Actor`] chooses their actions, on a thread of their own while the learner (the loop's
//! thread) runs the agent's update on the previous step's transition.
//!
//! One actor thread, one learner, and exactly one step in flight. The loop receives step `t`'s
//! transition, sends the actor step `t + 1` with a copy of the policy as the agent has it then,
//! and only then hands transition `t` to [`rlpg_agents::Agent::observe`]. The actions of step
//! `t + 1` therefore come from a policy that has not yet learned from transition `t`: **one env
//! step stale** (the `updates_per_step × num_envs` updates of one step), never more, whatever
//! the threads' speeds. The hand-over is fixed, not a race, so a run is reproducible from its
//! seed: the actor's draws come from its own generator, seeded from `(seed, step)` at every
//! step as libtorch's is.
//!
//! What the loop needs the environments for (evaluations, videos, checkpoints, the end of the
//! run, a stop) happens with no step in flight: before such a point the loop sends no next
//! step, so the actor acts again only after it with the policy of that moment. A checkpoint
//! therefore holds the envs, the agent and the loop between two steps exactly as in lockstep,
//! and a run resumed from a periodic checkpoint continues as the uninterrupted run did. A stop
//! (Ctrl-C) is the exception: it drains the pipeline where the uninterrupted run would not
//! have, so the resumed run acts one step fresher there and differs from then on.
//!
//! The vector env and the actor move to the actor thread with each step and come back with its
//! result (they are owned by one thread at a time; nothing is shared). The envs must be `Send`
//! ([`VecEnv::into_send`]).

use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use rlpg_agents::{Actions, Actor, ActorParams, Agent, AgentError};
use rlpg_envs::{EnvError, EpisodeRecord, InfoTotals, SendVecEnv, VecEnv};

use super::actions::ActionAdapter;
use super::{StepError, StepRows};

/// What moves to the actor thread for a step and back: the envs, the actor, the action adapter.
struct Home {
    vec: SendVecEnv,
    actor: Box<dyn Actor>,
    adapter: ActionAdapter,
}

/// One step's rows, owned (the learner learns from them while the envs take the next step).
#[derive(Default)]
struct OwnedRows {
    obs: Vec<f32>,
    actions: Actions,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    next_obs: Vec<f32>,
    episodes: Vec<EpisodeRecord>,
    episode_infos: Vec<InfoTotals>,
}

/// A step for the actor thread: act on the envs' observations with `params`, step the envs.
struct Job {
    home: Home,
    params: ActorParams,
    seed: u64,
    rows: OwnedRows,
}

/// What the actor thread sends back: everything it was given, the rows filled in.
struct Done {
    home: Home,
    params: ActorParams,
    rows: OwnedRows,
    result: Result<(), StepError>,
}

/// The actor thread and what is home on the learner's side.
pub(super) struct Beside {
    /// The envs, the actor and the adapter when no step is in flight.
    home: Option<Home>,
    /// The parameters buffer when no step is in flight.
    params: ActorParams,
    /// The spare rows buffer (the one not being filled or learned from).
    spare: OwnedRows,
    /// The rows of the last step received.
    rows: OwnedRows,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

impl Beside {
    /// Starts the actor thread for `vec` (reset or restored) and the agent's actor. Errors when
    /// the envs are not `Send`, the agent has no actor, or the thread cannot start.
    pub(super) fn new(vec: VecEnv, agent: &dyn Agent) -> Result<Self, StepError> {
        let adapter = ActionAdapter::new(vec.action_space());
        let vec = vec.into_send("act_beside_learning").map_err(StepError::Env)?;
        let actor = match agent.actor() {
            Some(actor) => actor.map_err(StepError::Agent)?,
            None => {
                return Err(StepError::Agent(AgentError::Invalid(format!(
                    "act_beside_learning: the {} agent has no actor that can act beside its \
                     learning (the pathwise agent has)",
                    agent.name()
                ))));
            }
        };
        let (jobs, job_rx) = channel::<Job>();
        let (done_tx, done) = channel::<Done>();
        let thread = std::thread::Builder::new()
            .name("rlpg-actor".to_owned())
            .spawn(move || actor_thread(job_rx, done_tx))
            .map_err(|e| {
                StepError::Env(EnvError::Other {
                    env: vec.id().to_owned(),
                    message: format!("act_beside_learning: cannot start the actor thread: {e}"),
                })
            })?;
        Ok(Self {
            home: Some(Home { vec, actor, adapter }),
            params: ActorParams::default(),
            spare: OwnedRows::default(),
            rows: OwnedRows::default(),
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Whether a step is in flight (the envs are away).
    pub(super) fn in_flight(&self) -> bool {
        self.home.is_none()
    }

    /// The envs. The loop asks for them only with no step in flight (before evaluations,
    /// videos, checkpoints and the end it sends no next step, and a failed step brings them
    /// back; see the module docs), so their absence is a bug of the loop.
    pub(super) fn vec(&self) -> &VecEnv {
        match &self.home {
            Some(home) => &home.vec,
            None => panic!("internal error: the loop needs the envs while a step is in flight"),
        }
    }

    /// Sends the next step: the actor acts with `agent`'s policy as it is now, drawing from a
    /// generator seeded with `seed`, and the envs step. Does nothing if a step is in flight.
    pub(super) fn send(&mut self, agent: &dyn Agent, seed: u64) -> Result<(), StepError> {
        let Some(home) = self.home.take() else { return Ok(()) };
        let mut params = std::mem::take(&mut self.params);
        if let Err(e) = agent.actor_params(&mut params) {
            self.home = Some(home);
            return Err(StepError::Agent(e));
        }
        let rows = std::mem::take(&mut self.spare);
        let job = Job { home, params, seed, rows };
        let sent = match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|returned| returned.0),
            None => Err(job),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(job) => {
                // The thread is gone (it panicked on an earlier step): take everything back.
                self.home = Some(job.home);
                Err(self.thread_lost())
            }
        }
    }

    /// Waits for the step in flight (the envs are home again); its rows are then [`Beside::rows`].
    /// Does nothing if no step is in flight.
    pub(super) fn recv(&mut self) -> Result<(), StepError> {
        if self.home.is_some() {
            return Ok(());
        }
        let done = match self.done.recv() {
            Ok(done) => done,
            Err(_) => return Err(self.thread_lost()),
        };
        self.home = Some(done.home);
        self.params = done.params;
        self.spare = std::mem::replace(&mut self.rows, done.rows);
        done.result
    }

    /// The rows of the last step received.
    pub(super) fn rows(&self) -> StepRows<'_> {
        let r = &self.rows;
        StepRows {
            obs: &r.obs,
            actions: &r.actions,
            rewards: &r.rewards,
            terminated: &r.terminated,
            truncated: &r.truncated,
            next_obs: &r.next_obs,
            episodes: &r.episodes,
            episode_infos: &r.episode_infos,
            // The settings refuse acting beside learning in masked envs (its actor takes no
            // masks).
            masks: None,
            next_masks: None,
        }
    }

    /// The actor thread ended without answering: it panicked. Its panic goes on here, on the
    /// loop's thread, as a panic of an env in lockstep would.
    fn thread_lost(&mut self) -> StepError {
        if let Some(thread) = self.thread.take() {
            if let Err(payload) = thread.join() {
                std::panic::resume_unwind(payload);
            }
        }
        StepError::Env(EnvError::Other {
            env: "act_beside_learning".to_owned(),
            message: "the actor thread stopped without answering".to_owned(),
        })
    }
}

impl Drop for Beside {
    /// Closes the job channel and waits for the actor thread, which finishes a step in flight
    /// first (the loop returns with one in flight only on an error).
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            // A panic on the actor thread after the loop has already failed adds nothing.
            let _ = thread.join();
        }
    }
}

/// The actor thread: acts and steps for every job until the loop closes the channel.
fn actor_thread(jobs: Receiver<Job>, done: Sender<Done>) {
    while let Ok(job) = jobs.recv() {
        let Job { mut home, params, seed, mut rows } = job;
        let result = act_and_step(&mut home, &params, seed, &mut rows);
        if done.send(Done { home, params, rows, result }).is_err() {
            return;
        }
    }
}

/// One step on the actor thread: the actor takes `params`, acts on the envs' observations, the
/// envs step, and their rows are copied into `rows`.
fn act_and_step(
    home: &mut Home,
    params: &ActorParams,
    seed: u64,
    rows: &mut OwnedRows,
) -> Result<(), StepError> {
    let Home { vec, actor, adapter } = home;
    actor.load(params).map_err(StepError::Agent)?;
    rows.obs.clear();
    rows.obs.extend_from_slice(vec.obs());
    actor.act(&rows.obs, seed, &mut rows.actions).map_err(StepError::Agent)?;
    let env_actions = adapter.convert(&rows.actions).map_err(StepError::Agent)?;
    let step = vec.step(env_actions).map_err(StepError::Env)?;
    rows.rewards.clone_from(&step.rewards);
    rows.terminated.clone_from(&step.terminated);
    rows.truncated.clone_from(&step.truncated);
    rows.next_obs.clone_from(&step.next_obs);
    rows.episodes.clone_from(&step.episodes);
    rows.episode_infos.clone_from(&step.episode_infos);
    Ok(())
}
