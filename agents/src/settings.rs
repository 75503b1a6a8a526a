//! Settings shared by the agents: the activation choice, what a section's settings are checked
//! against ([`SettingsContext`]), the error a rejected setting produces, and the checks each
//! agent's `validate` is built from.
//!
//! Each agent's settings type has one `validate(&self, &SettingsContext)` holding every rule
//! about its settings: their ranges, the rules that depend on `num_envs`, and the ones that
//! depend on the action space. The agent's constructor and the config loader both call it, so
//! a rule is written once.
//!
//! Keys in [`InvalidSetting`] are the field names of the agent's config struct; a caller that
//! nests the config (for example under `agent.`) prefixes them itself.

use std::fmt;

use rlpg_envs::Space;
use serde::{Deserialize, Serialize};

use crate::agent::AgentError;

/// A setting outside its allowed range. Displays as `"<key>: <message>"`, e.g.
/// `"gamma: must be in (0, 1], got 1.5"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSetting {
    /// The offending setting's name, as written in the config.
    pub key: String,
    /// What values are allowed and what was given.
    pub message: String,
}

impl InvalidSetting {
    /// An error for `key` with the explanation `message`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for InvalidSetting {}

impl From<InvalidSetting> for AgentError {
    fn from(e: InvalidSetting) -> Self {
        AgentError::Invalid(e.to_string())
    }
}

/// What an agent's settings are checked against besides their own ranges. A rule whose input
/// is unknown (`None`) is skipped.
#[derive(Clone, Copy, Debug)]
pub struct SettingsContext<'a> {
    /// The number of environments stepped in lockstep. `None` for settings no run will use as
    /// they are (the section of an agent the config did not choose): only their ranges count.
    pub num_envs: Option<usize>,
    /// The environment's action space, which decides the options that apply (e.g. TD3 needs
    /// `Box` actions); `None` when the environment is not known yet.
    pub action_space: Option<&'a Space>,
    /// How messages name the environment, e.g. `"CartPole-v1"` ("but CartPole-v1 has actions
    /// Discrete(2)").
    pub env: &'a str,
}

impl SettingsContext<'static> {
    /// Only the settings' own ranges: no run, no environment.
    pub const RANGES_ONLY: Self =
        Self { num_envs: None, action_space: None, env: "the environment" };
}

impl<'a> SettingsContext<'a> {
    /// The context of an agent built for `num_envs` environments with `action_space`, as its
    /// constructor sees it.
    pub fn run(num_envs: usize, action_space: &'a Space) -> Self {
        Self { num_envs: Some(num_envs), action_space: Some(action_space), env: "the environment" }
    }
}

/// The kind of action space an option applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActionKind {
    /// `Discrete(n)` actions.
    Discrete,
    /// `Box` actions.
    Continuous,
}

/// An option that applies to one kind of action space only, and its value in the settings.
pub(crate) struct ActionSpecific {
    /// The setting's key.
    pub(crate) key: &'static str,
    /// The actions it applies to.
    pub(crate) applies_to: ActionKind,
    /// Whether the settings give it: its value differs from the default.
    pub(crate) given: bool,
    /// The value, as the config would show it.
    pub(crate) value: String,
}

impl ActionSpecific {
    /// `key`, applying to `applies_to` actions, with `value` (given when it is not `default`).
    pub(crate) fn new<T: PartialEq + fmt::Display>(
        key: &'static str,
        applies_to: ActionKind,
        value: &T,
        default: &T,
    ) -> Self {
        Self { key, applies_to, given: value != default, value: value.to_string() }
    }
}

/// The first option among `options` given for the other kind of action space than `ctx`'s
/// (when the space is known) is an error naming the environment's space.
pub(crate) fn check_action_specific(
    options: &[ActionSpecific],
    ctx: &SettingsContext<'_>,
) -> Result<(), InvalidSetting> {
    let Some(action_space) = ctx.action_space else { return Ok(()) };
    let (other, kind) = match action_space {
        Space::Box(_) => (ActionKind::Discrete, "discrete"),
        _ => (ActionKind::Continuous, "continuous (Box)"),
    };
    match options.iter().find(|o| o.applies_to == other && o.given) {
        Some(option) => Err(InvalidSetting::new(
            option.key,
            format!(
                "is set to {}, which applies only to {kind} actions, but {} has actions \
                 {action_space}; remove it",
                option.value, ctx.env
            ),
        )),
        None => Ok(()),
    }
}

/// How a network's linear layers start. Written in lowercase in configs (`"pytorch"`,
/// `"kaiming_uniform"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightInit {
    /// PyTorch's `nn.Linear` default, which Stable-Baselines3's networks start from: weights
    /// and biases uniform in `±1/√fan_in`.
    #[default]
    Pytorch,
    /// Kaiming (He) uniform weights for ReLU, uniform in `±√(6/fan_in)` (√6 times PyTorch's;
    /// tch's own default), biases as PyTorch's. Larger initial outputs: on inputs of a few
    /// units the first actions of a squashed actor start saturated.
    KaimingUniform,
}

impl WeightInit {
    /// The layer initialization of the networks module.
    pub(crate) fn layer_init(self) -> crate::networks::LayerInit {
        match self {
            Self::Pytorch => crate::networks::LayerInit::Pytorch,
            Self::KaimingUniform => crate::networks::LayerInit::KaimingUniform,
        }
    }
}

/// The nonlinearity between hidden layers of a network, written in lowercase in configs
/// (`"tanh"`, `"relu"`, `"elu"`, `"leaky_relu"`, `"silu"`). Defined by `rlpg-kernel`, whose
/// plain-Rust passes compute it; its libtorch face is [`crate::networks::activation_tensor`].
pub use rlpg_kernel::Activation;

/// `value` must be finite and strictly positive (learning rates and the like).
pub(crate) fn check_positive(key: &str, value: f64) -> Result<(), InvalidSetting> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(InvalidSetting::new(key, format!("must be a finite number > 0, got {value}")))
    }
}

/// `value` must be finite and non-negative (coefficients where 0 switches a term off).
pub(crate) fn check_non_negative(key: &str, value: f64) -> Result<(), InvalidSetting> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(InvalidSetting::new(key, format!("must be a finite number >= 0, got {value}")))
    }
}

/// `value` must be finite (no range restriction otherwise).
pub(crate) fn check_finite(key: &str, value: f64) -> Result<(), InvalidSetting> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(InvalidSetting::new(key, format!("must be a finite number, got {value}")))
    }
}

/// `value` must lie in the half-open interval (0, 1] (discount factors).
pub(crate) fn check_discount(key: &str, value: f64) -> Result<(), InvalidSetting> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(InvalidSetting::new(key, format!("must be in (0, 1], got {value}")))
    }
}

/// `value` must lie in the closed interval [0, 1] (mixing weights such as GAE's lambda).
pub(crate) fn check_unit_interval(key: &str, value: f64) -> Result<(), InvalidSetting> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(InvalidSetting::new(key, format!("must be in [0, 1], got {value}")))
    }
}

/// `value` must be a count of at least 1.
pub(crate) fn check_at_least_one(key: &str, value: usize) -> Result<(), InvalidSetting> {
    if value >= 1 {
        Ok(())
    } else {
        Err(InvalidSetting::new(key, format!("must be an integer >= 1, got {value}")))
    }
}

/// Every hidden layer needs at least one unit; an empty list (a linear model) is allowed.
pub(crate) fn check_hidden_sizes(key: &str, sizes: &[usize]) -> Result<(), InvalidSetting> {
    match sizes.iter().position(|&s| s == 0) {
        None => Ok(()),
        Some(i) => Err(InvalidSetting::new(
            key,
            format!("every hidden layer size must be >= 1, got 0 at index {i} of {sizes:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn invalid_setting_displays_key_then_message() {
        let e = check_discount("gamma", 1.5).unwrap_err();
        assert_eq!(e.to_string(), "gamma: must be in (0, 1], got 1.5");
    }

    #[test]
    fn range_checks_accept_bounds_they_include_and_reject_the_others() {
        assert!(check_discount("g", 1.0).is_ok(), "1 is a valid discount");
        assert!(check_discount("g", 0.0).is_err(), "0 is not a valid discount");
        assert!(check_unit_interval("l", 0.0).is_ok() && check_unit_interval("l", 1.0).is_ok());
        assert!(check_unit_interval("l", f64::NAN).is_err(), "NaN must be rejected");
        assert!(check_positive("lr", 0.0).is_err() && check_positive("lr", f64::INFINITY).is_err());
        assert!(check_non_negative("c", 0.0).is_ok() && check_non_negative("c", -1e-9).is_err());
        assert!(check_at_least_one("n", 0).is_err() && check_at_least_one("n", 1).is_ok());
        assert!(check_finite("x", f64::NEG_INFINITY).is_err());
        let e = check_hidden_sizes("hidden", &[64, 0]).unwrap_err();
        assert!(e.message.contains("index 1"), "message should locate the bad size: {e}");
    }

    #[test]
    fn tanh_takes_the_same_values_and_gradients_on_both_routes() {
        let x = Tensor::linspace(-12.0, 12.0, 8192, (tch::Kind::Float, tch::Device::Cpu))
            .set_requires_grad(true);
        let fast = crate::networks::activation_tensor(Activation::Tanh, &x);
        let exact = x.tanh();
        let max_diff = (&fast - &exact).abs().max().double_value(&[]);
        assert!(max_diff < 1e-6, "sigmoid-route tanh differs by {max_diff}");
        let g_fast = Tensor::run_backward(&[fast.sum(None)], &[&x], true, false).remove(0);
        let g_exact = Tensor::run_backward(&[exact.sum(None)], &[&x], true, false).remove(0);
        let max_diff = (g_fast - g_exact).abs().max().double_value(&[]);
        assert!(max_diff < 1e-6, "sigmoid-route tanh gradient differs by {max_diff}");
    }

    #[test]
    fn activation_names_are_lowercase_in_serialized_form() {
        let all = [
            Activation::Tanh,
            Activation::Relu,
            Activation::Elu,
            Activation::LeakyRelu,
            Activation::Silu,
        ];
        let names: Vec<String> = all.iter().map(|a| serde_json::to_string(a).unwrap()).collect();
        assert_eq!(names, [r#""tanh""#, r#""relu""#, r#""elu""#, r#""leaky_relu""#, r#""silu""#]);
        let parsed: Activation = serde_json::from_str(r#""leaky_relu""#).unwrap();
        assert_eq!(parsed, Activation::LeakyRelu);
    }
}
