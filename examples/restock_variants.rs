//! The `rlpg` command line with Restock's diagnostic variants registered besides the built-in
//! envs: the shops docs/benchmarks.md uses to tell apart what slows a masked multi-part policy
//! on Restock-v0 (the mask, or the joint delivery fee that couples the products' orders).
//!
//! ```sh
//! cargo build --release --example restock_variants
//! target/release/examples/restock_variants train configs/reinforce_restock.toml \
//!     --set env=RestockPunished-v0 --target-eval 140 --json
//! ```
//!
//! The variants are `rlpg_envs::RESTOCK_DIAGNOSTIC_VARIANTS`:
//! * `RestockPunished-v0`: Restock-v0's `MultiDiscrete([5, 5, 5])` order without masks, units past
//!   a shelf's free space not delivered and charged 1 each (as RestockFlat-v0 does): the mask's
//!   effect alone.
//! * `RestockPerProduct-v0` / `RestockPerProductFlat-v0`: Restock-v0 / RestockFlat-v0 with the
//!   delivery fee charged per product ordered (2 each: ordering all three still costs 6), so
//!   that the products' orders no longer share one fee.
//! * `Restock6Punished-v0`: Restock6-v0's `MultiDiscrete([5; 6])` order without masks, punished.
//! * `Restock6PerProduct-v0` / `Restock6PerProductFlat-v0`: Restock6-v0 / Restock6Flat-v0 with the
//!   delivery fee charged per product ordered (2 each).

use rlpg::envs::{RESTOCK_DIAGNOSTIC_VARIANTS, RESTOCK_EPISODE_DAYS, Registry, Restock, TimeLimit};

fn main() {
    let mut registry = Registry::builtin();
    for (id, options) in RESTOCK_DIAGNOSTIC_VARIANTS {
        let shop = match Restock::with_options(id, options) {
            Ok(shop) => shop,
            Err(e) => {
                eprintln!("restock_variants: {e}");
                std::process::exit(2);
            }
        };
        registry = registry.with(id, move || TimeLimit::new(shop.clone(), RESTOCK_EPISODE_DAYS));
    }
    rlpg::cli::main_with_and_exit(registry)
}
