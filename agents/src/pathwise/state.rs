//! What the pathwise agent saves: its checkpoint tensors (the networks, the optimizers and the
//! temperature) and its training state (the replay buffer, the schedule's counters and the
//! metric sums since the last report), under names old runs were saved with.

use tch::{Kind, Tensor};

use crate::agent::{AgentError, Metrics};
use crate::optim::{ScalarAdam, find};
use crate::scaffold::{
    TensorLayout, check_checkpoint, copy_variables, counter, counter_tensor, reject_foreign,
};

use super::agent::{NAME, Pathwise, Variant};
use super::exploration::PinkNoise;

/// Name of the entropy temperature's logarithm in checkpoints.
const LOG_ALPHA: &str = "log_alpha";
/// Checkpoint prefixes of the optimizers' states.
const ACTOR_ADAM: &str = "actor_adam";
/// See [`ACTOR_ADAM`].
const CRITIC_ADAM: &str = "critic_adam";
/// See [`ACTOR_ADAM`].
const ALPHA_ADAM: &str = "alpha_adam";
/// Training-state names: the replay buffer's prefix and the schedule's counters.
const REPLAY: &str = "replay";
/// See [`REPLAY`].
const ENV_STEPS: &str = "env_steps";
/// See [`REPLAY`].
const UPDATES: &str = "updates";
/// See [`REPLAY`].
const STEPS_SINCE_METRICS: &str = "steps_since_metrics";
/// See [`REPLAY`].
const UPDATE_CREDIT: &str = "update_credit";
/// Training-state prefix of the metric sums since the last report, saved as
/// `metrics/{position}/{tag}` = `[sum, count]` so that the first report after a resume averages
/// the same updates as it would have.
const METRICS: &str = "metrics";
/// Every tag [`MetricSums::add`] is given, for restoring the sums (metrics are named by
/// `&'static str`).
const METRIC_TAGS: [&str; 11] = [
    "grad/variance",
    "grad/snr",
    "losses/qf1_loss",
    "losses/qf2_loss",
    "losses/qf1_values",
    "losses/critic_grad_norm",
    "losses/actor_loss",
    "losses/actor_grad_norm",
    "losses/entropy",
    "losses/alpha",
    "losses/alpha_loss",
];

impl Pathwise {
    /// Every network variable, named `{network}/{variable}` (the network being `actor`,
    /// `critic`, `critic_target` or, for TD3, `actor_target`), sharing storage with the network,
    /// sorted by name.
    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut named = self.core.actor.variables("actor");
        named.extend(self.core.critic.variables("critic"));
        named.extend(self.core.critic_target.variables("critic_target"));
        if let Variant::Td3 { target_actor } = &self.core.variant {
            named.extend(target_actor.variables("actor_target"));
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// The name, kind and shape of everything a checkpoint of this agent holds.
    fn checkpoint_layout(&self) -> Vec<TensorLayout> {
        let mut layout: Vec<TensorLayout> =
            self.parameters().into_iter().map(|(n, t)| (n, Kind::Float, t.size())).collect();
        layout.extend(self.core.actor.opt.state_layout(ACTOR_ADAM));
        layout.extend(self.core.critic.opt.state_layout(CRITIC_ADAM));
        if let Variant::Sac(temperature) = &self.core.variant {
            layout.push((LOG_ALPHA.to_owned(), Kind::Double, vec![1]));
            if temperature.opt.is_some() {
                layout.extend(ScalarAdam::state_layout(ALPHA_ADAM));
            }
        }
        layout
    }

    /// [`Agent::named_tensors`](crate::Agent::named_tensors): copies of the networks, the
    /// optimizers' states and SAC's `log_alpha`, sorted by name.
    pub(super) fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        let mut named: Vec<(String, Tensor)> =
            self.parameters().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
        named.extend(self.core.actor.opt.state(ACTOR_ADAM));
        named.extend(self.core.critic.opt.state(CRITIC_ADAM));
        if let Variant::Sac(temperature) = &self.core.variant {
            named.push((LOG_ALPHA.to_owned(), Tensor::from_slice(&[temperature.log_alpha])));
            if let Some(opt) = &temperature.opt {
                named.extend(opt.state(ALPHA_ADAM));
            }
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// [`Agent::load_named_tensors`](crate::Agent::load_named_tensors): checks everything
    /// before changing anything, so a bad checkpoint leaves the agent intact.
    pub(super) fn load_checkpoint_tensors(
        &mut self,
        tensors: &[(String, Tensor)],
    ) -> Result<(), AgentError> {
        check_checkpoint(NAME, tensors, &self.checkpoint_layout())?;
        let log_alpha = match &self.core.variant {
            Variant::Sac(_) => {
                let v = find(tensors, LOG_ALPHA, Kind::Double, &[1])?.f_double_value(&[0])?;
                if !v.is_finite() {
                    return Err(AgentError::Invalid(format!(
                        "checkpoint tensor '{LOG_ALPHA}' is {v}, not a finite number"
                    )));
                }
                Some(v)
            }
            Variant::Td3 { .. } => None,
        };
        copy_variables(self.parameters(), tensors)?;
        self.core.actor.opt.load_state(ACTOR_ADAM, tensors)?;
        self.core.critic.opt.load_state(CRITIC_ADAM, tensors)?;
        if let (Variant::Sac(temperature), Some(v)) = (&mut self.core.variant, log_alpha) {
            temperature.log_alpha = v;
            if let Some(opt) = &mut temperature.opt {
                opt.load_state(ALPHA_ADAM, tensors)?;
            }
        }
        Ok(())
    }

    /// [`Agent::training_state`](crate::Agent::training_state): the replay buffer when
    /// `include_replay`, the schedule's counters and the metric sums.
    pub(super) fn schedule_state(&self, include_replay: bool) -> Vec<(String, Tensor)> {
        let mut state =
            if include_replay { self.core.replay.state_tensors(REPLAY) } else { Vec::new() };
        state.push((ENV_STEPS.to_owned(), counter_tensor(self.core.env_steps)));
        state.push((UPDATES.to_owned(), counter_tensor(self.core.updates)));
        state.push((
            STEPS_SINCE_METRICS.to_owned(),
            counter_tensor(self.core.steps_since_metrics as u64),
        ));
        state.push((UPDATE_CREDIT.to_owned(), Tensor::from_slice(&[self.core.update_credit])));
        state.extend(self.core.metrics.state());
        if let Some(pink) = &self.core.pink {
            state.extend(pink.state());
        }
        state
    }

    /// [`Agent::load_training_state`](crate::Agent::load_training_state), checking everything
    /// before changing anything.
    pub(super) fn load_schedule_state(
        &mut self,
        tensors: &[(String, Tensor)],
    ) -> Result<(), AgentError> {
        let (replay_prefix, metrics_prefix) = (format!("{REPLAY}/"), format!("{METRICS}/"));
        let counters = [ENV_STEPS, UPDATES, STEPS_SINCE_METRICS];
        reject_foreign(NAME, "training-state", tensors, |n| {
            n.starts_with(&replay_prefix)
                || n.starts_with(&metrics_prefix)
                || counters.contains(&n)
                || n == UPDATE_CREDIT
                || (self.core.pink.is_some() && PinkNoise::owns(n))
        })?;
        let [env_steps, updates, since_metrics] = [
            counter(tensors, ENV_STEPS)?,
            counter(tensors, UPDATES)?,
            counter(tensors, STEPS_SINCE_METRICS)?,
        ];
        let credit = find(tensors, UPDATE_CREDIT, Kind::Double, &[1])?.f_double_value(&[0])?;
        if !(0.0..1.0).contains(&credit) {
            return Err(AgentError::Invalid(format!(
                "training-state '{UPDATE_CREDIT}' must be in [0, 1), got {credit}"
            )));
        }
        let metrics = MetricSums::from_state(tensors)?;
        // Checked before anything changes: a pink generator loads into a copy first.
        let pink = match &self.core.pink {
            Some(current) => {
                let mut pink = current.clone();
                pink.load_state(tensors)?;
                Some(pink)
            }
            None => None,
        };
        self.core.replay.load_state_tensors(REPLAY, tensors)?;
        self.core.pink = pink;
        self.core.metrics = metrics;
        self.core.env_steps = env_steps;
        self.core.updates = updates;
        self.core.steps_since_metrics = since_metrics as usize;
        self.core.update_credit = credit;
        Ok(())
    }
}

/// Running sums of the metrics of the updates since the last report.
#[derive(Debug, Default)]
pub(super) struct MetricSums {
    pub(super) sums: Vec<(&'static str, f64, u32)>,
}

impl MetricSums {
    /// Adds one update's `value` of `tag`.
    pub(super) fn add(&mut self, tag: &'static str, value: f64) {
        match self.sums.iter_mut().find(|(t, _, _)| *t == tag) {
            Some((_, sum, count)) => {
                *sum += value;
                *count += 1;
            }
            None => self.sums.push((tag, value, 1)),
        }
    }

    /// Whether `tag` was recorded since the last [`MetricSums::take_means`].
    pub(super) fn contains(&self, tag: &str) -> bool {
        self.sums.iter().any(|(t, _, _)| *t == tag)
    }

    /// The means, emptying the sums; `None` when nothing was recorded.
    pub(super) fn take_means(&mut self) -> Option<Metrics> {
        if self.sums.is_empty() {
            return None;
        }
        Some(self.sums.drain(..).map(|(tag, sum, count)| (tag, sum / f64::from(count))).collect())
    }

    /// The sums as `metrics/{position}/{tag}` = `Double [sum, count]`.
    fn state(&self) -> Vec<(String, Tensor)> {
        let sums = self.sums.iter().enumerate();
        sums.map(|(i, (tag, sum, count))| {
            (format!("{METRICS}/{i:02}/{tag}"), Tensor::from_slice(&[*sum, f64::from(*count)]))
        })
        .collect()
    }

    /// The sums saved by [`MetricSums::state`] among `tensors`.
    fn from_state(tensors: &[(String, Tensor)]) -> Result<Self, AgentError> {
        let prefix = format!("{METRICS}/");
        let mut sums = Vec::new();
        for (name, _) in tensors {
            let Some(rest) = name.strip_prefix(&prefix) else { continue };
            let invalid =
                || AgentError::Invalid(format!("training-state tensor '{name}' is invalid"));
            let (position, tag) = rest.split_once('/').ok_or_else(invalid)?;
            let position: usize = position.parse().map_err(|_| invalid())?;
            let tag = METRIC_TAGS.iter().find(|t| **t == tag).ok_or_else(invalid)?;
            let values = find(tensors, name, Kind::Double, &[2])?;
            let (sum, count) = (values.f_double_value(&[0])?, values.f_double_value(&[1])?);
            if !sum.is_finite() || !(1.0..=f64::from(u32::MAX)).contains(&count) {
                return Err(invalid());
            }
            sums.push((position, (*tag, sum, count as u32)));
        }
        sums.sort_by_key(|(position, _)| *position);
        Ok(Self { sums: sums.into_iter().map(|(_, s)| s).collect() })
    }
}
