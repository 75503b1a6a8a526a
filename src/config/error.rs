//! [`ConfigError`], the one error type of config loading, and the [`Location`] it points at.

use std::fmt;
use std::path::PathBuf;

/// Where a setting was written, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A position in a config file, 1-based; the column counts characters.
    File {
        /// The file as it was named.
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column, from 1, in characters.
        column: usize,
    },
    /// A config file as a whole (for something missing from it).
    WholeFile {
        /// The file as it was named.
        path: PathBuf,
    },
    /// A `--set` argument.
    Override {
        /// The argument as given, e.g. `reinforce.gamma=1.5`.
        arg: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Location::WholeFile { path } => write!(f, "{}", path.display()),
            Location::Override { arg } => write!(f, "--set {arg}"),
        }
    }
}

/// Why a config could not be loaded or written. Its message is one line, starting with the
/// [`Location`] of the problem when it has one. The CLI exits with code 2 on these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file as it was named.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file (or a `--set` value) is not valid TOML.
    #[error("{location}: invalid TOML: {message}")]
    Syntax {
        /// Where the parser stopped.
        location: Location,
        /// What the parser expected.
        message: String,
    },
    /// A key that no setting has.
    #[error("{}unknown key `{}`{}{}", prefix(.location), last_segment(.key), section_of(.key), did_you_mean(.suggestion))]
    UnknownKey {
        /// Where the key was written.
        location: Option<Location>,
        /// Its full dotted path, e.g. `reinforce.learning_rat`.
        key: String,
        /// The nearest valid key: a sibling's name, or a full path if the key belongs elsewhere.
        suggestion: Option<String>,
    },
    /// A key without a default is not set.
    #[error("{}missing required key `{key}`: {hint}", prefix(.location))]
    MissingKey {
        /// The file it is missing from, if any.
        location: Option<Location>,
        /// The missing key.
        key: String,
        /// What it should look like.
        hint: String,
    },
    /// A value of the wrong type, out of range, or contradicting the environment.
    #[error("{}{key}: {message}", prefix(.location))]
    Invalid {
        /// Where the value was written, if it was.
        location: Option<Location>,
        /// Full dotted key path, e.g. `reinforce.gamma` or `reinforce.hidden[1]`.
        key: String,
        /// What is allowed and what was given.
        message: String,
    },
    /// A `--set` argument that is not `KEY=VALUE` with a dotted key path, or that names a
    /// section instead of a setting.
    #[error("--set {arg}: {message}")]
    BadOverride {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        message: String,
    },
    /// The config cannot be written as TOML that reads back identically.
    #[error("cannot write the config as TOML: {message}")]
    Unrepresentable {
        /// Why.
        message: String,
    },
}

impl ConfigError {
    /// The full key path this error is about, if it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::MissingKey { key, .. }
            | ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The location this error points at, if any.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Syntax { location, .. } => Some(location),
            ConfigError::UnknownKey { location, .. }
            | ConfigError::MissingKey { location, .. }
            | ConfigError::Invalid { location, .. } => location.as_ref(),
            _ => None,
        }
    }
}

fn prefix(location: &Option<Location>) -> String {
    location.as_ref().map_or_else(String::new, |l| format!("{l}: "))
}

pub(super) fn last_segment(key: &str) -> &str {
    key.rsplit_once('.').map_or(key, |(_, last)| last)
}

fn section_of(key: &str) -> String {
    key.rsplit_once('.').map_or_else(String::new, |(section, _)| format!(" in [{section}]"))
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map_or_else(String::new, |s| format!("; did you mean `{s}`?"))
}

/// Multi-line parser messages joined into one line.
pub(super) fn one_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}
