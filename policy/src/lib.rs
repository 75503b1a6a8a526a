//! # rlpg-policy
//!
//! A trained rlpg policy outside rlpg: load the export that `rlpg export` writes
//! (`policy.json` + `policy.safetensors`) and act, in plain Rust.
//!
//! ```no_run
//! let policy = rlpg_policy::Policy::load("exports/cartpole")?;
//! let obs = [0.01, -0.02, 0.03, 0.04]; // raw observation, as the env gives it
//! let action = policy.act(&obs)?; // an rlpg_envs::ActionBuf of the env's action space
//! let probs = policy.distribution(&obs)?; // ActionDistribution::Categorical { probs, .. }
//! let allowed = policy.act_masked(&obs, Some(&[false, true]))?; // as MaskablePPO's predict
//! let drawn = policy.sample(&obs, 7)?; // seeded
//! println!("{action} {allowed} {drawn} {probs:?}");
//! # Ok::<(), rlpg_policy::PolicyError>(())
//! ```
//!
//! **Owns:** the export format ([`Manifest`], documented in [`manifest`]: every head and the
//! action mask), reading and writing export directories ([`Export`]), acting from an export
//! ([`Policy`]: greedy actions, seeded samples and distributions, each under an optional action
//! mask) and the ONNX graph of the same policy ([`onnx`]), written by a small protobuf encoder of
//! its own.
//!
//! **Must never depend on:** tch, libtorch or the `rlpg` crate. Its rlpg dependencies are
//! `rlpg-envs`, for the action space and the owned action type [`ActionBuf`], and
//! `rlpg-kernel`, the plain-Rust network and head arithmetic rlpg trains with; an application
//! that only loads an export and acts stays small (a stripped release binary of
//! `examples/act.rs` is about a megabyte).
#![deny(missing_docs)]

mod export;
mod head;
pub mod manifest;
pub mod onnx;
mod policy;

use std::path::PathBuf;

pub use export::{Export, MANIFEST_FILE, NamedTensor, ONNX_FILE, TENSORS_FILE, parse_manifest};
pub use head::ActionDistribution;
pub use manifest::Manifest;
pub use policy::Policy;
pub use rlpg_envs::ActionBuf;

/// Why an export could not be read or written, or a policy could not act. Messages are one
/// line and name the file or the expected length.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `policy.json` is not a valid manifest.
    #[error("{}: invalid policy manifest: {what}", path.display())]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// `policy.json` has a version this crate does not read.
    #[error(
        "{}: policy manifest version {found} is not supported; this rlpg-policy reads versions {} to {}{}",
        path.display(),
        manifest::OLDEST_VERSION,
        manifest::VERSION,
        if *newer { " (the export is newer: update rlpg-policy)" } else { "" }
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found (as written, or `missing`).
        found: String,
        /// Whether it is a later version than this crate knows.
        newer: bool,
    },
    /// `policy.safetensors` is damaged or does not match the manifest.
    #[error("{}: {what}", path.display())]
    Tensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// An action mask that cannot be used: of the wrong length, for a space without masks, or
    /// allowing no choice for some part of the action.
    #[error("{}{what}", row.map_or(String::new(), |r| format!("mask of row {r}: ")))]
    Mask {
        /// The row of a batch whose mask is wrong (`None` for one observation, or for the
        /// length of a whole batch).
        row: Option<usize>,
        /// What is wrong (names the component and quotes its flags).
        what: String,
    },
    /// An observation (or batch) of the wrong length was passed to `act`.
    #[error("{}", if *batch {
        format!("a batch of observations has {got} values, not a whole number of observations of {expected}")
    } else {
        format!("observation has {got} values, the policy expects {expected}")
    })]
    ObservationLength {
        /// Floats per observation.
        expected: usize,
        /// Floats given.
        got: usize,
        /// Whether a batch was given.
        batch: bool,
    },
}
