//! Restock-v0: restocking three products on limited shelves against random demand, with a
//! multi-part order as the action and masks for orders that do not fit; and RestockFlat-v0,
//! the same shop with the order flattened by hand into one `Discrete(125)` and over-capacity
//! orders clipped and punished, as a user without multi-part actions and masks would write it.

use rand_distr::{Distribution, Poisson};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::classic::Phase;
use crate::core::{
    Action, BoxSpace, Env, EnvError, EnvSnapshot, InfoKey, Observation, Space, Step,
};
use crate::seeding::EnvRng;

/// The id of the masked multi-discrete shop.
pub const RESTOCK_ID: &str = "Restock-v0";
/// The id of the hand-flattened, reward-punished shop.
pub const RESTOCK_FLAT_ID: &str = "RestockFlat-v0";

/// Number of products.
const PRODUCTS: usize = 3;
/// Units each product's shelf holds.
const SHELF: usize = 8;
/// The largest order of one product on one day.
const MAX_ORDER: usize = 4;
/// Days in an episode (the registered time limit): four weeks.
pub const EPISODE_DAYS: usize = 28;
/// The best order-up-to level of [`Restock::order_up_to`] (levels 2 to 8 tried on 2,000 episodes:
/// 5 and 6 lead, 5 by a hair).
pub const HEURISTIC_LEVEL: usize = 5;

/// Selling price of one unit of each product.
const PRICE: [f64; PRODUCTS] = [4.0, 3.0, 2.0];
/// What one ordered unit costs.
const UNIT_COST: [f64; PRODUCTS] = [2.0, 1.5, 1.0];
/// Cost of keeping one unit on the shelf overnight.
const HOLDING: f64 = 0.1;
/// Cost of a delivery: paid on every day with any order, whatever its size.
const DELIVERY: f64 = 6.0;
/// Mean daily demand of each product on an ordinary day.
const BASE_DEMAND: [f64; PRODUCTS] = [2.0, 2.5, 3.0];
/// Demand multiplier of each day of the week (Monday first): the weekend is busy.
const WEEK: [f64; 7] = [0.8, 0.8, 0.8, 0.8, 1.0, 1.8, 1.8];
/// Reward charged per unit of an order past its shelf's free space (RestockFlat-v0 only).
const OVERFLOW_PENALTY: f64 = 1.0;
/// Observation length: each shelf's fill, then the day of the week one-hot.
const OBS_DIM: usize = PRODUCTS + 7;

const INFOS: &[InfoKey] = &[
    InfoKey::sum("lost_sales"),
    InfoKey::sum("deliveries"),
    InfoKey::mean("stock"),
    InfoKey::sum("over_capacity"),
];

/// A small shop restocking three products, one decision a day (a joint-replenishment problem
/// with lost sales and a weekly demand cycle).
///
/// * **State:** the units of each product on its shelf (0 to 8) and the day of the
///   week. A new episode starts on a random day with random stock; it lasts [`EPISODE_DAYS`]
///   = 28 days (the registered time limit; the shop never terminates).
/// * **Observation** (`Box(0, 1, (10,))`): each shelf's fill (units / 8), then the day of the
///   week one-hot (Monday first).
/// * **Action** (`MultiDiscrete([5, 5, 5])`): the units of each product to order today, 0 to 4.
///   An order arrives at once; a product's order must fit its shelf's free space. Restock-v0
///   declares that with **action masks** (`masks_actions()`: order sizes past the free space
///   are masked out) and refuses an order that does not fit with an error, as a real ordering
///   system would.
/// * **Day:** demand for product `i` is `Poisson(base[i] · week[day])` with
///   `base = [2, 2.5, 3]` and `week = [0.8, 0.8, 0.8, 0.8, 1, 1.8, 1.8]` (busy weekends);
///   sales are the smaller of demand and stock, unmet demand is lost.
/// * **Reward:** `Σ price[i] · sold[i] − Σ cost[i] · ordered[i] − 0.1 · units left overnight −
///   6 if anything was ordered today`, with `price = [4, 3, 2]`, `cost = [2, 1.5, 1]`: a
///   delivery is worth batching, and the weekend needs stock laid in before it (4 units a day
///   cannot keep up with it).
/// * **Infos** ([`Env::info_keys`]): `lost_sales` (units, summed over the episode),
///   `deliveries` (days with an order, summed), `stock` (units left overnight, the episode's
///   mean), `over_capacity` (units ordered past the free space, summed: always 0 for
///   Restock-v0, which refuses them).
/// * **Heuristic to beat:** order up to [`HEURISTIC_LEVEL`] units of every product every day
///   ([`Restock::order_up_to`]): the best order-up-to level, about 128 per episode. It ignores
///   the delivery cost and the weekend; policies that batch deliveries and stock up before the
///   weekend reach about 165.
///
/// **RestockFlat-v0** ([`Restock::flattened`]) is the same shop as a user without multi-part
/// actions and masks would write it: the order is one `Discrete(125)` action `a`, product `i`'s
/// size the `i`-th base-5 digit of `a` (`(a / 5^i) % 5`), and units past a shelf's free space
/// are not delivered and cost 1 each.
#[derive(Clone, Debug)]
pub struct Restock {
    stock: [usize; PRODUCTS],
    day: usize,
    phase: Phase,
    rng: EnvRng,
    flat: bool,
    /// The infos of the last step, in [`INFOS`] order.
    infos: [f64; 4],
    observation_space: Space,
    action_space: Space,
}

impl Default for Restock {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Env::snapshot`] saves.
#[derive(Serialize, Deserialize)]
struct State {
    stock: [usize; PRODUCTS],
    day: usize,
    phase: Phase,
    rng: EnvRng,
    infos: [f64; 4],
}

impl Restock {
    /// Restock-v0: multi-part orders with action masks. Reset it before the first step.
    pub fn new() -> Self {
        Self::build(false)
    }

    /// RestockFlat-v0: the same shop with one `Discrete(125)` order, over-capacity units clipped
    /// and punished.
    pub fn flattened() -> Self {
        Self::build(true)
    }

    fn build(flat: bool) -> Self {
        Self {
            stock: [0; PRODUCTS],
            day: 0,
            phase: Phase::NotReset,
            rng: EnvRng::new(),
            flat,
            infos: [0.0; 4],
            observation_space: Space::Box(BoxSpace::uniform(OBS_DIM, 0.0, 1.0)),
            action_space: if flat {
                Space::Discrete((MAX_ORDER + 1).pow(PRODUCTS as u32))
            } else {
                Space::MultiDiscrete(vec![MAX_ORDER + 1; PRODUCTS])
            },
        }
    }

    /// The heuristic to beat: order up to `level` units of every product (at most 4 a
    /// day), read from a Restock observation. [`HEURISTIC_LEVEL`] is the best
    /// level. An observation of the wrong length is an error.
    pub fn order_up_to(obs: &[f32], level: usize) -> Result<Vec<usize>, EnvError> {
        if obs.len() != OBS_DIM {
            return Err(EnvError::Other {
                env: RESTOCK_ID.to_owned(),
                message: format!(
                    "order_up_to needs an observation of {OBS_DIM} values, got {obs:?}"
                ),
            });
        }
        Ok(obs[..PRODUCTS]
            .iter()
            .map(|&fill| {
                let stock = (fill * SHELF as f32).round() as usize;
                level.saturating_sub(stock).min(MAX_ORDER)
            })
            .collect())
    }

    /// The units on each shelf.
    pub fn stock(&self) -> [usize; PRODUCTS] {
        self.stock
    }

    fn id_str(&self) -> &'static str {
        if self.flat { RESTOCK_FLAT_ID } else { RESTOCK_ID }
    }

    fn observation(&self) -> Observation {
        let mut obs: Observation = SmallVec::from_elem(0.0, OBS_DIM);
        for (o, &s) in obs.iter_mut().zip(&self.stock) {
            *o = s as f32 / SHELF as f32;
        }
        obs[PRODUCTS + self.day] = 1.0;
        obs
    }

    /// The order of each product that `action` asks for, or the error refusing it.
    fn order(&self, action: Action<'_>) -> Result<[usize; PRODUCTS], EnvError> {
        let invalid = || EnvError::invalid_action(self.id_str(), action, &self.action_space);
        if !self.action_space.contains(action) {
            return Err(invalid());
        }
        let mut order = [0; PRODUCTS];
        match action {
            Action::Discrete(mut a) => {
                for q in &mut order {
                    *q = a % (MAX_ORDER + 1);
                    a /= MAX_ORDER + 1;
                }
            }
            Action::MultiDiscrete(a) => order.copy_from_slice(a),
            _ => return Err(invalid()),
        }
        Ok(order)
    }
}

impl Env for Restock {
    fn id(&self) -> &str {
        self.id_str()
    }

    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn masks_actions(&self) -> bool {
        !self.flat
    }

    fn action_mask(&self, mask: &mut [bool]) -> Result<(), EnvError> {
        if self.flat {
            mask.fill(true);
            return Ok(());
        }
        for (flags, &stock) in mask.chunks_exact_mut(MAX_ORDER + 1).zip(&self.stock) {
            for (q, flag) in flags.iter_mut().enumerate() {
                *flag = stock + q <= SHELF;
            }
        }
        Ok(())
    }

    fn info_keys(&self) -> &[InfoKey] {
        INFOS
    }

    fn step_infos(&self, values: &mut [f64]) {
        values.copy_from_slice(&self.infos[..values.len()]);
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        use rand::RngExt;
        let rng = self.rng.for_reset(seed);
        self.day = rng.random_range(0..7);
        for s in &mut self.stock {
            *s = rng.random_range(0..=SHELF);
        }
        self.infos = [0.0; 4];
        self.phase = Phase::Running;
        Ok(self.observation())
    }

    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        self.phase.check_step(self.id_str())?;
        let mut order = self.order(action)?;
        let mut over_capacity = 0;
        for (i, q) in order.iter_mut().enumerate() {
            let free = SHELF - self.stock[i];
            if *q > free {
                if !self.flat {
                    return Err(EnvError::Other {
                        env: RESTOCK_ID.to_owned(),
                        message: format!(
                            "the order {action} asks for {q} units of product {i}, but its shelf \
                             has room for {free} ({} of {SHELF} taken); the action mask rules \
                             this order out",
                            self.stock[i]
                        ),
                    });
                }
                over_capacity += *q - free;
                *q = free;
            }
        }
        let mut reward = 0.0;
        let mut lost = 0;
        for i in 0..PRODUCTS {
            let lambda = BASE_DEMAND[i] * WEEK[self.day];
            let poisson = Poisson::new(lambda).map_err(|e| EnvError::Other {
                env: self.id_str().to_owned(),
                message: format!("demand distribution of product {i}: {e}"),
            })?;
            let demand = poisson.sample(self.rng.stream()) as usize;
            let available = self.stock[i] + order[i];
            let sold = demand.min(available);
            lost += demand - sold;
            self.stock[i] = available - sold;
            reward += PRICE[i] * sold as f64 - UNIT_COST[i] * order[i] as f64;
        }
        let left: usize = self.stock.iter().sum();
        let delivered = order.iter().any(|&q| q > 0);
        reward -= HOLDING * left as f64;
        if delivered {
            reward -= DELIVERY;
        }
        reward -= OVERFLOW_PENALTY * over_capacity as f64;
        self.infos =
            [lost as f64, f64::from(u8::from(delivered)), left as f64, over_capacity as f64];
        self.day = (self.day + 1) % 7;
        Ok(Step { obs: self.observation(), reward, terminated: false, truncated: false })
    }

    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        let state = State {
            stock: self.stock,
            day: self.day,
            phase: self.phase,
            rng: self.rng.clone(),
            infos: self.infos,
        };
        EnvSnapshot::new(self.id_str(), &state)
    }

    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        let state: State = snapshot.state(self.id_str())?;
        if state.day >= 7 || state.stock.iter().any(|&s| s > SHELF) {
            return Err(EnvError::Other {
                env: self.id_str().to_owned(),
                message: format!(
                    "snapshot holds an impossible state: day {}, stock {:?}",
                    state.day, state.stock
                ),
            });
        }
        (self.stock, self.day, self.phase, self.rng, self.infos) =
            (state.stock, state.day, state.phase, state.rng, state.infos);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TimeLimit, check_env};

    #[test]
    fn both_shops_keep_the_env_contract() {
        for env in [Restock::new(), Restock::flattened()] {
            let report = check_env(&mut TimeLimit::new(env, EPISODE_DAYS));
            assert!(report.is_ok() && report.warnings.is_empty(), "{report}");
        }
    }

    #[test]
    fn the_mask_rules_out_exactly_the_orders_that_do_not_fit_and_those_are_refused() {
        let mut env = Restock::new();
        env.reset(Some(3)).expect("reset");
        env.stock = [8, 5, 0];
        let mut mask = vec![false; 15];
        env.action_mask(&mut mask).expect("mask");
        let expected = [
            [true, false, false, false, false],
            [true, true, true, true, false],
            [true, true, true, true, true],
        ];
        assert_eq!(mask, expected.concat());
        let err = env.step(Action::MultiDiscrete(&[0, 4, 0])).expect_err("4 units need 4 free");
        assert!(err.to_string().contains("product 1") && err.to_string().contains("room for 3"));
        env.step(Action::MultiDiscrete(&[0, 3, 4])).expect("fits");
    }

    #[test]
    fn the_flat_shop_decodes_base_5_digits_and_charges_what_does_not_fit() {
        let mut flat = Restock::flattened();
        flat.reset(Some(1)).expect("reset");
        flat.stock = [8, 0, 0];
        // 2 + 5 * 1 + 25 * 3: product 0 orders 2 (no room), product 1 orders 1, product 2 orders 3.
        assert_eq!(flat.order(Action::Discrete(82)).expect("valid"), [2, 1, 3]);
        let mut same = Restock::new();
        same.reset(Some(1)).expect("reset");
        same.stock = [8, 0, 0];
        let punished = flat.step(Action::Discrete(82)).expect("clipped, not refused");
        let masked = same.step(Action::MultiDiscrete(&[0, 1, 3])).expect("fits");
        assert_eq!(punished.obs, masked.obs, "the two shops are one shop");
        assert!((punished.reward - (masked.reward - 2.0 * OVERFLOW_PENALTY)).abs() < 1e-12);
        let mut infos = [0.0; 4];
        flat.step_infos(&mut infos);
        assert_eq!(infos[3], 2.0, "two units over capacity");
    }

    #[test]
    fn the_best_order_up_to_level_earns_about_128_per_episode() {
        let mut env = TimeLimit::new(Restock::new(), EPISODE_DAYS);
        let mut returns = Vec::new();
        for seed in 0..400 {
            let mut obs = env.reset(Some(seed)).expect("reset");
            let mut ret = 0.0;
            loop {
                let order = Restock::order_up_to(&obs, HEURISTIC_LEVEL).expect("obs");
                let step = env.step(Action::MultiDiscrete(&order)).expect("the heuristic fits");
                ret += step.reward;
                if step.done() {
                    break;
                }
                obs = step.obs;
            }
            returns.push(ret);
        }
        let mean = returns.iter().sum::<f64>() / returns.len() as f64;
        assert!((120.0..136.0).contains(&mean), "order-up-to-5 mean return {mean}");
    }

    #[test]
    fn snapshots_resume_exactly() {
        let mut env = Restock::new();
        env.reset(Some(4)).expect("reset");
        env.step(Action::MultiDiscrete(&[0, 0, 0])).expect("step");
        let mut copy = Restock::new();
        copy.restore(&env.snapshot().expect("snapshot")).expect("restore");
        for t in 0..20 {
            let order = Restock::order_up_to(&env.observation(), 4).expect("obs");
            let a = Action::MultiDiscrete(&order);
            assert_eq!(copy.step(a), env.step(a), "step {t}");
        }
    }
}
