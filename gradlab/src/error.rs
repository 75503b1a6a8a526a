//! The lab's one error type.

use std::path::PathBuf;

use tch::TchError;

/// Why the lab could not run or could not write its output.
#[derive(Debug, thiserror::Error)]
pub enum GradlabError {
    /// An option is out of range.
    #[error("invalid gradlab option: {0}")]
    InvalidOption(String),
    /// A libtorch operation failed.
    #[error("libtorch: {0}")]
    Torch(#[from] TchError),
    /// The report could not be serialized.
    #[error("could not serialize the report: {0}")]
    Json(#[from] serde_json::Error),
    /// An estimator refused a problem it was found to support: a bug in the lab.
    #[error("internal error in gradlab: {0}")]
    Internal(String),
    /// The plot could not be drawn or written.
    #[error("{}: {message}", path.display())]
    Plot {
        /// The image file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl GradlabError {
    /// Whether the error is the user's input (exit code 2) rather than a failure while running.
    pub fn is_usage_error(&self) -> bool {
        matches!(self, GradlabError::InvalidOption(_))
    }
}
