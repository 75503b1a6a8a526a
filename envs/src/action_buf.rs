//! [`ActionBuf`]: one owned action, for code that keeps or returns actions (a loaded policy)
//! rather than passing them straight to [`crate::Env::step`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::{Action, Space};

/// One action that owns its values: what a trained policy returns, in the environment's action
/// space exactly as training stepped the environment. [`ActionBuf::as_action`] borrows it as the
/// [`Action`] that [`crate::Env::step`] takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ActionBuf {
    /// An element of a [`Space::Discrete`].
    Discrete(usize),
    /// An element of a [`Space::Box`].
    Continuous(Vec<f32>),
    /// An element of a [`Space::MultiDiscrete`]: one value per component.
    MultiDiscrete(Vec<usize>),
    /// An element of a [`Space::MultiBinary`]: one flag per value.
    MultiBinary(Vec<bool>),
}

impl ActionBuf {
    /// The action borrowed for [`crate::Env::step`].
    pub fn as_action(&self) -> Action<'_> {
        match self {
            ActionBuf::Discrete(a) => Action::Discrete(*a),
            ActionBuf::Continuous(x) => Action::Continuous(x),
            ActionBuf::MultiDiscrete(a) => Action::MultiDiscrete(a),
            ActionBuf::MultiBinary(a) => Action::MultiBinary(a),
        }
    }

    /// Whether the action is an element of `space` (a Box action with a NaN is not).
    pub fn is_in(&self, space: &Space) -> bool {
        space.contains(self.as_action())
    }
}

impl From<Action<'_>> for ActionBuf {
    fn from(action: Action<'_>) -> Self {
        match action {
            Action::Discrete(a) => ActionBuf::Discrete(a),
            Action::Continuous(x) => ActionBuf::Continuous(x.to_vec()),
            Action::MultiDiscrete(a) => ActionBuf::MultiDiscrete(a.to_vec()),
            Action::MultiBinary(a) => ActionBuf::MultiBinary(a.to_vec()),
        }
    }
}

impl fmt::Display for ActionBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_action().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxSpace;

    #[test]
    fn an_owned_action_borrows_back_as_the_same_action_and_checks_its_space() {
        let x = [0.5f32, -2.0];
        let owned = ActionBuf::from(Action::Continuous(&x));
        assert_eq!(owned.as_action(), Action::Continuous(&x));
        let space = Space::Box(BoxSpace::uniform(2, -2.0, 2.0));
        assert!(owned.is_in(&space));
        assert!(!ActionBuf::Continuous(vec![0.5, -2.5]).is_in(&space), "-2.5 is below -2");
        assert!(!ActionBuf::Continuous(vec![f32::NAN, 0.0]).is_in(&space), "NaN is in no box");
        assert!(ActionBuf::Discrete(1).is_in(&Space::Discrete(2)));
        assert!(!ActionBuf::Discrete(2).is_in(&Space::Discrete(2)));
        assert!(!ActionBuf::Discrete(0).is_in(&space), "a discrete action is not in a box");
        assert_eq!(ActionBuf::Discrete(3).to_string(), "3");
    }

    #[test]
    fn multi_part_actions_check_every_component_and_their_count() {
        let space = Space::MultiDiscrete(vec![4, 2, 3]);
        let owned = ActionBuf::from(Action::MultiDiscrete(&[3, 1, 0]));
        assert!(owned.is_in(&space));
        assert_eq!(owned.to_string(), "[3, 1, 0]");
        assert!(!ActionBuf::MultiDiscrete(vec![3, 2, 0]).is_in(&space), "2 is past nvec[1] = 2");
        assert!(!ActionBuf::MultiDiscrete(vec![3, 1]).is_in(&space), "one component missing");
        assert!(!ActionBuf::Discrete(0).is_in(&space), "a Discrete action is not multi-discrete");
        let binary = Space::MultiBinary(3);
        let flags = ActionBuf::MultiBinary(vec![true, false, true]);
        assert!(flags.is_in(&binary));
        assert_eq!(flags.to_string(), "[1, 0, 1]", "printed as Gymnasium prints a sample");
        assert!(!ActionBuf::MultiBinary(vec![true]).is_in(&binary), "one value, not three");
        assert!(!ActionBuf::MultiDiscrete(vec![1, 0, 1]).is_in(&binary));
    }
}
