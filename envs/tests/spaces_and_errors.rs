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

#[test]
fn multi_discrete_and_multi_binary_spaces_hold_what_gymnasium_holds() {
    let md = Space::MultiDiscrete(vec![4, 2, 3]);
    assert!(md.contains(Action::MultiDiscrete(&[3, 1, 2])));
    assert!(!md.contains(Action::MultiDiscrete(&[4, 1, 2])), "4 is past nvec[0] = 4");
    assert!(!md.contains(Action::MultiDiscrete(&[3, 1])), "one component short");
    assert!(!md.contains(Action::Discrete(0)), "a Discrete action is not multi-discrete");
    assert_eq!((md.flat_dim(), md.mask_len()), (3, 9));
    assert_eq!(md.to_string(), "MultiDiscrete([4, 2, 3])");
    let mb = Space::MultiBinary(3);
    assert!(mb.contains(Action::MultiBinary(&[true, false, true])));
    assert!(!mb.contains(Action::MultiBinary(&[true, false])), "two values, not three");
    assert_eq!((mb.flat_dim(), mb.mask_len()), (3, 6), "one pair of flags per value");
    assert_eq!(mb.to_string(), "MultiBinary(3)");
    // As observations: whole numbers in range, and 0 or 1.
    assert!(md.contains_flat(&[3.0, 0.0, 2.0]));
    assert!(!md.contains_flat(&[3.0, 0.5, 2.0]), "0.5 is not a value");
    assert!(!md.contains_flat(&[3.0, 2.0, 2.0]), "2 is past nvec[1] = 2");
    assert!(mb.contains_flat(&[1.0, 0.0, 1.0]) && !mb.contains_flat(&[1.0, 2.0, 0.0]));
    for space in [md, mb, Space::Discrete(5)] {
        let json = serde_json::to_string(&space).expect("serialise");
        assert_eq!(serde_json::from_str::<Space>(&json).expect("parse"), space, "{json}");
    }
    assert!(Space::MultiDiscrete(vec![3, 0]).problem().is_some_and(|p| p.contains("component 1")));
    assert!(Space::MultiDiscrete(vec![]).problem().is_some());
    assert!(Space::MultiBinary(0).problem().is_some());
    assert_eq!(Space::MultiDiscrete(vec![1]).problem(), None);
}

#[test]
fn a_mask_must_fit_the_space_and_leave_every_part_a_choice() {
    let md = Space::MultiDiscrete(vec![2, 3]);
    assert_eq!(md.mask_problem(&[true, false, false, true, true]), None);
    let short = md.mask_problem(&[true; 4]).expect("4 flags for 5");
    assert!(short.contains("4 flags") && short.contains("needs 5"), "{short}");
    let none = md.mask_problem(&[true, true, false, false, false]).expect("component 1 empty");
    assert!(none.contains("component 1") && none.contains("[1, 1, 0, 0, 0]"), "{none}");
    let discrete = Space::Discrete(3).mask_problem(&[false; 3]).expect("no action allowed");
    assert!(discrete.contains("allows no action"), "{discrete}");
    let binary = Space::MultiBinary(2).mask_problem(&[true, true, false, false]).expect("value 1");
    assert!(binary.contains("value 1"), "{binary}");
    let boxed = Space::Box(BoxSpace::uniform(1, 0.0, 1.0)).mask_problem(&[]).expect("no masks");
    assert!(boxed.contains("no masks"), "{boxed}");

    let mask = [true, false, false, true, true];
    assert!(md.mask_allows(&mask, Action::MultiDiscrete(&[0, 2])));
    assert!(!md.mask_allows(&mask, Action::MultiDiscrete(&[1, 2])), "value 1 of component 0");
    assert!(!md.mask_allows(&mask, Action::MultiDiscrete(&[0, 0])), "value 0 of component 1");
    // MultiBinary pairs: value 0 may be 1 only, value 1 may be either.
    let pairs = [false, true, true, true];
    assert!(Space::MultiBinary(2).mask_allows(&pairs, Action::MultiBinary(&[true, false])));
    assert!(!Space::MultiBinary(2).mask_allows(&pairs, Action::MultiBinary(&[false, false])));
}

#[test]
fn sampling_under_a_mask_draws_every_allowed_action_and_nothing_else() {
    use rand::SeedableRng;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    let md = Space::MultiDiscrete(vec![3, 4]);
    let mask = [false, true, true, true, false, false, true];
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..6000 {
        let a = md.sample(&mut rng, Some(&mask)).expect("a valid mask");
        assert!(md.mask_allows(&mask, a.as_action()), "{a} is masked out");
        *seen.entry(a.to_string()).or_insert(0) += 1;
    }
    // Allowed: {1, 2} x {0, 3}: four actions, each about a quarter of the draws.
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.values().all(|&c| (1300..1700).contains(&c)), "not uniform: {seen:?}");
    let err = md.sample(&mut rng, Some(&[true; 6])).expect_err("wrong length");
    assert!(err.contains("6 flags"), "{err}");
    let mb = Space::MultiBinary(3);
    let forced = [false, true, true, false, true, true];
    for _ in 0..100 {
        let rlpg_envs::ActionBuf::MultiBinary(v) = mb.sample(&mut rng, Some(&forced)).expect("ok")
        else {
            panic!("a MultiBinary sample")
        };
        assert!(v[0] && !v[1], "value 0 must be 1 and value 1 must be 0: {v:?}");
    }
    let unbounded =
        Space::Box(BoxSpace::new(vec![0.0, f32::NEG_INFINITY], vec![f32::INFINITY, 1.0]));
    for _ in 0..100 {
        let a = unbounded.sample(&mut rng, None).expect("no mask");
        assert!(a.is_in(&unbounded), "{a} outside {unbounded}");
    }
}
