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
}

impl ActionBuf {
    /// The action borrowed for [`crate::Env::step`].
    pub fn as_action(&self) -> Action<'_> {
        match self {
            ActionBuf::Discrete(a) => Action::Discrete(*a),
            ActionBuf::Continuous(x) => Action::Continuous(x),
        }
    }

    /// Whether the action is an element of `space` (a Box action with a NaN is not).
    pub fn is_in(&self, space: &Space) -> bool {
        match (self, space) {
            (ActionBuf::Discrete(a), Space::Discrete(n)) => a < n,
            (ActionBuf::Continuous(x), Space::Box(b)) => {
                x.len() == b.dim()
                    && x.iter().zip(b.low.iter().zip(&b.high)).all(|(v, (l, h))| l <= v && v <= h)
            }
            _ => false,
        }
    }
}

impl From<Action<'_>> for ActionBuf {
    fn from(action: Action<'_>) -> Self {
        match action {
            Action::Discrete(a) => ActionBuf::Discrete(a),
            Action::Continuous(x) => ActionBuf::Continuous(x.to_vec()),
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
}
