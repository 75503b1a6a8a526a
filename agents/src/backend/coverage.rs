//! What the CPU kernel computes, setting by setting: one table that both decides which runs
//! `backend = "auto"` gives the kernel ([`refusal`]) and drives the test that the kernel's
//! gradients and optimizer moments equal libtorch's, tensor by tensor, for every value listed
//! here (`agents/tests/backends.rs`). A setting missing from the table is refused (and a unit
//! test fails), so a new option must be classified before it ships; the two cannot drift.
//!
//! Every option of both agents is covered today: each update is written once over the
//! backends' primitives, so an option is a different composition of the same primitives, not
//! a second implementation. What the kernel does not run is another device (it is CPU-only).

/// The agent a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentKind {
    /// The REINFORCE agent's `[reinforce]` settings.
    Reinforce,
    /// The pathwise agent's `[pathwise]` settings.
    Pathwise,
}

/// How the kernel covers one setting. Values are JSON literals, as the settings serialize.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cover {
    /// Every value: a number or size that changes no code path. The equivalence test runs each
    /// of the listed values.
    Any(&'static [&'static str]),
    /// Exactly these values (each one tested); any other is refused.
    Only(&'static [&'static str]),
}

/// One setting of one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// The agent.
    pub agent: AgentKind,
    /// The setting's key in its section.
    pub key: &'static str,
    /// What the kernel covers.
    pub cover: Cover,
}

const ACTIVATIONS: &[&str] = &["\"tanh\"", "\"relu\"", "\"elu\"", "\"leaky_relu\"", "\"silu\""];
const BOOLS: &[&str] = &["false", "true"];
const BACKENDS: &[&str] = &["\"auto\"", "\"libtorch\"", "\"kernel\""];

const fn row(agent: AgentKind, key: &'static str, cover: Cover) -> Row {
    Row { agent, key, cover }
}

use AgentKind::{Pathwise, Reinforce};
use Cover::{Any, Only};

/// The table: every setting of both agents.
pub const TABLE: &[Row] = &[
    row(Reinforce, "learning_rate", Any(&["0.01"])),
    row(Reinforce, "value_learning_rate", Any(&["0.02"])),
    row(Reinforce, "gamma", Any(&["0.9"])),
    row(Reinforce, "gae_lambda", Any(&["0.8", "1.0"])),
    row(Reinforce, "n_steps", Any(&["5"])),
    row(Reinforce, "normalize_advantages", Only(BOOLS)),
    row(Reinforce, "ent_coef", Any(&["0.0", "0.05"])),
    row(Reinforce, "max_grad_norm", Any(&["0.0", "0.5", "0.001"])),
    row(Reinforce, "n_epochs", Any(&["1", "3"])),
    row(Reinforce, "batch_size", Any(&["null", "4"])),
    row(Reinforce, "clip_range", Any(&["null", "0.2", "0.02"])),
    row(Reinforce, "clip_range_vf", Any(&["null", "0.05"])),
    row(Reinforce, "target_kl", Any(&["null", "0.001"])),
    row(Reinforce, "value_epochs", Any(&["1", "3"])),
    row(Reinforce, "value_minibatches", Any(&["1", "3"])),
    row(Reinforce, "hidden", Any(&["[]", "[16]", "[16, 12]"])),
    row(Reinforce, "activation", Only(ACTIVATIONS)),
    row(Reinforce, "orthogonal_init", Only(BOOLS)),
    row(Reinforce, "log_std_init", Any(&["-0.5"])),
    row(Reinforce, "state_dependent_std", Only(BOOLS)),
    row(Reinforce, "grad_diagnostics", Only(BOOLS)),
    row(Reinforce, "backend", Only(BACKENDS)),
    row(Pathwise, "estimator", Only(&["\"sac\"", "\"td3\""])),
    row(Pathwise, "actor_learning_rate", Any(&["0.01"])),
    row(Pathwise, "critic_learning_rate", Any(&["0.02"])),
    row(Pathwise, "alpha_learning_rate", Any(&["0.05"])),
    row(Pathwise, "gamma", Any(&["0.9"])),
    row(Pathwise, "tau", Any(&["0.5", "1.0"])),
    row(Pathwise, "batch_size", Any(&["7"])),
    row(Pathwise, "buffer_size", Any(&["40"])),
    row(Pathwise, "learning_starts", Any(&["0", "10"])),
    row(Pathwise, "updates_per_step", Any(&["2.0", "0.5"])),
    row(Pathwise, "actor_hidden", Any(&["[]", "[16]"])),
    row(Pathwise, "critic_hidden", Any(&["[16]", "[16, 12, 8]"])),
    row(Pathwise, "activation", Only(ACTIVATIONS)),
    row(Pathwise, "layer_init", Only(&["\"pytorch\"", "\"kaiming_uniform\""])),
    row(Pathwise, "alpha", Any(&["0.3"])),
    row(Pathwise, "autotune_alpha", Only(BOOLS)),
    row(Pathwise, "target_entropy", Any(&["null", "-0.5"])),
    row(Pathwise, "exploration_noise", Any(&["0.3"])),
    row(Pathwise, "policy_noise", Any(&["0.4"])),
    row(Pathwise, "noise_clip", Any(&["0.1"])),
    row(Pathwise, "exploration", Only(&["\"gaussian\"", "\"pink\""])),
    row(Pathwise, "policy_delay", Any(&["1", "2"])),
    row(Pathwise, "gumbel_temperature", Any(&["0.7"])),
    row(Pathwise, "straight_through", Only(BOOLS)),
    row(Pathwise, "expected_discrete_value", Only(BOOLS)),
    row(Pathwise, "discrete_critic", Only(&["\"per_action\"", "\"concatenated\""])),
    row(Pathwise, "logit_bound", Any(&["0.0", "2.0"])),
    row(Pathwise, "max_alpha", Any(&["0.0", "1.01"])),
    row(Pathwise, "max_grad_norm", Any(&["0.0", "0.001"])),
    row(Pathwise, "metrics_every", Any(&["1"])),
    row(Pathwise, "grad_diagnostics", Only(BOOLS)),
    row(Pathwise, "backend", Only(BACKENDS)),
];

/// The rows of `agent`.
pub fn rows(agent: AgentKind) -> impl Iterator<Item = &'static Row> {
    TABLE.iter().filter(move |r| r.agent == agent)
}

/// Why the kernel cannot run `agent` with `settings` (its section serialized to a JSON object),
/// naming the first setting it does not cover; `None` when it covers them all.
pub fn refusal(agent: AgentKind, settings: &serde_json::Value) -> Option<String> {
    let Some(object) = settings.as_object() else {
        return Some("its settings are not a table".to_owned());
    };
    for (key, value) in object {
        let literal = value.to_string();
        match rows(agent).find(|r| r.key == key) {
            None => {
                return Some(format!(
                    "setting '{key}' is not in the kernel's coverage table (a bug: every \
                     setting must be classified)"
                ));
            }
            Some(Row { cover: Cover::Only(values), .. }) => {
                let covered = values.iter().any(|v| {
                    serde_json::from_str::<serde_json::Value>(v).is_ok_and(|v| &v == value)
                });
                if !covered {
                    return Some(format!("it does not compute {key} = {literal}"));
                }
            }
            Some(Row { cover: Cover::Any(_), .. }) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PathwiseConfig, ReinforceConfig};

    fn keys(value: serde_json::Value) -> Vec<String> {
        value.as_object().expect("a table").keys().cloned().collect()
    }

    #[test]
    fn every_setting_of_both_agents_is_in_the_table_and_nothing_else() {
        let cases = [
            (Reinforce, serde_json::to_value(ReinforceConfig::default())),
            (Pathwise, serde_json::to_value(PathwiseConfig::default())),
        ];
        for (agent, settings) in cases {
            let settings = settings.expect("settings serialize");
            let mut want = keys(settings.clone());
            let mut have: Vec<String> = rows(agent).map(|r| r.key.to_owned()).collect();
            want.sort();
            have.sort();
            assert_eq!(have, want, "{agent:?}: the table's keys are not the settings' keys");
            assert_eq!(refusal(agent, &settings), None, "{agent:?}: defaults must be covered");
        }
    }

    #[test]
    fn every_listed_value_parses_and_an_unlisted_one_is_refused() {
        for row in TABLE {
            let (Cover::Any(values) | Cover::Only(values)) = row.cover;
            assert!(!values.is_empty(), "{}: no value to test", row.key);
            for v in values {
                assert!(serde_json::from_str::<serde_json::Value>(v).is_ok(), "{}: {v}", row.key);
            }
        }
        let mut settings = serde_json::to_value(ReinforceConfig::default()).expect("serialize");
        settings["activation"] = serde_json::json!("gelu");
        let why = refusal(Reinforce, &settings).expect("gelu is not listed");
        assert!(why.contains("activation = \"gelu\""), "{why}");
        settings["activation"] = serde_json::json!("tanh");
        settings["new_option"] = serde_json::json!(1);
        let why = refusal(Reinforce, &settings).expect("unclassified");
        assert!(why.contains("'new_option'"), "{why}");
    }
}
