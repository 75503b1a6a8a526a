//! Spaces (membership, flat sizes, display) and the wording of errors.

use rlpg_envs::{Action, BoxSpace, EnvError, Space};

#[test]
fn discrete_space_contains_only_its_integers() {
    let s = Space::Discrete(3);
    assert!(s.contains(Action::Discrete(0)) && s.contains(Action::Discrete(2)));
    assert!(!s.contains(Action::Discrete(3)), "3 is outside Discrete(3)");
    assert!(!s.contains(Action::Continuous(&[1.0])), "a continuous action is not discrete");
    assert_eq!(s.flat_dim(), 1);
    assert_eq!(s.to_string(), "Discrete(3)");
}

#[test]
fn box_space_checks_length_bounds_and_nan() {
    let s = Space::Box(BoxSpace::new(vec![-1.0, 0.0], vec![1.0, f32::INFINITY]));
    assert!(s.contains(Action::Continuous(&[-1.0, 1e30])), "bounds are inclusive, high may be inf");
    assert!(!s.contains(Action::Continuous(&[1.5, 0.0])), "1.5 > high");
    assert!(!s.contains(Action::Continuous(&[0.0, -0.1])), "-0.1 < low");
    assert!(!s.contains(Action::Continuous(&[f32::NAN, 0.0])), "NaN is in no box");
    assert!(!s.contains(Action::Continuous(&[0.0])), "wrong length");
    assert!(!s.contains(Action::Discrete(0)), "a discrete action is not continuous");
    assert_eq!(s.flat_dim(), 2);
    assert_eq!(s.to_string(), "Box([-1.0, 0.0], [1.0, inf])");
    assert_eq!(Space::Box(BoxSpace::uniform(3, -2.0, 2.0)).to_string(), "Box(-2, 2, (3,))");
}

#[test]
fn spaces_round_trip_through_json() {
    let s = Space::Box(BoxSpace::new(vec![-1.5, -3.0], vec![1.5, 3.0]));
    let back: Space =
        serde_json::from_str(&serde_json::to_string(&s).expect("serialize")).expect("parse");
    assert_eq!(back, s);
}

#[test]
#[should_panic(expected = "low > high")]
fn a_box_with_low_above_high_is_a_programming_error() {
    let _ = BoxSpace::new(vec![1.0], vec![0.0]);
}

#[test]
fn error_messages_name_the_env_and_the_offending_value() {
    let space = Space::Box(BoxSpace::uniform(1, -2.0, 2.0));
    let e = EnvError::invalid_action("Pendulum-v1", Action::Continuous(&[3.5]), &space);
    assert_eq!(
        e.to_string(),
        "Pendulum-v1: action [3.5] is not in the action space Box(-2, 2, (1,))"
    );
    let e = EnvError::EpisodeOver { env: "CartPole-v1".into() };
    assert!(e.to_string().starts_with("CartPole-v1: step called after the episode ended"), "{e}");
    let e = EnvError::UnknownEnv { id: "Foo".into(), known: vec!["A".into(), "B".into()] };
    assert_eq!(e.to_string(), "unknown environment id 'Foo'; known ids: A, B");
    let e = EnvError::NotReset { env: "X".into() }.in_vec_env(4);
    assert_eq!(e.to_string(), "vector env slot 4: X: step called before reset");
    assert!(std::error::Error::source(&e).is_some(), "the wrapped error must be the source");
}
