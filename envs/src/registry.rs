//! The registry: environment ids, [`make`] and the listing of what is available.

use std::fmt;

use crate::classic::acrobot::Acrobot;
use crate::classic::cartpole::CartPole;
use crate::classic::mountain_car::MountainCar;
use crate::classic::mountain_car_continuous::MountainCarContinuous;
use crate::classic::pendulum::Pendulum;
use crate::core::{Env, EnvError, Space};
use crate::wrappers::time_limit::TimeLimit;

/// One registered environment, as listed by [`registry`].
#[derive(Clone, Debug, PartialEq)]
pub struct EnvSpec {
    /// The id passed to [`make`], e.g. `"CartPole-v1"`.
    pub id: &'static str,
    /// Observation space of the environment.
    pub observation_space: Space,
    /// Action space of the environment.
    pub action_space: Space,
    /// Episodes are truncated after this many steps by [`make`]'s [`TimeLimit`].
    pub max_episode_steps: Option<usize>,
    /// One line on what the environment is.
    pub description: &'static str,
}

impl fmt::Display for EnvSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = self.max_episode_steps.map_or_else(|| "none".to_owned(), |n| n.to_string());
        write!(
            f,
            "{}: observations {}, actions {}, time limit {limit}: {}",
            self.id, self.observation_space, self.action_space, self.description
        )
    }
}

/// How to build one registered environment.
struct Entry {
    id: &'static str,
    max_episode_steps: usize,
    description: &'static str,
    /// Builds the environment wrapped in a [`TimeLimit`] of the given length. The wrapper is
    /// applied to the concrete type, not to a `Box<dyn Env>`, so that a step costs one dynamic
    /// call rather than two and the environment's step inlines into the wrapper's.
    build: fn(usize) -> Box<dyn Env>,
}

const ENTRIES: &[Entry] = &[
    Entry {
        id: "CartPole-v1",
        max_episode_steps: 500,
        description: "balance a pole on a cart by pushing it left or right (Gymnasium 1.4)",
        build: |limit| Box::new(TimeLimit::new(CartPole::new(), limit)),
    },
    Entry {
        id: "Pendulum-v1",
        max_episode_steps: 200,
        description: "swing a pendulum up and hold it with a bounded torque (Gymnasium 1.4)",
        build: |limit| Box::new(TimeLimit::new(Pendulum::new(), limit)),
    },
    Entry {
        id: "Acrobot-v1",
        max_episode_steps: 500,
        description: "swing the free end of a two-link robot above a line, torque on the elbow only (Gymnasium 1.4)",
        build: |limit| Box::new(TimeLimit::new(Acrobot::new(), limit)),
    },
    Entry {
        id: "MountainCar-v0",
        max_episode_steps: 200,
        description: "drive an underpowered car up a hill with three discrete pushes (Gymnasium 1.4)",
        build: |limit| Box::new(TimeLimit::new(MountainCar::new(), limit)),
    },
    Entry {
        id: "MountainCarContinuous-v0",
        max_episode_steps: 999,
        description: "drive an underpowered car up a hill with a continuous force, paying for it (Gymnasium 1.4)",
        build: |limit| Box::new(TimeLimit::new(MountainCarContinuous::new(), limit)),
    },
    #[cfg(feature = "gym-rs")]
    Entry {
        id: crate::gym_rs::MOUNTAIN_CAR_ID,
        max_episode_steps: 200,
        description: "drive an underpowered car up a hill (the gym-rs crate's MountainCar)",
        build: |limit| Box::new(TimeLimit::new(crate::gym_rs::GymRsEnv::mountain_car(), limit)),
    },
];

fn entry(id: &str) -> Result<&'static Entry, EnvError> {
    ENTRIES.iter().find(|e| e.id == id).ok_or_else(|| EnvError::UnknownEnv {
        id: id.to_owned(),
        known: ENTRIES.iter().map(|e| e.id.to_owned()).collect(),
    })
}

/// Builds the registered environment `id`, wrapped in its [`TimeLimit`] (the environment itself
/// never truncates). Unknown ids give [`EnvError::UnknownEnv`] listing the known ones.
pub fn make(id: &str) -> Result<Box<dyn Env>, EnvError> {
    let entry = entry(id)?;
    Ok((entry.build)(entry.max_episode_steps))
}

/// The specification of the registered environment `id`.
pub fn spec(id: &str) -> Result<EnvSpec, EnvError> {
    entry(id).map(to_spec)
}

/// Every registered environment, in registration order.
pub fn registry() -> Vec<EnvSpec> {
    ENTRIES.iter().map(to_spec).collect()
}

fn to_spec(entry: &Entry) -> EnvSpec {
    let env = (entry.build)(entry.max_episode_steps);
    EnvSpec {
        id: entry.id,
        observation_space: env.observation_space().clone(),
        action_space: env.action_space().clone(),
        max_episode_steps: Some(entry.max_episode_steps),
        description: entry.description,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Action, BoxSpace};

    #[test]
    fn cartpole_is_truncated_at_500_by_make() {
        let mut env = make("CartPole-v1").expect("registered");
        assert_eq!(env.id(), "CartPole-v1");
        let mut obs = env.reset(Some(0)).expect("reset");
        for t in 1..=500 {
            // The fixtures' balancing controller: keeps the pole up for the whole episode.
            let s = 0.05 * obs[0] + 0.1 * obs[1] + obs[2] + 0.3 * obs[3];
            let step = env.step(Action::Discrete(usize::from(s > 0.0))).expect("step");
            assert!(!step.terminated, "the controller let the pole fall at step {t}");
            assert_eq!(step.truncated, t == 500, "step {t}: truncated {}", step.truncated);
            obs = step.obs;
        }
        env.step(Action::Discrete(0)).expect_err("step after the time limit");
    }

    #[test]
    fn pendulum_is_truncated_at_200_by_make() {
        let mut env = make("Pendulum-v1").expect("registered");
        env.reset(Some(3)).expect("reset");
        for t in 1..=200 {
            let step = env.step(Action::Continuous(&[0.5])).expect("step");
            assert_eq!(step.truncated, t == 200, "step {t}");
        }
    }

    #[test]
    fn unknown_ids_list_the_known_ones() {
        let err = make("CartPole-v0").err().expect("unknown id accepted");
        let msg = err.to_string();
        assert!(
            msg.contains("'CartPole-v0'")
                && msg.contains(
                    "CartPole-v1, Pendulum-v1, Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0"
                ),
            "message '{msg}' must name the id and the known ids"
        );
    }

    #[test]
    fn registry_lists_ids_spaces_and_limits() {
        let specs = registry();
        let cartpole = specs.iter().find(|s| s.id == "CartPole-v1").expect("CartPole listed");
        assert_eq!(cartpole.action_space, Space::Discrete(2));
        assert_eq!(cartpole.max_episode_steps, Some(500));
        let pendulum = spec("Pendulum-v1").expect("Pendulum listed");
        assert_eq!(pendulum.action_space, Space::Box(BoxSpace::uniform(1, -2.0, 2.0)));
        assert_eq!(pendulum.observation_space.flat_dim(), 3);
        assert_eq!(pendulum.max_episode_steps, Some(200));
        let line = pendulum.to_string();
        assert!(line.contains("Pendulum-v1") && line.contains("time limit 200"), "{line}");
    }

    #[test]
    fn the_new_classic_control_envs_have_gymnasiums_spaces_and_limits() {
        let acrobot = spec("Acrobot-v1").expect("Acrobot listed");
        assert_eq!(acrobot.action_space, Space::Discrete(3));
        assert_eq!(acrobot.observation_space.flat_dim(), 6);
        assert_eq!(acrobot.max_episode_steps, Some(500));
        let car = spec("MountainCar-v0").expect("MountainCar listed");
        assert_eq!(car.action_space, Space::Discrete(3));
        let obs_space = Space::Box(BoxSpace::new(vec![-1.2, -0.07], vec![0.6, 0.07]));
        assert_eq!(car.observation_space, obs_space);
        assert_eq!(car.max_episode_steps, Some(200));
        let continuous = spec("MountainCarContinuous-v0").expect("MountainCarContinuous listed");
        assert_eq!(continuous.action_space, Space::Box(BoxSpace::uniform(1, -1.0, 1.0)));
        assert_eq!(continuous.observation_space, obs_space);
        assert_eq!(continuous.max_episode_steps, Some(999));
        for (id, limit) in
            [("Acrobot-v1", 500), ("MountainCar-v0", 200), ("MountainCarContinuous-v0", 999)]
        {
            let mut env = make(id).expect("registered");
            env.reset(Some(0)).expect("reset");
            let action = match env.action_space() {
                Space::Discrete(_) => Action::Discrete(1),
                Space::Box(_) => Action::Continuous(&[0.0]),
            };
            for t in 1..=limit {
                // Doing nothing reaches no goal, so only the time limit ends these episodes.
                let step = env.step(action).expect("step");
                assert!(!step.terminated, "{id} step {t} terminated");
                assert_eq!(step.truncated, t == limit, "{id} step {t}");
            }
        }
    }
}
