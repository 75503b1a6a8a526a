//! Batches of whole episodes played by a [`PolicyProbe`], with the noise that drew every action
//! kept, so that a batch can be replayed at other parameters and differentiated afterwards.

use rlpg_agents::PolicyProbe;
use rlpg_envs::{Action, DEFAULT_NORM_EPSILON, Env, RunningMeanStd, Space};
use tch::{Kind, Tensor};

use crate::run::RunError;
use crate::trainer::OBS_CLIP;

/// A factory of fresh environments (each a whole episode's worth, time limit included).
pub type MakeEnv<'a> = &'a dyn Fn() -> Result<Box<dyn Env>, rlpg_envs::EnvError>;

/// Episodes laid out episode-major: the rows of episode `e` are `starts[e]..starts[e + 1]`.
#[derive(Debug)]
pub struct Episodes {
    /// The policy's inputs (normalised as the run normalises them), `[rows, obs_dim]`.
    pub obs: Tensor,
    /// The noise each action was drawn from, `[rows, noise_dim]`.
    pub noise: Tensor,
    /// The reward of each row's step.
    pub rewards: Vec<f64>,
    /// Each row's time step within its episode.
    pub time: Vec<usize>,
    /// Row offsets of the episodes, `episodes + 1` entries.
    pub starts: Vec<usize>,
}

impl Episodes {
    /// Number of episodes.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each episode's discounted return `Σ_t γ^t r_t`.
    pub fn discounted_returns(&self, gamma: f64) -> Vec<f64> {
        (0..self.len())
            .map(|e| {
                (self.starts[e]..self.starts[e + 1])
                    .map(|i| gamma.powi(self.time[i] as i32) * self.rewards[i])
                    .sum()
            })
            .collect()
    }

    /// Each row's discounted reward-to-go `G_t = Σ_{t' ≥ t} γ^(t'−t) r_t'` within its episode.
    pub fn rewards_to_go(&self, gamma: f64) -> Vec<f64> {
        let mut out = vec![0.0; self.rewards.len()];
        for e in 0..self.len() {
            let mut acc = 0.0;
            for i in (self.starts[e]..self.starts[e + 1]).rev() {
                acc = self.rewards[i] + gamma * acc;
                out[i] = acc;
            }
        }
        out
    }

    /// The rows of episodes `range` as `(first row, row count)`.
    pub fn rows_of(&self, range: std::ops::Range<usize>) -> (usize, usize) {
        let first = self.starts[range.start];
        (first, self.starts[range.end] - first)
    }
}

/// One step of every lockstep env: the inputs, the noise, and each env's reward (`None` once
/// its episode has ended).
type LockstepStep = (Vec<f32>, Tensor, Vec<Option<f64>>);

/// Plays `seeds.len()` episodes in lockstep, env `i` reset with `seeds[i]`, actions from the
/// probe with noise drawn from tch's generator: one draw of `seeds.len()` rows per step whether
/// or not every episode is still running, so that after `tch::manual_seed` the same seeds give
/// the same noise at every parameter (common random numbers). Episodes longer than
/// `max_steps` are an error: the objective is the whole episode.
pub fn play(
    probe: &dyn PolicyProbe,
    make_env: MakeEnv<'_>,
    obs_rms: Option<&RunningMeanStd>,
    seeds: &[u64],
    max_steps: usize,
) -> Result<Episodes, RunError> {
    let n = seeds.len();
    let mut envs: Vec<Box<dyn Env>> = (0..n).map(|_| make_env()).collect::<Result<_, _>>()?;
    let space = envs.first().map(|e| e.action_space().clone()).unwrap_or(Space::Discrete(1));
    let obs_dim = envs.first().map_or(0, |e| e.observation_space().flat_dim());
    let mut raw = vec![0.0f32; n * obs_dim];
    for (i, (env, &seed)) in envs.iter_mut().zip(seeds).enumerate() {
        let obs = env.reset(Some(seed))?;
        raw[i * obs_dim..(i + 1) * obs_dim].copy_from_slice(&obs);
    }
    let mut input = vec![0.0f32; n * obs_dim];
    let mut alive = vec![true; n];
    let mut steps: Vec<LockstepStep> = Vec::new();
    let mut action = Vec::new();
    while alive.iter().any(|&a| a) {
        if steps.len() == max_steps {
            return Err(RunError::Usage(format!(
                "an episode ran past {max_steps} steps; the measurement needs whole episodes \
                 (raise --max-steps)"
            )));
        }
        for i in 0..n {
            let (row, out) = (&raw[i * obs_dim..(i + 1) * obs_dim], i * obs_dim);
            match obs_rms {
                Some(rms) => rms.normalize(
                    row,
                    &mut input[out..out + obs_dim],
                    DEFAULT_NORM_EPSILON,
                    OBS_CLIP,
                ),
                None => input[out..out + obs_dim].copy_from_slice(row),
            }
        }
        let obs = Tensor::from_slice(&input).view([n as i64, obs_dim as i64]);
        let noise = probe.draw_noise(n);
        let actions = tch::no_grad(|| probe.act_from_noise(&obs, &noise));
        let discrete: Vec<i64> = match space {
            Space::Box(_) => Vec::new(),
            _ => Vec::<i64>::try_from(&actions).map_err(torch)?,
        };
        let continuous: Vec<f32> = match space {
            Space::Box(_) => {
                Vec::<f32>::try_from(&actions.to_kind(Kind::Float).flatten(0, -1)).map_err(torch)?
            }
            _ => Vec::new(),
        };
        let d = continuous.len().checked_div(n).unwrap_or(0);
        let mut rewards = vec![None; n];
        for i in 0..n {
            if !alive[i] {
                continue;
            }
            let act = match space {
                Space::Discrete(_) => Action::Discrete(discrete[i].max(0) as usize),
                // Probes exist only for agents, and no agent acts in these spaces yet.
                Space::MultiDiscrete(_) | Space::MultiBinary(_) => {
                    return Err(RunError::Usage(format!(
                        "the true-gradient measurement does not act in {space} yet"
                    )));
                }
                Space::Box(_) => {
                    action.clear();
                    action.extend_from_slice(&continuous[i * d..(i + 1) * d]);
                    Action::Continuous(&action)
                }
            };
            let info = envs[i].step_into(act, &mut raw[i * obs_dim..(i + 1) * obs_dim])?;
            rewards[i] = Some(info.reward);
            alive[i] = !info.done();
        }
        steps.push((input.clone(), noise, rewards));
    }
    gather(&steps, n, obs_dim)
}

/// Lays the lockstep steps out episode-major, keeping only the steps each episode took.
fn gather(steps: &[LockstepStep], n: usize, obs_dim: usize) -> Result<Episodes, RunError> {
    let mut obs = Vec::new();
    let mut index = Vec::new();
    let mut rewards = Vec::new();
    let mut time = Vec::new();
    let mut starts = vec![0];
    for e in 0..n {
        for (t, (input, _, r)) in steps.iter().enumerate() {
            let Some(reward) = r[e] else { break };
            obs.extend_from_slice(&input[e * obs_dim..(e + 1) * obs_dim]);
            index.push((t * n + e) as i64);
            rewards.push(reward);
            time.push(t);
        }
        starts.push(rewards.len());
    }
    let noise = if steps.is_empty() {
        Tensor::zeros([0, 1], (Kind::Float, tch::Device::Cpu))
    } else {
        let all: Vec<&Tensor> = steps.iter().map(|(_, noise, _)| noise).collect();
        Tensor::cat(&all, 0).index_select(0, &Tensor::from_slice(&index))
    };
    let rows = rewards.len() as i64;
    Ok(Episodes {
        obs: Tensor::from_slice(&obs).view([rows, obs_dim as i64]),
        noise,
        rewards,
        time,
        starts,
    })
}

/// A libtorch error as a run error.
pub(crate) fn torch(e: tch::TchError) -> RunError {
    RunError::Agent(e.into())
}

/// Plays `count` episodes in lockstep batches of `batch`, seeds from `next_seed` on.
pub(super) fn play_many(
    probe: &dyn PolicyProbe,
    make_env: MakeEnv<'_>,
    obs_rms: Option<&RunningMeanStd>,
    count: usize,
    batch: usize,
    next_seed: &mut u64,
    max_steps: usize,
) -> Result<Vec<Episodes>, RunError> {
    let mut out = Vec::new();
    let mut left = count;
    while left > 0 {
        let n = left.min(batch);
        let seeds: Vec<u64> = (0..n as u64).map(|i| *next_seed + i).collect();
        *next_seed += n as u64;
        out.push(play(probe, make_env, obs_rms, &seeds, max_steps)?);
        left -= n;
    }
    Ok(out)
}

/// `n` fresh reset seeds.
pub(super) fn seeds(next_seed: &mut u64, n: usize) -> Vec<u64> {
    let out = (0..n as u64).map(|i| *next_seed + i).collect();
    *next_seed += n as u64;
    out
}

/// One reset observation as the policy sees it, `[1, obs_dim]` (to ask the probe what it has).
pub(super) fn truth_sample_obs(
    make_env: MakeEnv<'_>,
    obs_rms: Option<&RunningMeanStd>,
) -> Result<Tensor, RunError> {
    let mut env = make_env()?;
    let raw = env.reset(Some(0))?;
    let mut input = raw.to_vec();
    if let Some(rms) = obs_rms {
        rms.normalize(&raw, &mut input, rlpg_envs::DEFAULT_NORM_EPSILON, crate::trainer::OBS_CLIP);
    }
    Ok(Tensor::from_slice(&input).view([1, input.len() as i64]))
}

/// The batches as one.
pub(super) fn concat(batches: &[Episodes]) -> Result<Episodes, RunError> {
    let mut starts = vec![0];
    let (mut rewards, mut time) = (Vec::new(), Vec::new());
    for b in batches {
        let offset = rewards.len();
        starts.extend(b.starts[1..].iter().map(|s| s + offset));
        rewards.extend_from_slice(&b.rewards);
        time.extend_from_slice(&b.time);
    }
    let obs: Vec<&Tensor> = batches.iter().map(|b| &b.obs).collect();
    let noise: Vec<&Tensor> = batches.iter().map(|b| &b.noise).collect();
    Ok(Episodes {
        obs: Tensor::f_cat(&obs, 0).map_err(torch)?,
        noise: Tensor::f_cat(&noise, 0).map_err(torch)?,
        rewards,
        time,
        starts,
    })
}
