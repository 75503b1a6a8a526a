//! [`PointReach`]: a costly environment for benchmarks of parallel stepping — a point mass
//! pushed towards a goal in the plane, its dynamics integrated in many small substeps, as a
//! simulator would.

use rand_distr::{Distribution, Uniform};
use serde::{Deserialize, Serialize};

use crate::classic::Phase;
use crate::core::{
    Action, BoxSpace, Env, EnvError, EnvSnapshot, Observation, Space, Step, StepInfo,
    observation_buffer_error,
};
use crate::seeding::EnvRng;

/// The id of [`PointReach`] in the registry.
pub const POINT_REACH_ID: &str = "bench/PointReach-v0";

/// Substeps of one step in the registered env: about 50 µs a step on the machine the
/// benchmarks in `docs/benchmarks.md` ran on.
pub const POINT_REACH_SUBSTEPS: usize = 2_000;

/// Time of one step (seconds), whatever the number of substeps.
const STEP_TIME: f64 = 0.05;
/// The arena is `[-1, 1]²`; walls bounce the mass back with half its speed.
const ARENA: f64 = 1.0;
/// Quadratic air drag coefficient.
const DRAG: f64 = 2.0;
/// Force per unit of action.
const FORCE: f64 = 4.0;
/// The episode ends (terminated) when the mass is this close to the goal.
const GOAL_RADIUS: f64 = 0.05;
/// Start positions and goals are drawn uniformly in `[-START, START]²`.
const START: f64 = 0.8;
/// Cost of the action's squared norm in the reward.
const ACTION_COST: f64 = 0.01;

/// A point mass pushed by a bounded 2-D force towards a goal, with quadratic drag and bouncing
/// walls. Each step integrates the motion over 50 ms in `substeps` semi-implicit Euler
/// substeps: the cost of a step grows with `substeps` (2,000 take about 50 µs), while what the
/// agent sees changes little, so it stands in for an expensive simulator.
///
/// * Observations (6): position `x, y`, velocity `vx, vy`, and the goal relative to the mass.
/// * Actions: a force in `Box(-1, 1, (2,))`; values outside are an error.
/// * Reward: minus the distance to the goal, minus `0.01 |a|²`; the episode terminates within
///   `0.05` of the goal. Registered with a time limit of 200 steps.
#[derive(Clone, Debug)]
pub struct PointReach {
    state: State,
    substeps: usize,
    phase: Phase,
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

/// Position, velocity and goal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct State {
    pos: [f64; 2],
    vel: [f64; 2],
    goal: [f64; 2],
}

impl Default for PointReach {
    fn default() -> Self {
        Self::new()
    }
}

impl PointReach {
    /// The registered env: [`POINT_REACH_SUBSTEPS`] substeps a step.
    pub fn new() -> Self {
        Self::with_substeps(POINT_REACH_SUBSTEPS)
    }

    /// An env whose steps integrate `substeps` substeps (at least one): the cost of a step is
    /// about proportional to it.
    pub fn with_substeps(substeps: usize) -> Self {
        let inf = f32::INFINITY;
        Self {
            state: State::default(),
            substeps: substeps.max(1),
            phase: Phase::NotReset,
            rng: EnvRng::new(),
            observation_space: Space::Box(BoxSpace::new(vec![-inf; 6], vec![inf; 6])),
            action_space: Space::Box(BoxSpace::uniform(2, -1.0, 1.0)),
        }
    }

    fn observation(&self) -> [f32; 6] {
        let State { pos, vel, goal } = self.state;
        [pos[0], pos[1], vel[0], vel[1], goal[0] - pos[0], goal[1] - pos[1]].map(|v| v as f32)
    }

    fn distance(&self) -> f64 {
        let State { pos, goal, .. } = self.state;
        (goal[0] - pos[0]).hypot(goal[1] - pos[1])
    }

    /// One step: integrates the substeps; returns the reward and whether the goal was reached.
    #[inline]
    fn advance(&mut self, action: Action<'_>) -> Result<(f64, bool), EnvError> {
        self.phase.check_step(POINT_REACH_ID)?;
        let force = match action {
            Action::Continuous(&[fx, fy]) if self.action_space.contains(action) => {
                [f64::from(fx), f64::from(fy)]
            }
            _ => return Err(EnvError::invalid_action(POINT_REACH_ID, action, &self.action_space)),
        };
        let dt = STEP_TIME / self.substeps as f64;
        let State { mut pos, mut vel, goal } = self.state;
        for _ in 0..self.substeps {
            let speed = vel[0].hypot(vel[1]);
            for k in 0..2 {
                vel[k] += (FORCE * force[k] - DRAG * speed * vel[k]) * dt;
                pos[k] += vel[k] * dt;
                if pos[k].abs() > ARENA {
                    pos[k] = ARENA.copysign(pos[k]);
                    vel[k] *= -0.5;
                }
            }
        }
        self.state = State { pos, vel, goal };
        let distance = self.distance();
        let reward = -distance - ACTION_COST * (force[0] * force[0] + force[1] * force[1]);
        let reached = distance < GOAL_RADIUS;
        if reached {
            self.phase = Phase::Ended;
        }
        Ok((reward, reached))
    }
}

impl Env for PointReach {
    fn id(&self) -> &str {
        POINT_REACH_ID
    }

    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        let uniform = Uniform::new(-START, START).map_err(|e| EnvError::Other {
            env: POINT_REACH_ID.to_owned(),
            message: format!("reset distribution: {e}"),
        })?;
        let rng = self.rng.for_reset(seed);
        let mut draw = || uniform.sample(&mut *rng);
        self.state = State { pos: [draw(), draw()], vel: [0.0; 2], goal: [draw(), draw()] };
        self.phase = Phase::Running;
        Ok(self.observation().into_iter().collect())
    }

    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let (reward, terminated) = self.advance(action)?;
        let obs = self.observation().into_iter().collect();
        Ok(Step { obs, reward, terminated, truncated: false })
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        let Ok(row): Result<&mut [f32; 6], _> = obs.try_into() else {
            let space = &self.observation_space;
            let own = self.observation();
            return Err(observation_buffer_error(POINT_REACH_ID, space, &own, obs.len()));
        };
        let (reward, terminated) = self.advance(action)?;
        *row = self.observation();
        Ok(StepInfo { reward, terminated, truncated: false })
    }

    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        EnvSnapshot::new(POINT_REACH_ID, &(self.state, self.substeps, self.phase, &self.rng))
    }

    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        let (state, substeps, phase, rng): (State, usize, Phase, EnvRng) =
            snapshot.state(POINT_REACH_ID)?;
        if substeps != self.substeps {
            return Err(EnvError::Other {
                env: POINT_REACH_ID.to_owned(),
                message: format!(
                    "the snapshot is of an env with {substeps} substeps a step, this one has {}",
                    self.substeps
                ),
            });
        }
        (self.state, self.phase, self.rng) = (state, phase, rng);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushing_towards_the_goal_reaches_it_and_pushing_away_does_not() {
        let mut env = PointReach::with_substeps(50);
        let obs = env.reset(Some(3)).expect("reset");
        let start = (obs[4], obs[5]);
        let mut reached = false;
        for _ in 0..200 {
            let o = env.observation();
            // A PD controller on the relative goal.
            let a = [o[4] * 4.0 - o[2], o[5] * 4.0 - o[3]].map(|v| v.clamp(-1.0, 1.0));
            let step = env.step(Action::Continuous(&a)).expect("step");
            assert!(step.reward <= 0.0 && step.obs.iter().all(|v| v.is_finite()));
            if step.terminated {
                reached = true;
                break;
            }
        }
        assert!(reached, "the controller never reached the goal from {start:?}");
        env.reset(Some(3)).expect("reset");
        for _ in 0..200 {
            let o = env.observation();
            let a = [-o[4].signum(), -o[5].signum()];
            assert!(!env.step(Action::Continuous(&a)).expect("step").terminated);
        }
        let [x, y, ..] = env.observation();
        assert!(x.abs() <= 1.0 && y.abs() <= 1.0, "the walls keep the mass inside: {x}, {y}");
    }

    #[test]
    fn the_registered_env_passes_check_env() {
        let mut env = crate::make(POINT_REACH_ID).expect("registered");
        let report = crate::check_env(&mut env);
        assert!(report.is_ok(), "{report}");
    }

    #[test]
    fn out_of_bounds_actions_are_errors_and_snapshots_resume_exactly() {
        let mut env = PointReach::with_substeps(10);
        env.reset(Some(1)).expect("reset");
        let msg = env.step(Action::Continuous(&[1.5, 0.0])).expect_err("out of bounds");
        assert!(msg.to_string().contains(POINT_REACH_ID), "{msg}");
        env.step(Action::Continuous(&[0.3, -0.2])).expect("step");
        let mut copy = PointReach::with_substeps(10);
        copy.restore(&env.snapshot().expect("snapshot")).expect("restore");
        for t in 0..30 {
            let a = [0.1 * (t % 7) as f32 - 0.3, 0.5];
            assert_eq!(copy.step(Action::Continuous(&a)), env.step(Action::Continuous(&a)));
        }
        assert_eq!(copy.reset(None).expect("reset"), env.reset(None).expect("reset"));
        let err = PointReach::with_substeps(11).restore(&env.snapshot().expect("snapshot"));
        assert!(err.expect_err("other substeps").to_string().contains("substeps"));
    }
}
