//! How close the pathwise agent's SAC update runs to the machine's limit: the update at
//! Stable-Baselines3's sizes (256×256 ReLU actor and twin critics, batch 256, Pendulum's 3
//! observations and 1 action), against single-core fp32 sgemm at the update's own matrix shapes.
//!
//! Nearly all of an update's arithmetic is 16 products of 256×256 by 256×256 matrices (see
//! [`update_flops`]); the rest is thin products against the 3- or 4-wide inputs and the 1- or
//! 2-wide outputs, elementwise work, and the optimizers. So the fastest an update can run on one
//! core is its FLOPs at the core's sgemm rate on those products. Criterion reports every case
//! as a throughput in elements per second, where an element is one floating-point operation: the
//! `sgemm/*` cases' `Gelem/s` are the core's GFLOP/s, `update/*`'s the update's achieved rate
//! counted in the matrix products' FLOPs. Their ratio is the fraction of peak. The update is
//! timed on both backends (the agent's `backend` setting): `update/sac_sb3_sizes_kernel`, what
//! `backend = "auto"` runs on the CPU, and `update/sac_sb3_sizes_libtorch`, the same update by
//! libtorch with autograd.
//!
//! Run (one libtorch thread, as every peer number):
//!
//! ```text
//! cargo bench -p rlpg-agents --bench sac_update -- --warm-up-time 1 --measurement-time 5
//! ```
//!
//! On a shared machine the fastest of interleaved rounds is the least disturbed estimate: with
//! `RLPG_BENCH_ROOFLINE=<rounds>` the binary skips criterion, times each case in `rounds`
//! interleaved rounds of about 0.3 s, and prints a table of the fastest and median rounds with
//! the update's fraction of the sgemm rate. Rates are computed from the thread's on-CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), which other processes' load does not stretch; the fastest wall
//! time is printed beside it.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group};
use rlpg_agents::{
    Actions, Activation, Agent, BackendChoice, BackendKind, Pathwise, PathwiseConfig, Transition,
};
use rlpg_envs::{BoxSpace, Space};
use tch::{Device, Kind, Tensor};

/// Minibatch rows (SB3's `batch_size`).
const BATCH: i64 = 256;
/// Hidden widths of the actor and each critic (SB3's `net_arch` for SAC).
const HIDDEN: i64 = 256;
/// Pendulum-v1's observation and action widths.
const OBS: i64 = 3;
const ACT: i64 = 1;

/// FLOPs of one `[m, k] · [k, n]` product.
fn mm_flops(m: i64, k: i64, n: i64) -> u64 {
    (2 * m * k * n) as u64
}

/// FLOPs of the matrix products of one SAC update (policy delay 1, autotuned α) with an MLP
/// actor `obs → HIDDEN → HIDDEN → 2·act` (mean and log-std) and twin MLP critics
/// `obs + act → HIDDEN → HIDDEN → 1`, at `BATCH` rows. Counted as autograd runs them: a layer's
/// forward is one product; its backward is one product for the weight gradient (when the
/// weights are trained) and one for the input gradient (when anything upstream needs it).
fn update_flops() -> u64 {
    let actor = [OBS, HIDDEN, HIDDEN, 2 * ACT];
    let critic = [OBS + ACT, HIDDEN, HIDDEN, 1];
    let layers = |widths: &[i64]| -> Vec<u64> {
        widths.windows(2).map(|w| mm_flops(BATCH, w[0], w[1])).collect()
    };
    let forward = |widths: &[i64]| layers(widths).iter().sum::<u64>();
    // Weight gradients of every layer, input gradients of all but the first (the data).
    let backward_trained = |widths: &[i64]| {
        let l = layers(widths);
        l.iter().sum::<u64>() + l[1..].iter().sum::<u64>()
    };
    // Input gradients only, down to the input (the actor loss through a fixed critic).
    let backward_to_input = forward;
    let target = forward(&actor) + 2 * forward(&critic);
    let critic_step = 2 * (forward(&critic) + backward_trained(&critic));
    let actor_step = forward(&actor)
        + 2 * (forward(&critic) + backward_to_input(&critic))
        + backward_trained(&actor);
    target + critic_step + actor_step
}

/// A SAC agent at SB3's sizes on `backend` with a replay buffer holding 2,000 Pendulum-like
/// transitions, so that [`Pathwise::update`] has minibatches to draw.
fn sac_agent(backend: BackendChoice) -> Pathwise {
    tch::manual_seed(0);
    // The update of configs/pathwise_pendulum_sb3.toml (this crate cannot read rlpg's configs).
    let cfg = PathwiseConfig {
        actor_hidden: vec![HIDDEN as usize; 2],
        critic_hidden: vec![HIDDEN as usize; 2],
        activation: Activation::Relu,
        batch_size: BATCH as usize,
        // SB3's SAC: the actor, the temperature and the targets move on every update (the
        // default delay of 3 would time a third of the actor steps that `update_flops` counts).
        policy_delay: 1,
        actor_learning_rate: 1e-3,
        critic_learning_rate: 1e-3,
        tau: 0.005,
        learning_starts: 1_000_000,
        buffer_size: 1_000_000,
        backend,
        ..PathwiseConfig::default()
    };
    let obs_space = Space::Box(BoxSpace::new(vec![-1.0, -1.0, -8.0], vec![1.0, 1.0, 8.0]));
    let act_space = Space::Box(BoxSpace::uniform(1, -2.0, 2.0));
    let mut agent = Pathwise::new(&cfg, &obs_space, &act_space, 1).expect("agent");
    for i in 0..2000 {
        let t = i as f32 * 0.01;
        let obs = [t.cos(), t.sin(), (t * 3.0).sin() * 8.0];
        let next = [(t + 0.05).cos(), (t + 0.05).sin(), (t * 3.0 + 0.1).sin() * 8.0];
        let actions = Actions::Floats { values: vec![(t * 7.0).sin() * 2.0], width: 1 };
        agent
            .observe(&Transition {
                obs: &obs,
                actions: &actions,
                rewards: &[-f64::from(t.sin().abs()) * 10.0],
                terminated: &[false],
                truncated: &[i % 200 == 199],
                next_obs: &next,
                masks: None,
                next_masks: None,
            })
            .expect("observe");
    }
    agent
}

/// What a timed case measures, for the summary line of the interleaved table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// sgemm at the update's hot 256-square shape, in one of autograd's layouts.
    HotShape,
    /// sgemm on a large square: the core's peak.
    Peak,
    /// The kernel's own matrix product (`rlpg_kernel::gemm`) at the hot shape.
    KernelGemm,
    /// The SAC update on the kernel (what `backend = "auto"` runs on the CPU).
    Update,
    /// The same update on libtorch with autograd (`backend = "libtorch"`).
    LibtorchUpdate,
}

/// One timed case: a name, what it measures, its FLOPs per call, and the call.
struct Case {
    name: String,
    role: Role,
    flops: u64,
    run: Box<dyn FnMut()>,
}

/// The sgemm cases at the update's hot shape in the three layouts autograd uses (forward
/// `x·W`, input gradient `g·Wᵀ`, weight gradient `xᵀ·g`), and a large square product for the
/// core's peak.
fn sgemm_cases() -> Vec<Case> {
    let opts = (Kind::Float, Device::Cpu);
    let mut cases = Vec::new();
    for (layout, n) in [("nn", BATCH), ("nt", BATCH), ("tn", BATCH), ("nn", 1024)] {
        let a = Tensor::randn([n, n], opts);
        let b = Tensor::randn([n, n], opts);
        let (a, b) = match layout {
            "nt" => (a, b.tr()),
            "tn" => (a.tr(), b),
            _ => (a, b),
        };
        cases.push(Case {
            name: format!("sgemm/{n}x{n}x{n}_{layout}"),
            role: if n == BATCH { Role::HotShape } else { Role::Peak },
            flops: mm_flops(n, n, n),
            run: Box::new(move || {
                let _ = black_box(a.mm(&b));
            }),
        });
    }
    // The kernel's product on plain memory, in the same three layouts.
    use rlpg_kernel::gemm::{View, gemm};
    let n = BATCH as usize;
    for layout in ["nn", "nt", "tn"] {
        let a: Vec<f32> = (0..n * n).map(|i| ((i * 7) % 13) as f32 / 13.0 - 0.5).collect();
        let b = a.clone();
        let mut c = vec![0.0f32; n * n];
        let (av, bv) = match layout {
            "nt" => (View::dense(n, n), View::dense(n, n).t()),
            "tn" => (View::dense(n, n).t(), View::dense(n, n)),
            _ => (View::dense(n, n), View::dense(n, n)),
        };
        cases.push(Case {
            name: format!("kernel_gemm/{n}x{n}x{n}_{layout}"),
            role: Role::KernelGemm,
            flops: mm_flops(BATCH, BATCH, BATCH),
            run: Box::new(move || {
                gemm(&a, av, &b, bv, 0.0, &mut c, View::dense(n, n));
                black_box(&c);
            }),
        });
    }
    cases
}

/// The update on `backend`, as training runs it.
fn update_case(backend: BackendKind) -> Case {
    let (choice, role) = match backend {
        BackendKind::Kernel => (BackendChoice::Kernel, Role::Update),
        BackendKind::Libtorch => (BackendChoice::Libtorch, Role::LibtorchUpdate),
    };
    let mut agent = sac_agent(choice);
    assert_eq!(agent.backend(), backend, "the agent runs on the backend it was asked for");
    Case {
        name: format!("update/sac_sb3_sizes_{backend}"),
        role,
        flops: update_flops(),
        run: Box::new(move || agent.update().expect("update")),
    }
}

/// Every case: the sgemm cases, then the update on the kernel, then on libtorch.
fn cases() -> Vec<Case> {
    let updates = [update_case(BackendKind::Kernel), update_case(BackendKind::Libtorch)];
    sgemm_cases().into_iter().chain(updates).collect()
}

fn roofline(c: &mut Criterion) {
    tch::set_num_threads(1);
    let mut group = c.benchmark_group("roofline");
    for mut case in cases() {
        group.throughput(Throughput::Elements(case.flops));
        group.bench_function(case.name.as_str(), |b| b.iter(&mut case.run));
    }
    group.finish();
}

criterion_group!(benches, roofline);

/// Seconds this thread has run on a CPU: unlike the wall clock, not stretched while other
/// processes hold the core (cache sharing still shows).
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec for the call to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// The interleaved-rounds table (see the crate doc).
fn compare(rounds: usize) {
    tch::set_num_threads(1);
    let mut cases = cases();
    // Calls per round: about 0.3 s each, from one warm-up timing.
    let calls: Vec<usize> = cases
        .iter_mut()
        .map(|case| {
            let start = Instant::now();
            for _ in 0..5 {
                (case.run)();
            }
            let per_call = start.elapsed().as_secs_f64() / 5.0;
            ((0.3 / per_call) as usize).max(3)
        })
        .collect();
    // Per case and round: (on-CPU seconds, wall seconds) per call.
    let mut seconds: Vec<Vec<(f64, f64)>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for ((case, &n), times) in cases.iter_mut().zip(&calls).zip(&mut seconds) {
            let (cpu, wall) = (cpu_seconds(), Instant::now());
            for _ in 0..n {
                (case.run)();
            }
            let per_call = |s: f64| s / n as f64;
            times.push((per_call(cpu_seconds() - cpu), per_call(wall.elapsed().as_secs_f64())));
        }
    }
    println!(
        "| case | fastest round, on CPU | median round, on CPU | fastest round, wall | GFLOP/s (fastest, on CPU) |"
    );
    println!("|---|---|---|---|---|");
    let mut best_rate = Vec::new();
    for (case, times) in cases.iter().zip(&mut seconds) {
        times.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (fastest, median) = (times[0].0, times[times.len() / 2].0);
        let wall = times.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
        let rate = case.flops as f64 / fastest / 1e9;
        best_rate.push(rate);
        println!(
            "| {} | {:.1} µs | {:.1} µs | {:.1} µs | {rate:.1} |",
            case.name,
            fastest * 1e6,
            median * 1e6,
            wall * 1e6
        );
    }
    let best_of = |role: Role| {
        let rates = cases.iter().zip(&best_rate).filter(|(case, _)| case.role == role);
        rates.map(|(_, &rate)| rate).fold(0.0, f64::max)
    };
    let (hot, peak) = (best_of(Role::HotShape), best_of(Role::Peak));
    for (role, backend) in [(Role::Update, "kernel"), (Role::LibtorchUpdate, "libtorch")] {
        let update_rate = best_of(role);
        let update = cases.iter().position(|case| case.role == role).expect("an update case");
        println!(
            "\nupdate on {backend}: {:.1} M FLOPs in matrix products, {:.1} updates/s (fastest \
             round), {update_rate:.1} GFLOP/s = {:.0}% of the best 256-shape sgemm ({hot:.1} \
             GFLOP/s), {:.0}% of the 1024-square peak ({:.1} GFLOP/s)",
            cases[update].flops as f64 / 1e6,
            1.0 / seconds[update][0].0,
            100.0 * update_rate / hot,
            100.0 * update_rate / peak,
            peak,
        );
    }
    println!(
        "\nkernel / libtorch, fastest rounds: {:.2}x",
        best_of(Role::Update) / best_of(Role::LibtorchUpdate)
    );
}

fn main() {
    if let Some(rounds) = std::env::var("RLPG_BENCH_ROOFLINE").ok().and_then(|v| v.parse().ok()) {
        compare(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
