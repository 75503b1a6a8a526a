//! Seeding as Gymnasium does it: `reset(Some(seed))` re-seeds, `reset(None)` continues the stream.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

/// The random number generator of one environment, with Gymnasium's seeding rules.
///
/// * `reset(Some(seed))` starts a fresh stream from `seed`, so the same seed always gives the
///   same episode;
/// * `reset(None)` continues the current stream, so consecutive episodes differ;
/// * an environment that was never seeded draws its first seed from the operating system, as
///   Gymnasium's `np_random` does.
///
/// The generator is PCG-XSL-RR 128/64 (`rand_pcg::Pcg64`), the algorithm family of NumPy's
/// default `PCG64`. Its stream for a given seed is fixed by `rand_pcg`'s reproducibility
/// guarantee, unlike `rand::rngs::StdRng` whose algorithm may change between releases. (The
/// seed-to-state mapping differs from NumPy's, so the numbers themselves do not match
/// Gymnasium's: parity tests start from explicit states instead.)
///
/// Custom environments can use it the same way: [`EnvRng::for_reset`] in `reset`,
/// [`EnvRng::stream`] for the randomness of a `step`:
/// ```
/// use rlpg_envs::EnvRng;
/// use rand::RngExt;
///
/// let mut rng = EnvRng::new();
/// let a: f64 = rng.for_reset(Some(7)).random_range(-1.0..1.0);
/// let b: f64 = rng.for_reset(Some(7)).random_range(-1.0..1.0);
/// assert_eq!(a, b);
/// ```
///
/// Serialisable (the generator's full 128-bit state), so that an environment's snapshot
/// continues the same stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvRng {
    rng: Option<Pcg64>,
}

impl EnvRng {
    /// An unseeded generator: its first use without a seed draws one from the operating system.
    pub fn new() -> Self {
        Self { rng: None }
    }

    /// A generator seeded with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self { rng: Some(Pcg64::seed_from_u64(seed)) }
    }

    /// The generator to draw a new episode's initial state from, in `reset(seed)`: re-seeded
    /// with `seed` if given, otherwise [`EnvRng::stream`].
    pub fn for_reset(&mut self, seed: Option<u64>) -> &mut Pcg64 {
        if let Some(seed) = seed {
            self.rng = Some(Pcg64::seed_from_u64(seed));
        }
        self.stream()
    }

    /// The generator, continuing its stream: what a `step` draws its randomness from (random
    /// demand, noisy transitions), so that a seeded episode is reproducible step by step. Seeded
    /// from the operating system on first use if the env was never reset with a seed.
    ///
    /// ```
    /// use rlpg_envs::EnvRng;
    /// use rand::RngExt;
    ///
    /// let mut rng = EnvRng::seeded(7);
    /// let noise: f64 = rng.stream().random_range(-0.1..0.1);
    /// assert!(noise.abs() <= 0.1);
    /// ```
    pub fn stream(&mut self) -> &mut Pcg64 {
        self.rng.get_or_insert_with(|| Pcg64::seed_from_u64(rand::rng().random()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(rng: &mut Pcg64) -> [u64; 3] {
        [rng.random(), rng.random(), rng.random()]
    }

    #[test]
    fn same_seed_restarts_the_same_stream() {
        let mut rng = EnvRng::new();
        let a = draws(rng.for_reset(Some(3)));
        let b = draws(rng.for_reset(Some(3)));
        assert_eq!(a, b, "re-seeding with the same seed must replay the stream");
    }

    #[test]
    fn no_seed_continues_the_stream() {
        let mut rng = EnvRng::seeded(3);
        let first = draws(rng.for_reset(None));
        let second = draws(rng.for_reset(None));
        assert_ne!(first, second, "reset(None) must continue, not restart, the stream");
        let third = draws(rng.stream());
        let mut replay = EnvRng::seeded(3);
        draws(replay.stream());
        draws(replay.stream());
        assert_eq!(draws(replay.stream()), third, "stream() and for_reset(None) draw alike");
        let mut fresh = EnvRng::new();
        assert_eq!(draws(fresh.for_reset(Some(3))), first, "seeded(3) must equal reset(Some(3))");
    }

    #[test]
    fn different_seeds_give_different_streams() {
        let mut rng = EnvRng::new();
        let a = draws(rng.for_reset(Some(0)));
        let b = draws(rng.for_reset(Some(1)));
        assert_ne!(a, b, "seeds 0 and 1 gave the same draws");
    }
}
