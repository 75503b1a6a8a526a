//! `check_env` on multi-part and masked actions and on step infos: a shelf env that refuses
//! orders past its free space passes when it declares masks and is told exactly what is wrong
//! otherwise.

use rand::RngExt;
use rlpg_envs::{
    Action, BoxSpace, Env, EnvError, EnvRng, InfoKey, Observation, Space, Step, TimeLimit,
    check_env,
};

/// Ways of breaking the contract.
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    /// Refuses over-capacity orders without declaring masks.
    hides_masks: bool,
    /// The mask of step 4 allows no order for product 1.
    empty_mask_at_step_4: bool,
    /// Panics (instead of refusing) on an order past the free space.
    panics_on_masked: bool,
    /// Accepts an order size past the space's count.
    accepts_out_of_range: bool,
    /// Reports an infinite info at step 3.
    infinite_info: bool,
    /// Declares the same info twice.
    duplicate_info: bool,
}

const CAP: usize = 5;
const INFOS: &[InfoKey] = &[InfoKey::sum("lost_sales"), InfoKey::mean("stock")];
const TWICE: &[InfoKey] = &[InfoKey::sum("lost_sales"), InfoKey::mean("lost_sales")];

/// Two products on shelves of `CAP` units; order 0-3 of each per step; random demand.
struct Shelves {
    stock: [usize; 2],
    lost: usize,
    t: usize,
    rng: EnvRng,
    faults: Faults,
    obs: Space,
    act: Space,
}

impl Shelves {
    fn new(faults: Faults) -> Self {
        Self {
            stock: [0; 2],
            lost: 0,
            t: 0,
            rng: EnvRng::new(),
            faults,
            obs: Space::Box(BoxSpace::uniform(2, 0.0, CAP as f32)),
            act: Space::MultiDiscrete(vec![4, 4]),
        }
    }
    fn observation(&self) -> Observation {
        self.stock.iter().map(|&s| s as f32).collect()
    }
}

impl Env for Shelves {
    fn id(&self) -> &str {
        "Shelves"
    }
    fn observation_space(&self) -> &Space {
        &self.obs
    }
    fn action_space(&self) -> &Space {
        &self.act
    }
    fn masks_actions(&self) -> bool {
        !self.faults.hides_masks
    }
    fn action_mask(&self, mask: &mut [bool]) -> Result<(), EnvError> {
        for (i, &stock) in self.stock.iter().enumerate() {
            for q in 0..4 {
                mask[4 * i + q] = stock + q <= CAP;
            }
        }
        if self.faults.empty_mask_at_step_4 && self.t == 4 {
            mask[4..8].fill(false);
        }
        Ok(())
    }
    fn info_keys(&self) -> &[InfoKey] {
        if self.faults.duplicate_info { TWICE } else { INFOS }
    }
    fn step_infos(&self, values: &mut [f64]) {
        values[0] =
            if self.faults.infinite_info && self.t == 3 { f64::INFINITY } else { self.lost as f64 };
        values[1] = self.stock.iter().sum::<usize>() as f64;
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        let rng = self.rng.for_reset(seed);
        self.stock = [rng.random_range(0..=CAP), rng.random_range(0..=CAP)];
        self.t = 0;
        Ok(self.observation())
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let in_range = self.act.contains(action);
        let Action::MultiDiscrete(order) = action else {
            return Err(EnvError::invalid_action("Shelves", action, &self.act));
        };
        if !(in_range || self.faults.accepts_out_of_range && order.len() == 2) {
            return Err(EnvError::invalid_action("Shelves", action, &self.act));
        }
        // The fault: an order past the count is taken as no order at all.
        let order = if in_range { order } else { &[0, 0][..] };
        for (i, &q) in order.iter().enumerate() {
            if self.stock[i] + q > CAP {
                if self.faults.panics_on_masked {
                    panic!("shelf {i} overflows");
                }
                return Err(EnvError::Other {
                    env: "Shelves".into(),
                    message: format!("order {q} of product {i} exceeds the free space"),
                });
            }
        }
        self.lost = 0;
        let mut reward = 0.0;
        for (stock, &q) in self.stock.iter_mut().zip(order) {
            let available = (*stock + q).min(CAP);
            let demand = self.rng.stream().random_range(0..4);
            let sold = demand.min(available);
            self.lost += demand - sold;
            *stock = available - sold;
            reward += sold as f64 - 0.1 * q as f64;
        }
        self.t += 1;
        Ok(Step { obs: self.observation(), reward, terminated: false, truncated: false })
    }
}

fn check(faults: Faults) -> rlpg_envs::CheckReport {
    check_env(&mut TimeLimit::new(Shelves::new(faults), 30))
}

fn assert_problem(faults: Faults, needles: &[&str]) {
    let report = check(faults);
    assert!(
        report.problems.iter().any(|p| needles.iter().all(|n| p.contains(n))),
        "{faults:?}: expected a problem mentioning {needles:?}, got:\n{report}"
    );
}

#[test]
fn an_env_that_refuses_masked_out_orders_passes_when_it_declares_its_masks() {
    let report = check(Faults::default());
    assert!(report.is_ok(), "{report}");
}

#[test]
fn a_state_dependent_refusal_without_masks_is_a_problem_that_says_how_to_fix_it() {
    assert_problem(
        Faults { hides_masks: true, ..Faults::default() },
        &["exceeds the free space", "masks_actions", "action_mask"],
    );
}

#[test]
fn a_mask_that_leaves_a_component_no_choice_is_a_problem_naming_the_step_and_the_mask() {
    assert_problem(
        Faults { empty_mask_at_step_4: true, ..Faults::default() },
        &["step 4 of the episode", "component 1", "allows no value"],
    );
}

#[test]
fn a_panic_on_a_masked_out_action_is_a_problem() {
    assert_problem(
        Faults { panics_on_masked: true, ..Faults::default() },
        &["panicked on the action", "does not allow", "shelf"],
    );
}

#[test]
fn an_order_past_a_components_count_must_be_refused() {
    assert_problem(
        Faults { accepts_out_of_range: true, ..Faults::default() },
        &["accepted the invalid action [4, 0]", "MultiDiscrete([4, 4])"],
    );
}

#[test]
fn infos_must_not_be_infinite_and_their_names_must_differ() {
    assert_problem(
        Faults { infinite_info: true, ..Faults::default() },
        &["step 3 of the episode", "lost_sales = inf"],
    );
    assert_problem(Faults { duplicate_info: true, ..Faults::default() }, &["\"lost_sales\" twice"]);
}

/// Eight switches, one of which is refused in states where it is on already; masks are pairs.
struct Switches {
    on: Vec<bool>,
    rng: EnvRng,
    obs: Space,
    act: Space,
}

impl Env for Switches {
    fn id(&self) -> &str {
        "Switches"
    }
    fn observation_space(&self) -> &Space {
        &self.obs
    }
    fn action_space(&self) -> &Space {
        &self.act
    }
    fn masks_actions(&self) -> bool {
        true
    }
    fn action_mask(&self, mask: &mut [bool]) -> Result<(), EnvError> {
        mask.fill(true);
        // Switch 0 may not be turned on twice in a row.
        mask[1] = !self.on[0];
        Ok(())
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        let rng = self.rng.for_reset(seed);
        self.on = (0..8).map(|_| rng.random_bool(0.5)).collect();
        Ok(self.on.iter().map(|&b| f32::from(u8::from(b))).collect())
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let Action::MultiBinary(flags) = action else {
            return Err(EnvError::invalid_action("Switches", action, &self.act));
        };
        if !self.act.contains(action) || (flags[0] && self.on[0]) {
            return Err(EnvError::invalid_action("Switches", action, &self.act));
        }
        self.on.copy_from_slice(flags);
        let obs = self.on.iter().map(|&b| f32::from(u8::from(b))).collect();
        let reward = flags.iter().filter(|&&f| f).count() as f64;
        Ok(Step { obs, reward, terminated: false, truncated: false })
    }
}

#[test]
fn a_multi_binary_env_with_masks_and_a_multi_binary_observation_passes() {
    let env = Switches {
        on: vec![false; 8],
        rng: EnvRng::new(),
        obs: Space::MultiBinary(8),
        act: Space::MultiBinary(8),
    };
    let report = check_env(&mut TimeLimit::new(env, 20));
    assert!(report.is_ok(), "{report}");
}

#[test]
fn masks_on_a_box_action_space_are_a_problem() {
    struct BoxMasks(Space);
    impl Env for BoxMasks {
        fn id(&self) -> &str {
            "BoxMasks"
        }
        fn observation_space(&self) -> &Space {
            &self.0
        }
        fn action_space(&self) -> &Space {
            &self.0
        }
        fn masks_actions(&self) -> bool {
            true
        }
        fn reset(&mut self, _: Option<u64>) -> Result<Observation, EnvError> {
            Ok(Observation::from_slice(&[0.0]))
        }
        fn step(&mut self, _: Action<'_>) -> Result<Step, EnvError> {
            unreachable!("the spaces are checked first")
        }
    }
    let report = check_env(&mut BoxMasks(Space::Box(BoxSpace::uniform(1, -1.0, 1.0))));
    assert!(report.problems.iter().any(|p| p.contains("has no masks")), "{report}");
}
