//! Adapter for the environments of the `gym-rs` crate (feature `gym-rs`).
//!
//! gym-rs has its own `Env` trait (rand 0.8, `OrderedFloat` observations, panics on invalid
//! actions, no time limits). [`GymRsEnv`] puts any of its discrete-action environments behind
//! rlpg's [`Env`]: validated actions, Gymnasium's seeding rules, `f32` observations.
//!
//! Only MountainCar is registered ([`MOUNTAIN_CAR_ID`], 200-step limit as Gymnasium's
//! `MountainCar-v0`). Its dynamics are Gymnasium's, operation for operation, so from the same
//! state it steps bit for bit as rlpg's native [`crate::MountainCar`] does (a test checks this);
//! its resets draw from its own generator, so the two differ only in their start states. gym-rs's CartPole is *not* Gymnasium's (its pole mass-length is computed
//! as mass + length, its resets draw from ±0.5 and it has no limit), so rlpg's own
//! [`crate::CartPole`] is the one registered.

use gym_rs::core::{Env as GymEnv, EnvProperties};
use gym_rs::envs::classical_control::mountain_car::MountainCarEnv;
use gym_rs::spaces::{BoxR, Discrete};
use gym_rs::utils::custom::traits::Sample;
use gym_rs::utils::renderer::RenderMode;
use rand::RngExt;

use crate::classic::Phase;
use crate::core::{Action, BoxSpace, Env, EnvError, Observation, Space, Step};
use crate::seeding::EnvRng;

/// Registry id of gym-rs's MountainCar.
pub const MOUNTAIN_CAR_ID: &str = "gym-rs/MountainCar-v0";

/// A gym-rs environment with a `Discrete` action space and a box of `f64` observations, as an
/// rlpg [`Env`].
///
/// * Actions outside the action space are an [`EnvError`] (gym-rs would panic).
/// * Seeding: `reset(Some(seed))` re-seeds this adapter's [`EnvRng`], `reset(None)` continues
///   it; each reset passes the next number of that stream to gym-rs as its seed. (gym-rs itself
///   re-seeds from the operating system on `reset(None)`, which would make runs irreproducible.)
/// * Observations are rounded from `f64` to `f32`.
/// * The gym-rs environment never truncates; wrap the adapter in [`crate::TimeLimit`] (as
///   [`crate::make`] does).
pub struct GymRsEnv<E> {
    env: E,
    id: &'static str,
    observation_space: Space,
    action_space: Space,
    phase: Phase,
    rng: EnvRng,
}

impl GymRsEnv<MountainCarEnv> {
    /// gym-rs's MountainCar (no rendering), registered as [`MOUNTAIN_CAR_ID`].
    pub fn mountain_car() -> Self {
        Self::new(MountainCarEnv::new(RenderMode::None), MOUNTAIN_CAR_ID)
    }
}

impl<E> GymRsEnv<E>
where
    E: GymEnv<Action = usize>
        + EnvProperties<ActionSpace = Discrete, ObservationSpace = BoxR<E::Observation>>,
    E::Observation: Sample + Into<Vec<f64>> + Clone,
{
    /// Wraps `env` under the id `id` (used in error messages). Create `env` without rendering.
    pub fn new(env: E, id: &'static str) -> Self {
        let bounds = EnvProperties::observation_space(&env);
        let to_f32 = |v: E::Observation| -> Vec<f32> {
            let v: Vec<f64> = v.into();
            v.into_iter().map(|x| x as f32).collect()
        };
        let observation_space =
            Space::Box(BoxSpace::new(to_f32(bounds.low.clone()), to_f32(bounds.high.clone())));
        let Discrete(n) = *EnvProperties::action_space(&env);
        Self {
            env,
            id,
            observation_space,
            action_space: Space::Discrete(n),
            phase: Phase::NotReset,
            rng: EnvRng::new(),
        }
    }

    /// The wrapped gym-rs environment.
    pub fn inner(&self) -> &E {
        &self.env
    }

    /// The wrapped gym-rs environment, mutable: e.g. to put it in a given state (its `state`
    /// field) after a `reset`. The adapter's own bookkeeping (whether an episode is under way)
    /// is left as it is.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.env
    }

    fn observation(obs: E::Observation) -> Observation {
        let v: Vec<f64> = obs.into();
        v.into_iter().map(|x| x as f32).collect()
    }
}

impl<E> Env for GymRsEnv<E>
where
    E: GymEnv<Action = usize>
        + EnvProperties<ActionSpace = Discrete, ObservationSpace = BoxR<E::Observation>>,
    E::Observation: Sample + Into<Vec<f64>> + Clone,
{
    fn id(&self) -> &str {
        self.id
    }

    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        let gym_seed: u64 = self.rng.for_reset(seed).random();
        let (obs, _) = self.env.reset(Some(gym_seed), false, None);
        self.phase = Phase::Running;
        Ok(Self::observation(obs))
    }

    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        self.phase.check_step(self.id)?;
        let a = match action {
            Action::Discrete(a) if self.action_space.contains(action) => a,
            _ => return Err(EnvError::invalid_action(self.id, action, &self.action_space)),
        };
        let out = self.env.step(a);
        if out.done || out.truncated {
            self.phase = Phase::Ended;
        }
        Ok(Step {
            obs: Self::observation(out.observation),
            reward: out.reward.into_inner(),
            terminated: out.done,
            truncated: out.truncated,
        })
    }
}
