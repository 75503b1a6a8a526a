//! Restock-v0: restocking three products on limited shelves against random demand, with a
//! multi-part order as the action and masks for orders that do not fit; RestockFlat-v0, the
//! same shop with the order flattened by hand into one `Discrete(125)` and over-capacity orders
//! clipped and punished, as a user without multi-part actions and masks would write it; and
//! Restock6-v0 / Restock6Flat-v0, the same shop with a catalogue of six products (the flattened
//! order a `Discrete(15625)`). [`Restock::with_options`] builds other sizes and cost structures.

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
/// The id of the masked multi-discrete shop with six products.
pub const RESTOCK6_ID: &str = "Restock6-v0";
/// The id of the six-product shop flattened by hand into `Discrete(15625)`, punished.
pub const RESTOCK6_FLAT_ID: &str = "Restock6Flat-v0";

/// Products of Restock-v0.
const PRODUCTS: usize = 3;
/// The most products [`Restock::with_options`] accepts (a flattened order of 8 products is a
/// `Discrete(390625)`).
pub const MAX_PRODUCTS: usize = 8;
/// Units each product's shelf holds.
const SHELF: usize = 8;
/// The largest order of one product on one day.
const MAX_ORDER: usize = 4;
/// Days in an episode (the registered time limit): four weeks.
pub const EPISODE_DAYS: usize = 28;
/// The best order-up-to level of [`Restock::order_up_to`] (levels 2 to 8 tried on 2,000 episodes
/// of Restock-v0: 5 and 6 lead, 5 by a hair; on Restock6-v0 5 and 6 tie, 422.1 and 422.3 on 1,000
/// episodes).
pub const HEURISTIC_LEVEL: usize = 5;

/// Selling price of one unit of each of the three kinds of product (product `i` is of kind
/// `i % 3`).
const PRICE: [f64; PRODUCTS] = [4.0, 3.0, 2.0];
/// What one ordered unit costs.
const UNIT_COST: [f64; PRODUCTS] = [2.0, 1.5, 1.0];
/// Cost of keeping one unit on the shelf overnight.
const HOLDING: f64 = 0.1;
/// Restock-v0's delivery cost: paid on every day with any order, whatever its size.
pub const DELIVERY: f64 = 6.0;
/// Mean daily demand of each kind of product on an ordinary day.
const BASE_DEMAND: [f64; PRODUCTS] = [2.0, 2.5, 3.0];
/// Demand multiplier of each day of the week (Monday first): the weekend is busy.
const WEEK: [f64; 7] = [0.8, 0.8, 0.8, 0.8, 1.0, 1.8, 1.8];
/// Reward charged per unit of an order past its shelf's free space (when not masked).
const OVERFLOW_PENALTY: f64 = 1.0;
/// Days of the week, one-hot at the end of the observation.
const WEEKDAYS: usize = 7;

const INFOS: &[InfoKey] = &[
    InfoKey::sum("lost_sales"),
    InfoKey::sum("deliveries"),
    InfoKey::mean("stock"),
    InfoKey::sum("over_capacity"),
];

/// How a shop takes its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    /// `MultiDiscrete([5; n])` with action masks: order sizes past a shelf's free space are
    /// masked out, and refused with an error (Restock-v0).
    Masked,
    /// `MultiDiscrete([5; n])` without masks: units past a shelf's free space are not delivered
    /// and cost 1 each.
    Punished,
    /// One `Discrete(5^n)` order, product `i`'s size its `i`-th base-5 digit; units past a
    /// shelf's free space are not delivered and cost 1 each (RestockFlat-v0).
    Flat,
}

/// What delivering an order costs, besides the units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DeliveryCost {
    /// A fee on every day with any order, whatever its size and however many products it
    /// restocks (a joint-replenishment cost: one truck): Restock-v0's, 6 a day.
    PerDay(f64),
    /// A fee per product ordered on a day (no saving from ordering products together).
    PerProduct(f64),
}

/// The shape of a [`Restock`] shop: its catalogue size, how it takes orders, what a delivery
/// costs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RestockOptions {
    /// Products, 1 to [`MAX_PRODUCTS`]; product `i` has the price, cost and demand of
    /// Restock-v0's product `i % 3`.
    pub products: usize,
    /// How an order is given and what happens to an order that does not fit.
    pub ordering: Ordering,
    /// What a delivery costs.
    pub delivery: DeliveryCost,
}

impl RestockOptions {
    /// Restock-v0's shop: 3 products, masked multi-part orders, 6 per delivery day.
    pub const fn restock_v0() -> Self {
        Self {
            products: PRODUCTS,
            ordering: Ordering::Masked,
            delivery: DeliveryCost::PerDay(DELIVERY),
        }
    }
}

/// The shops docs/benchmarks.md uses to tell apart what slows a masked multi-part policy on
/// Restock-v0 (not registered: `examples/restock_variants.rs` registers them for the `rlpg`
/// command line): Restock-v0 and Restock6-v0 without masks, over-capacity units charged
/// (`RestockPunished-v0`, `Restock6Punished-v0`: the mask's effect alone), and Restock-v0 /
/// RestockFlat-v0 with the delivery fee charged per product ordered, 2 each, so that ordering all
/// three still costs 6 but the products' orders no longer share one fee
/// (`RestockPerProduct-v0`, `RestockPerProductFlat-v0`; with six products
/// `Restock6PerProduct-v0`, `Restock6PerProductFlat-v0`).
pub const DIAGNOSTIC_VARIANTS: [(&str, RestockOptions); 6] = {
    let v0 = RestockOptions::restock_v0();
    let per_product = DeliveryCost::PerProduct(2.0);
    [
        ("RestockPunished-v0", RestockOptions { ordering: Ordering::Punished, ..v0 }),
        ("RestockPerProduct-v0", RestockOptions { delivery: per_product, ..v0 }),
        (
            "RestockPerProductFlat-v0",
            RestockOptions { delivery: per_product, ordering: Ordering::Flat, ..v0 },
        ),
        ("Restock6Punished-v0", RestockOptions { products: 6, ordering: Ordering::Punished, ..v0 }),
        ("Restock6PerProduct-v0", RestockOptions { products: 6, delivery: per_product, ..v0 }),
        (
            "Restock6PerProductFlat-v0",
            RestockOptions { products: 6, delivery: per_product, ordering: Ordering::Flat },
        ),
    ]
};

/// A small shop restocking its products, one decision a day (a joint-replenishment problem
/// with lost sales and a weekly demand cycle).
///
/// * **State:** the units of each product on its shelf (0 to 8) and the day of the
///   week. A new episode starts on a random day with random stock; it lasts [`EPISODE_DAYS`]
///   = 28 days (the registered time limit; the shop never terminates).
/// * **Observation** (`Box(0, 1, (n + 7,))`, `n` products: `(10,)` for Restock-v0): each
///   shelf's fill (units / 8), then the day of the week one-hot (Monday first).
/// * **Action** (`MultiDiscrete([5; n])`): the units of each product to order today, 0 to 4.
///   An order arrives at once; a product's order must fit its shelf's free space. Restock-v0
///   declares that with **action masks** (`masks_actions()`: order sizes past the free space
///   are masked out) and refuses an order that does not fit with an error, as a real ordering
///   system would.
/// * **Day:** demand for product `i` is `Poisson(base[i % 3] · week[day])` with
///   `base = [2, 2.5, 3]` and `week = [0.8, 0.8, 0.8, 0.8, 1, 1.8, 1.8]` (busy weekends);
///   sales are the smaller of demand and stock, unmet demand is lost.
/// * **Reward:** `Σ price[i % 3] · sold[i] − Σ cost[i % 3] · ordered[i] − 0.1 · units left
///   overnight − 6 if anything was ordered today`, with `price = [4, 3, 2]`,
///   `cost = [2, 1.5, 1]`: a delivery is worth batching, and the weekend needs stock laid in
///   before it (4 units a day cannot keep up with it).
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
///
/// **Restock6-v0** and **Restock6Flat-v0** ([`Restock::six`], [`Restock::six_flattened`]) are
/// the same shop with six products (products 3-5 priced and demanded like products 0-2), one
/// delivery fee of 6 a day for all of them: `MultiDiscrete([5; 6])` with masks, and
/// `Discrete(15625)` punished. The order-up-to-5 heuristic scores about 422 there (order-up-to-6
/// ties it), and ordering every product up to 7 only on days when a shelf is empty about 449.
#[derive(Clone, Debug)]
pub struct Restock {
    id: &'static str,
    options: RestockOptions,
    stock: Vec<usize>,
    day: usize,
    phase: Phase,
    rng: EnvRng,
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
    stock: Vec<usize>,
    day: usize,
    phase: Phase,
    rng: EnvRng,
    infos: [f64; 4],
}

impl Restock {
    /// Restock-v0: multi-part orders with action masks. Reset it before the first step.
    pub fn new() -> Self {
        Self::build(RESTOCK_ID, RestockOptions::restock_v0())
    }

    /// RestockFlat-v0: the same shop with one `Discrete(125)` order, over-capacity units clipped
    /// and punished.
    pub fn flattened() -> Self {
        Self::build(
            RESTOCK_FLAT_ID,
            RestockOptions { ordering: Ordering::Flat, ..RestockOptions::restock_v0() },
        )
    }

    /// Restock6-v0: six products, multi-part orders with action masks.
    pub fn six() -> Self {
        Self::build(RESTOCK6_ID, RestockOptions { products: 6, ..RestockOptions::restock_v0() })
    }

    /// Restock6Flat-v0: six products, one `Discrete(15625)` order, over-capacity units clipped
    /// and punished.
    pub fn six_flattened() -> Self {
        Self::build(
            RESTOCK6_FLAT_ID,
            RestockOptions {
                products: 6,
                ordering: Ordering::Flat,
                ..RestockOptions::restock_v0()
            },
        )
    }

    /// A shop of the given shape, named `id` (the id it reports in errors and snapshots: the id
    /// it is registered under). A catalogue of 0 or more than [`MAX_PRODUCTS`] products, or a
    /// negative or non-finite delivery cost, is an error.
    pub fn with_options(id: &'static str, options: RestockOptions) -> Result<Self, EnvError> {
        let fee = match options.delivery {
            DeliveryCost::PerDay(fee) | DeliveryCost::PerProduct(fee) => fee,
        };
        if !(1..=MAX_PRODUCTS).contains(&options.products) || !fee.is_finite() || fee < 0.0 {
            return Err(EnvError::Other {
                env: id.to_owned(),
                message: format!(
                    "a Restock shop needs 1 to {MAX_PRODUCTS} products and a finite delivery \
                     cost >= 0, got {options:?}"
                ),
            });
        }
        Ok(Self::build(id, options))
    }

    fn build(id: &'static str, options: RestockOptions) -> Self {
        let n = options.products;
        Self {
            id,
            options,
            stock: vec![0; n],
            day: 0,
            phase: Phase::NotReset,
            rng: EnvRng::new(),
            infos: [0.0; 4],
            observation_space: Space::Box(BoxSpace::uniform(n + WEEKDAYS, 0.0, 1.0)),
            action_space: match options.ordering {
                Ordering::Flat => Space::Discrete((MAX_ORDER + 1).pow(n as u32)),
                Ordering::Masked | Ordering::Punished => {
                    Space::MultiDiscrete(vec![MAX_ORDER + 1; n])
                }
            },
        }
    }

    /// The heuristic to beat: order up to `level` units of every product (at most 4 a
    /// day), read from a Restock observation (of any catalogue size). [`HEURISTIC_LEVEL`] is the
    /// best level. An observation too short to hold a product and the day of the week is an
    /// error.
    pub fn order_up_to(obs: &[f32], level: usize) -> Result<Vec<usize>, EnvError> {
        if obs.len() <= WEEKDAYS {
            return Err(EnvError::Other {
                env: RESTOCK_ID.to_owned(),
                message: format!(
                    "order_up_to needs a Restock observation (each shelf's fill, then 7 days), \
                     got {obs:?}"
                ),
            });
        }
        Ok(obs[..obs.len() - WEEKDAYS]
            .iter()
            .map(|&fill| {
                let stock = (fill * SHELF as f32).round() as usize;
                level.saturating_sub(stock).min(MAX_ORDER)
            })
            .collect())
    }

    /// The units on each shelf.
    pub fn stock(&self) -> &[usize] {
        &self.stock
    }

    /// The shop's shape.
    pub fn options(&self) -> RestockOptions {
        self.options
    }

    fn punishes(&self) -> bool {
        self.options.ordering != Ordering::Masked
    }

    fn observation(&self) -> Observation {
        let n = self.options.products;
        let mut obs: Observation = SmallVec::from_elem(0.0, n + WEEKDAYS);
        for (o, &s) in obs.iter_mut().zip(&self.stock) {
            *o = s as f32 / SHELF as f32;
        }
        obs[n + self.day] = 1.0;
        obs
    }

    /// The order of each product that `action` asks for, or the error refusing it.
    fn order(&self, action: Action<'_>) -> Result<SmallVec<[usize; MAX_PRODUCTS]>, EnvError> {
        let invalid = || EnvError::invalid_action(self.id, action, &self.action_space);
        if !self.action_space.contains(action) {
            return Err(invalid());
        }
        match action {
            Action::Discrete(mut a) => Ok((0..self.options.products)
                .map(|_| {
                    let q = a % (MAX_ORDER + 1);
                    a /= MAX_ORDER + 1;
                    q
                })
                .collect()),
            Action::MultiDiscrete(a) => Ok(a.iter().copied().collect()),
            _ => Err(invalid()),
        }
    }
}

impl Env for Restock {
    fn id(&self) -> &str {
        self.id
    }

    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn masks_actions(&self) -> bool {
        !self.punishes()
    }

    fn action_mask(&self, mask: &mut [bool]) -> Result<(), EnvError> {
        if self.punishes() {
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
        self.day = rng.random_range(0..WEEKDAYS);
        for s in &mut self.stock {
            *s = rng.random_range(0..=SHELF);
        }
        self.infos = [0.0; 4];
        self.phase = Phase::Running;
        Ok(self.observation())
    }

    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        self.phase.check_step(self.id)?;
        let mut order = self.order(action)?;
        let mut over_capacity = 0;
        for (i, q) in order.iter_mut().enumerate() {
            let free = SHELF - self.stock[i];
            if *q > free {
                if !self.punishes() {
                    return Err(EnvError::Other {
                        env: self.id.to_owned(),
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
        for (i, (stock, &ordered)) in self.stock.iter_mut().zip(&order).enumerate() {
            let kind = i % PRODUCTS;
            let lambda = BASE_DEMAND[kind] * WEEK[self.day];
            let poisson = Poisson::new(lambda).map_err(|e| EnvError::Other {
                env: self.id.to_owned(),
                message: format!("demand distribution of product {i}: {e}"),
            })?;
            let demand = poisson.sample(self.rng.stream()) as usize;
            let available = *stock + ordered;
            let sold = demand.min(available);
            lost += demand - sold;
            *stock = available - sold;
            reward += PRICE[kind] * sold as f64 - UNIT_COST[kind] * ordered as f64;
        }
        let left: usize = self.stock.iter().sum();
        let lines = order.iter().filter(|&&q| q > 0).count();
        let delivered = lines > 0;
        reward -= HOLDING * left as f64;
        reward -= match self.options.delivery {
            DeliveryCost::PerDay(fee) if delivered => fee,
            DeliveryCost::PerDay(_) => 0.0,
            DeliveryCost::PerProduct(fee) => fee * lines as f64,
        };
        reward -= OVERFLOW_PENALTY * over_capacity as f64;
        self.infos =
            [lost as f64, f64::from(u8::from(delivered)), left as f64, over_capacity as f64];
        self.day = (self.day + 1) % WEEKDAYS;
        Ok(Step { obs: self.observation(), reward, terminated: false, truncated: false })
    }

    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        let state = State {
            stock: self.stock.clone(),
            day: self.day,
            phase: self.phase,
            rng: self.rng.clone(),
            infos: self.infos,
        };
        EnvSnapshot::new(self.id, &state)
    }

    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        let state: State = snapshot.state(self.id)?;
        if state.day >= WEEKDAYS
            || state.stock.len() != self.options.products
            || state.stock.iter().any(|&s| s > SHELF)
        {
            return Err(EnvError::Other {
                env: self.id.to_owned(),
                message: format!(
                    "snapshot holds an impossible state for {} products: day {}, stock {:?}",
                    self.options.products, state.day, state.stock
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
        for env in [Restock::new(), Restock::flattened(), Restock::six(), Restock::six_flattened()]
        {
            let report = check_env(&mut TimeLimit::new(env, EPISODE_DAYS));
            assert!(report.is_ok() && report.warnings.is_empty(), "{report}");
        }
    }

    #[test]
    fn the_mask_rules_out_exactly_the_orders_that_do_not_fit_and_those_are_refused() {
        let mut env = Restock::new();
        env.reset(Some(3)).expect("reset");
        env.stock = vec![8, 5, 0];
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
        flat.stock = vec![8, 0, 0];
        // 2 + 5 * 1 + 25 * 3: product 0 orders 2 (no room), product 1 orders 1, product 2 orders 3.
        assert_eq!(flat.order(Action::Discrete(82)).expect("valid").as_slice(), [2, 1, 3]);
        let mut same = Restock::new();
        same.reset(Some(1)).expect("reset");
        same.stock = vec![8, 0, 0];
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

    /// The mean return of order-up-to-`level` over `episodes` episodes of `env`.
    fn heuristic_mean(env: Restock, level: usize, episodes: u64) -> f64 {
        let mut env = TimeLimit::new(env, EPISODE_DAYS);
        let mut total = 0.0;
        for seed in 0..episodes {
            let mut obs = env.reset(Some(seed)).expect("reset");
            loop {
                let order = Restock::order_up_to(&obs, level).expect("obs");
                let step = env.step(Action::MultiDiscrete(&order)).expect("the heuristic fits");
                total += step.reward;
                if step.done() {
                    break;
                }
                obs = step.obs;
            }
        }
        total / episodes as f64
    }

    #[test]
    fn six_products_order_up_to_5_earns_about_422_per_episode() {
        let mean = heuristic_mean(Restock::six(), HEURISTIC_LEVEL, 400);
        assert!((410.0..435.0).contains(&mean), "order-up-to-5 mean return on six products {mean}");
        for level in [3, 4, 7] {
            let worse = heuristic_mean(Restock::six(), level, 400);
            assert!(worse < mean, "order-up-to-{level} {worse} beats level 5's {mean}");
        }
    }

    #[test]
    fn six_products_are_two_copies_of_the_three_and_flatten_to_5_to_the_6() {
        let six = Restock::six();
        assert_eq!(six.action_space(), &Space::MultiDiscrete(vec![5; 6]));
        assert_eq!(Restock::six_flattened().action_space(), &Space::Discrete(15625));
        let mut flat = Restock::six_flattened();
        flat.reset(Some(2)).expect("reset");
        flat.stock = vec![0; 6];
        // 1 + 5 * 2 + 25 * 3 + 125 * 4 + 625 * 0 + 3125 * 4
        assert_eq!(
            flat.order(Action::Discrete(13086)).expect("valid").as_slice(),
            [1, 2, 3, 4, 0, 4]
        );
        let mut masked = Restock::six();
        masked.reset(Some(2)).expect("reset");
        masked.stock = vec![7, 0, 0, 0, 0, 0];
        let mut mask = vec![false; 30];
        masked.action_mask(&mut mask).expect("mask");
        assert_eq!(&mask[..5], [true, true, false, false, false]);
        assert!(mask[5..].iter().all(|&m| m));
    }

    #[test]
    fn a_per_product_fee_charges_each_product_ordered() {
        let options = RestockOptions {
            delivery: DeliveryCost::PerProduct(2.0),
            ..RestockOptions::restock_v0()
        };
        let mut per_product = Restock::with_options("PerProduct-v0", options).expect("valid");
        let mut per_day = Restock::new();
        for (order, fees) in
            [([0, 0, 0], (0.0, 0.0)), ([1, 0, 0], (2.0, 6.0)), ([1, 2, 3], (6.0, 6.0))]
        {
            per_product.reset(Some(9)).expect("reset");
            per_day.reset(Some(9)).expect("reset");
            per_product.stock = vec![0; 3];
            per_day.stock = vec![0; 3];
            let a = per_product.step(Action::MultiDiscrete(&order)).expect("fits");
            let b = per_day.step(Action::MultiDiscrete(&order)).expect("fits");
            assert_eq!(a.obs, b.obs, "the same shop otherwise");
            assert!((a.reward + fees.0 - (b.reward + fees.1)).abs() < 1e-12, "{order:?}");
        }
    }

    #[test]
    fn a_punished_multi_part_order_is_clipped_and_charged_without_masks() {
        let options =
            RestockOptions { ordering: Ordering::Punished, ..RestockOptions::restock_v0() };
        let mut punished = Restock::with_options("Punished-v0", options).expect("valid");
        assert!(!punished.masks_actions());
        punished.reset(Some(5)).expect("reset");
        punished.stock = vec![8, 0, 0];
        let mut flat = Restock::flattened();
        flat.reset(Some(5)).expect("reset");
        flat.stock = vec![8, 0, 0];
        let a = punished.step(Action::MultiDiscrete(&[2, 1, 3])).expect("clipped, not refused");
        assert_eq!(a, flat.step(Action::Discrete(82)).expect("clipped"), "as RestockFlat-v0");
    }

    #[test]
    fn shapes_out_of_range_are_errors_naming_the_shop() {
        for products in [0, MAX_PRODUCTS + 1] {
            let options = RestockOptions { products, ..RestockOptions::restock_v0() };
            let err = Restock::with_options("Big-v0", options).expect_err("out of range");
            assert!(err.to_string().contains("Big-v0") && err.to_string().contains("products"));
        }
        let options = RestockOptions {
            delivery: DeliveryCost::PerDay(f64::NAN),
            ..RestockOptions::restock_v0()
        };
        assert!(Restock::with_options("Nan-v0", options).is_err());
        let mut six = Restock::six();
        six.reset(Some(1)).expect("reset");
        let mut three = Restock::new();
        assert!(three.restore(&six.snapshot().expect("snapshot")).is_err(), "another id");
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
