//! Wrappers: environments that wrap another [`crate::Env`] and change one aspect of it.

/// The [`crate::Env`] methods a wrapper passes through to its inner env (`self.env`) unchanged:
/// what the env says of itself (it clips actions, runs Python, masks actions, reports infos) and
/// the masks and infos of its current state. One list, so that a new such method is forwarded
/// by every wrapper.
macro_rules! forward_env_queries {
    () => {
        fn clips_actions(&self) -> bool {
            self.env.clips_actions()
        }

        fn runs_python(&self) -> bool {
            self.env.runs_python()
        }

        fn masks_actions(&self) -> bool {
            self.env.masks_actions()
        }

        fn action_mask(&self, mask: &mut [bool]) -> Result<(), crate::EnvError> {
            self.env.action_mask(mask)
        }

        fn info_keys(&self) -> &[crate::InfoKey] {
            self.env.info_keys()
        }

        fn step_infos(&self, values: &mut [f64]) {
            self.env.step_infos(values)
        }

        fn render(&self) -> Result<crate::Frame, crate::EnvError> {
            self.env.render()
        }
    };
}

pub(crate) mod episode_statistics;
pub(crate) mod normalize;
pub(crate) mod time_limit;
