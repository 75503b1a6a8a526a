//! Wrappers: environments that wrap another [`crate::Env`] and change one aspect of it.

pub(crate) mod episode_statistics;
pub(crate) mod normalize;
pub(crate) mod time_limit;
