//! # rlpg-kernel
//!
//! The plain-Rust arithmetic that rlpg trains with on the CPU and deploys with: dense layers
//! and MLPs read straight from a flat parameter buffer, their forward pass and their
//! hand-derived backward pass ([`mlp`]), the hidden-layer [`Activation`]s, the matrix product
//! they are built on ([`gemm`]), vectorizable elementary functions ([`math`]), loops compiled
//! for the CPU's widest vectors ([`simd`]), and the action heads' arithmetic for acting
//! ([`heads`]: greedy actions, probabilities, samples from given noise).
//!
//! **Owns:** numerics on plain `f32` slices, nothing else. One text serves two users: the CPU
//! kernel of `rlpg-agents` (where these passes are one of two backends an update can run on)
//! and `rlpg-policy` (which acts with an exported policy), so a deployed policy computes its
//! actions with exactly the code it was trained with.
//!
//! **Must never depend on:** tch or libtorch, `rlpg-envs`, `rlpg-agents`, files or the
//! terminal. Its only dependencies are `matrixmultiply` (the matrix product) and `serde` (so
//! settings and manifests can name an [`Activation`]).
#![deny(missing_docs)]

mod activation;
pub mod gemm;
pub mod heads;
pub mod math;
pub mod mlp;
pub mod simd;

pub use activation::Activation;
pub use mlp::{DenseMlp, LayerSpec, LayoutError, Segment, Trace};
