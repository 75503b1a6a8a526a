//! [`Override`]: one raw `--set KEY=VALUE` argument, the "low" side of the raw/resolved split.

use std::fmt;
use std::str::FromStr;

use super::ConfigError;

/// One raw `--set KEY=VALUE` argument: a dotted key path and a TOML value, checked for syntax
/// only (whether the key exists is checked when it is applied, by [`Config::load`](super::Config::load)).
///
/// The value is read as a TOML value, so `true`, `3e-4`, `"text"` and `[64, 64]` mean what they
/// mean in a file; text that is not a TOML value is taken as a string, so
/// `env=Pendulum-v1` works without quotes.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub(super) key: String,
    pub(super) value: toml::Value,
    pub(super) arg: String,
}

impl Override {
    /// Parses `KEY=VALUE`. Errors if there is no `=` or the key is not a dotted path of bare
    /// TOML keys (letters, digits, `_`, `-`).
    pub fn parse(arg: &str) -> Result<Self, ConfigError> {
        let bad = |message: String| ConfigError::BadOverride { arg: arg.to_owned(), message };
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(bad("expected KEY=VALUE, e.g. reinforce.learning_rate=3e-4".to_owned()));
        };
        let key = key.trim();
        let valid_segment = |s: &str| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !key.split('.').all(valid_segment) {
            return Err(bad(format!(
                "`{key}` is not a dotted key path like `total_timesteps` or `reinforce.gamma`"
            )));
        }
        let raw = raw.trim();
        let value =
            raw.parse::<toml::Value>().unwrap_or_else(|_| toml::Value::String(raw.to_owned()));
        Ok(Self { key: key.to_owned(), value, arg: arg.to_owned() })
    }

    /// The dotted key path, e.g. `reinforce.learning_rate`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value to set.
    pub fn value(&self) -> &toml::Value {
        &self.value
    }
}

impl FromStr for Override {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(arg: &str) -> Override {
        Override::parse(arg).unwrap_or_else(|e| panic!("`{arg}` should parse: {e}"))
    }

    #[test]
    fn override_values_are_read_as_toml_or_else_as_strings() {
        assert_eq!(ov("normalize_obs=true").value(), &toml::Value::Boolean(true));
        assert_eq!(ov("reinforce.learning_rate=1e-3").value(), &toml::Value::Float(1e-3));
        assert_eq!(ov("env=\"CartPole-v1\"").value(), &toml::Value::String("CartPole-v1".into()));
        assert_eq!(ov("env=Pendulum-v1").value(), &toml::Value::String("Pendulum-v1".into()));
        let hidden = ov("reinforce.hidden=[64, 64]");
        assert_eq!(
            hidden.value(),
            &toml::Value::Array(vec![toml::Value::Integer(64), toml::Value::Integer(64)])
        );
        assert_eq!(hidden.key(), "reinforce.hidden");
        assert_eq!(hidden.to_string(), "reinforce.hidden=[64, 64]");
    }

    #[test]
    fn an_override_without_equals_or_with_a_bad_key_is_rejected() {
        for arg in ["seed", "=3", "reinforce..gamma=1", ".seed=1", "see d=1", "a.b.=1"] {
            let e = Override::parse(arg).expect_err(arg);
            assert!(
                matches!(&e, ConfigError::BadOverride { arg: a, .. } if a == arg),
                "`{arg}` should be a BadOverride, got {e:?}"
            );
        }
    }
}
