//! Steps per second of the built-in environments: raw, through `make` (time limit, boxed), and
//! in a `VecEnv` of 8 `make` envs. Actions are precomputed pseudo-random ones so that choosing
//! them costs (almost) nothing; finished episodes are reset inside the measured loop.
//!
//! Targets on the project's 2-core machine, one core: at least 100x Gymnasium 1.4's unwrapped
//! envs (192k CartPole and 108k Pendulum steps/s, i.e. 19.2M and 10.8M steps/s; Acrobot,
//! MountainCar and MountainCarContinuous: measured side by side with
//! `benches/peers/gymnasium_env_steps.py`, about 22k, 77k and 340k steps/s), and a `VecEnv`
//! costing at most 10% more per env-step than the single env through `make` (the same env stack:
//! time limit, boxed, one dynamic call per step).
//!
//! Run: `cargo bench -p rlpg-envs --bench step_throughput -- --warm-up-time 1 --measurement-time 3`
//!
//! Timings on a shared machine are noisy; instruction counts are not. With
//! `RLPG_BENCH_CASE=<case>` (and optionally `RLPG_BENCH_STEPS`, env-steps, default 800000) the
//! binary runs only that case, without criterion, inside the function `measured_steps`, so that
//! callgrind can count exactly its instructions:
//!
//! ```text
//! cargo bench -p rlpg-envs --bench step_throughput --no-run
//! RLPG_BENCH_CASE=CartPole-v1/vec8 valgrind --tool=callgrind --collect-atstart=no \
//!     --toggle-collect='*measured_steps*' target/release/deps/step_throughput-<hash>
//! ```
//!
//! Cases: `{CartPole-v1,Pendulum-v1,Acrobot-v1,MountainCar-v0,MountainCarContinuous-v0}/`
//! `{raw,make,make8,vec8}` (`make8`: 8 envs stepped in turn by
//! the benchmark loop, without `VecEnv`). Divide the reported instructions by the
//! number of env-steps.
//!
//! With `RLPG_BENCH_COMPARE=<rounds>` it instead times all cases in interleaved rounds of
//! `RLPG_BENCH_STEPS` env-steps and prints each case's fastest and median round in ns per
//! env-step, and the vector env's overhead over `make` and `raw` from the fastest rounds: on a
//! busy machine the fastest of many interleaved rounds is the least disturbed estimate.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use rlpg_envs::{
    Acrobot, Action, CartPole, Env, MountainCar, MountainCarContinuous, Pendulum, VecActions,
    VecEnv, make,
};

/// Env-steps per measured criterion iteration.
const STEPS: usize = 10_000;
/// Length of the precomputed action table (a power of two, indexed with a mask).
const TABLE: usize = 4096;
const NUM_ENVS: usize = 8;
const ENV_IDS: [&str; 5] =
    ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"];

/// Precomputed uniformly random actions for every env: CartPole's two discrete ones, three
/// discrete ones (Acrobot, MountainCar), Pendulum's torques and MountainCarContinuous's forces.
struct Actions {
    two: Vec<usize>,
    three: Vec<usize>,
    torque: Vec<f32>,
    force: Vec<f32>,
}

/// The action table of one env.
#[derive(Clone, Copy)]
enum Table<'a> {
    Discrete(&'a [usize]),
    Continuous(&'a [f32]),
}

impl Actions {
    fn new() -> Self {
        let mut rng = Pcg64::seed_from_u64(1);
        let two = (0..TABLE).map(|_| rng.random_range(0..2)).collect();
        let mut rng = Pcg64::seed_from_u64(2);
        let torque = (0..TABLE).map(|_| rng.random_range(-2.0..=2.0)).collect();
        let mut rng = Pcg64::seed_from_u64(3);
        let three = (0..TABLE).map(|_| rng.random_range(0..3)).collect();
        let mut rng = Pcg64::seed_from_u64(4);
        let force = (0..TABLE).map(|_| rng.random_range(-1.0..=1.0)).collect();
        Self { two, three, torque, force }
    }

    fn table(&self, id: &str) -> Table<'_> {
        match id {
            "CartPole-v1" => Table::Discrete(&self.two),
            "Pendulum-v1" => Table::Continuous(&self.torque),
            "MountainCarContinuous-v0" => Table::Continuous(&self.force),
            _ => Table::Discrete(&self.three),
        }
    }
}

impl<'a> Table<'a> {
    /// The `k`-th single-env action.
    #[inline(always)]
    fn action(self, k: usize) -> Action<'a> {
        match self {
            Table::Discrete(t) => Action::Discrete(t[k & (TABLE - 1)]),
            Table::Continuous(t) => Action::Continuous(std::slice::from_ref(&t[k & (TABLE - 1)])),
        }
    }

    /// The `k`-th batch of `NUM_ENVS` actions: a window of the table, shifted each step.
    #[inline(always)]
    fn batch(self, k: usize) -> VecActions<'a> {
        let start = (k * NUM_ENVS) & (TABLE - 1);
        let end = start + NUM_ENVS;
        match self {
            Table::Discrete(t) => VecActions::Discrete(&t[start..end]),
            Table::Continuous(t) => VecActions::Continuous(&t[start..end]),
        }
    }
}

/// What is stepped: one env (raw or through `make`) or a vector env of `NUM_ENVS`.
// One per case, never moved while measured: boxing the vector env would only add an indirection.
#[allow(clippy::large_enum_variant)]
enum Stepper {
    CartPole(CartPole),
    Pendulum(Pendulum),
    Acrobot(Acrobot),
    MountainCar(MountainCar),
    MountainCarContinuous(MountainCarContinuous),
    Made(Box<dyn Env>),
    /// `NUM_ENVS` envs through `make`, stepped in turn by the benchmark loop itself: what
    /// interleaving envs costs without any of `VecEnv`'s work.
    Interleaved(Vec<Box<dyn Env>>),
    Vec(VecEnv),
}

/// One benchmark case: env `id` stepped as `kind` (`raw`, `make` or `vec8`).
struct Case {
    id: &'static str,
    stepper: Stepper,
    /// Index of the next action.
    k: usize,
}

/// `env_steps` steps of `env`, resetting finished episodes.
#[inline(always)]
fn run_single<'a, E: Env + ?Sized>(
    env: &mut E,
    action: impl Fn(usize) -> Action<'a>,
    k: &mut usize,
    env_steps: usize,
) {
    for _ in 0..env_steps {
        // Read in place rather than moved out with `expect`: moving the freshly written `Step`
        // copies it with wide loads that the CPU cannot forward from its store buffer, a stall
        // of the benchmark loop rather than of the environment (`VecEnv` reads it the same way).
        let result = env.step(action(*k));
        *k += 1;
        let Ok(step) = &result else { panic!("step failed: {result:?}") };
        if step.done() {
            black_box(env.reset(None).expect("reset"));
        } else {
            black_box(&step.obs);
        }
    }
}

impl Case {
    fn new(id: &'static str, kind: &str) -> Option<Self> {
        let mut stepper = match kind {
            "raw" => match id {
                "CartPole-v1" => Stepper::CartPole(CartPole::new()),
                "Pendulum-v1" => Stepper::Pendulum(Pendulum::new()),
                "Acrobot-v1" => Stepper::Acrobot(Acrobot::new()),
                "MountainCar-v0" => Stepper::MountainCar(MountainCar::new()),
                "MountainCarContinuous-v0" => {
                    Stepper::MountainCarContinuous(MountainCarContinuous::new())
                }
                _ => return None,
            },
            "make" => Stepper::Made(make(id).ok()?),
            "make8" => {
                Stepper::Interleaved((0..NUM_ENVS).map(|_| make(id).expect("registered")).collect())
            }
            "vec8" => {
                let envs = (0..NUM_ENVS).map(|_| make(id).expect("registered")).collect();
                Stepper::Vec(VecEnv::new(envs).expect("same spaces"))
            }
            _ => return None,
        };
        match &mut stepper {
            Stepper::CartPole(env) => black_box(env.reset(Some(0)).map(drop)),
            Stepper::Pendulum(env) => black_box(env.reset(Some(0)).map(drop)),
            Stepper::Acrobot(env) => black_box(env.reset(Some(0)).map(drop)),
            Stepper::MountainCar(env) => black_box(env.reset(Some(0)).map(drop)),
            Stepper::MountainCarContinuous(env) => black_box(env.reset(Some(0)).map(drop)),
            Stepper::Made(env) => black_box(env.reset(Some(0)).map(drop)),
            Stepper::Interleaved(envs) => {
                envs.iter_mut().try_for_each(|env| black_box(env.reset(Some(0)).map(drop)))
            }
            Stepper::Vec(venv) => black_box(venv.reset(Some(0)).map(drop)),
        }
        .expect("reset");
        Some(Self { id, stepper, k: 0 })
    }

    /// About `env_steps` env-steps (rounded down to whole vector steps for the vector env).
    fn run(&mut self, actions: &Actions, env_steps: usize) {
        let table = actions.table(self.id);
        let k = &mut self.k;
        // One monomorphised loop per kind of action table, so that choosing an action is not a
        // branch per step.
        macro_rules! single {
            ($env:expr) => {
                match table {
                    Table::Discrete(_) => run_single($env, |k| table.action(k), k, env_steps),
                    Table::Continuous(_) => run_single($env, |k| table.action(k), k, env_steps),
                }
            };
        }
        match &mut self.stepper {
            Stepper::CartPole(env) => single!(env),
            Stepper::Pendulum(env) => single!(env),
            Stepper::Acrobot(env) => single!(env),
            Stepper::MountainCar(env) => single!(env),
            Stepper::MountainCarContinuous(env) => single!(env),
            Stepper::Made(env) => single!(env.as_mut()),
            Stepper::Interleaved(envs) => {
                for _ in 0..env_steps / NUM_ENVS {
                    let start = (*k * NUM_ENVS) & (TABLE - 1);
                    for (j, env) in envs.iter_mut().enumerate() {
                        let action = table.action(start + j);
                        run_single(env.as_mut(), |_| action, &mut 0, 1);
                    }
                    *k += 1;
                }
            }
            Stepper::Vec(venv) => {
                for _ in 0..env_steps / NUM_ENVS {
                    black_box(venv.step(table.batch(*k)).expect("step"));
                    *k += 1;
                }
            }
        }
    }
}

fn throughput(c: &mut Criterion) {
    let actions = Actions::new();
    // Counted in env-steps, so the vector env's numbers compare directly with the single env's.
    let mut group = c.benchmark_group("env_steps");
    group.throughput(Throughput::Elements(STEPS as u64));
    for id in ENV_IDS {
        for kind in ["raw", "make", "make8", "vec8"] {
            let mut case = Case::new(id, kind).expect("known case");
            group.bench_function(format!("{id}/{kind}"), |b| b.iter(|| case.run(&actions, STEPS)));
        }
    }
    group.finish();
}

/// The steps callgrind counts (see the crate doc); never inlined, so that it has a symbol.
#[inline(never)]
fn measured_steps(case: &mut Case, actions: &Actions, env_steps: usize) {
    case.run(actions, env_steps);
}

criterion_group!(benches, throughput);

fn main() {
    if let Ok(name) = std::env::var("RLPG_BENCH_CASE") {
        let steps =
            std::env::var("RLPG_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(800_000);
        let (id, kind) = name.split_once('/').unwrap_or((&name, ""));
        let Some(id) = ENV_IDS.into_iter().find(|known| *known == id) else {
            panic!("unknown env in RLPG_BENCH_CASE={name}; known: {ENV_IDS:?}")
        };
        let Some(mut case) = Case::new(id, kind) else {
            panic!("unknown kind in RLPG_BENCH_CASE={name}; known: raw, make, vec8")
        };
        let actions = Actions::new();
        // Warm-up outside the counted function: first-touch page faults, lazy binding.
        case.run(&actions, 8 * NUM_ENVS);
        measured_steps(&mut case, &actions, steps);
        println!("{name}: {steps} env-steps");
        return;
    }
    if let Ok(rounds) = std::env::var("RLPG_BENCH_COMPARE") {
        let rounds = rounds.parse().unwrap_or(20);
        let steps =
            std::env::var("RLPG_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(400_000);
        compare(rounds, steps);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

/// Times every case in `rounds` interleaved rounds of `steps` env-steps (see the crate doc).
fn compare(rounds: usize, steps: usize) {
    let actions = Actions::new();
    for id in ENV_IDS {
        let kinds = ["raw", "make", "make8", "vec8"];
        let mut cases: Vec<Case> =
            kinds.iter().map(|kind| Case::new(id, kind).expect("known case")).collect();
        let mut times = vec![Vec::with_capacity(rounds); kinds.len()];
        for case in &mut cases {
            case.run(&actions, steps);
        }
        for _ in 0..rounds {
            for (case, times) in cases.iter_mut().zip(&mut times) {
                let start = std::time::Instant::now();
                case.run(&actions, steps);
                times.push(start.elapsed().as_secs_f64() * 1e9 / steps as f64);
            }
        }
        let mut best = Vec::new();
        for (kind, times) in kinds.iter().zip(&mut times) {
            times.sort_by(f64::total_cmp);
            println!(
                "{id}/{kind}: fastest {:.2} ns, median {:.2} ns per env-step",
                times[0],
                times[times.len() / 2]
            );
            best.push(times[0]);
        }
        println!(
            "{id}: vec8 overhead per env-step {:+.1}% over make, {:+.1}% over raw, {:+.1}% over \
             make8",
            (best[3] / best[1] - 1.0) * 100.0,
            (best[3] / best[0] - 1.0) * 100.0,
            (best[3] / best[2] - 1.0) * 100.0
        );
    }
}
