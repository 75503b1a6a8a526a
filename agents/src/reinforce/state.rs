//! What the REINFORCE agent saves: its checkpoint tensors (both networks and both optimizers'
//! state) and its training state (the partial rollout and the update counter), under names old
//! runs were saved with.

use tch::{Kind, Tensor};

use crate::agent::AgentError;
use crate::scaffold::{
    TensorLayout, check_checkpoint, copy_variables, counter, counter_tensor, reject_foreign,
};

use super::agent::{NAME, Reinforce};

/// Checkpoint prefix of the policy optimizer's state.
const POLICY_ADAM: &str = "policy_adam";
/// Checkpoint prefix of the value optimizer's state.
const VALUE_ADAM: &str = "value_adam";
/// Training-state prefix of the partial rollout.
const ROLLOUT: &str = "rollout";
/// Training-state name of the update counter.
const UPDATES: &str = "updates";

impl Reinforce {
    /// Both networks' parameters by checkpoint name (`policy/…`, the log-std included, and
    /// `value/…`), as the live variables.
    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut named = self.core.policy.variables("policy");
        named.extend(self.core.value.variables("value"));
        named
    }

    /// [`Agent::named_tensors`](crate::Agent::named_tensors): copies of both networks and both
    /// optimizers' states, sorted by name.
    pub(super) fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        let mut named: Vec<(String, Tensor)> =
            self.parameters().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
        named.extend(self.core.policy.opt.state(POLICY_ADAM));
        named.extend(self.core.value.opt.state(VALUE_ADAM));
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// [`Agent::load_named_tensors`](crate::Agent::load_named_tensors): checks everything
    /// before copying anything, so a bad checkpoint leaves the agent intact.
    pub(super) fn load_checkpoint_tensors(
        &mut self,
        tensors: &[(String, Tensor)],
    ) -> Result<(), AgentError> {
        let mut layout: Vec<TensorLayout> =
            self.parameters().into_iter().map(|(n, t)| (n, Kind::Float, t.size())).collect();
        layout.extend(self.core.policy.opt.state_layout(POLICY_ADAM));
        layout.extend(self.core.value.opt.state_layout(VALUE_ADAM));
        check_checkpoint(NAME, tensors, &layout)?;
        copy_variables(self.parameters(), tensors)?;
        self.core.policy.opt.load_state(POLICY_ADAM, tensors)?;
        self.core.value.opt.load_state(VALUE_ADAM, tensors)?;
        Ok(())
    }

    /// [`Agent::training_state`](crate::Agent::training_state): the partial rollout and the
    /// update counter.
    pub(super) fn rollout_state(&self) -> Vec<(String, Tensor)> {
        let mut state = self.core.buffer.state_tensors(ROLLOUT);
        state.push((UPDATES.to_owned(), counter_tensor(self.core.updates)));
        state
    }

    /// [`Agent::load_training_state`](crate::Agent::load_training_state), checking everything
    /// before changing anything.
    pub(super) fn load_rollout_state(
        &mut self,
        tensors: &[(String, Tensor)],
    ) -> Result<(), AgentError> {
        let rollout_prefix = format!("{ROLLOUT}/");
        reject_foreign(NAME, "training-state", tensors, |n| {
            n == UPDATES || n.starts_with(&rollout_prefix)
        })?;
        let updates = counter(tensors, UPDATES)?;
        self.core.buffer.load_state_tensors(ROLLOUT, tensors)?;
        self.core.updates = updates;
        Ok(())
    }
}
