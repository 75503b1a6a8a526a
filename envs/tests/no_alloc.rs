//! The hot path allocates nothing: stepping a `VecEnv` (with autoreset and observation
//! normalisation) and the built-in environments never touches the heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rlpg_envs::{Action, Env, VecActions, VecEnv, make};

/// Counts the allocations made by the current thread while `COUNTING` is set.
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: forwards the caller's layout unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Number of heap allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn stepping_allocates_nothing() {
    for id in ["CartPole-v1", "Pendulum-v1"] {
        let mut venv =
            VecEnv::new((0..4).map(|_| make(id).expect("registered")).collect()).expect("venv");
        venv.enable_obs_normalization(10.0);
        venv.reset(Some(0)).expect("reset");
        let mut single = make(id).expect("registered");
        single.reset(Some(0)).expect("reset");
        let mut episodes = 0;
        let count = allocations(|| {
            for t in 0..2_000 {
                let discrete = [t % 2, 1, 0, (t / 7) % 2];
                let torques = [1.0, -1.0, 0.5, 0.0];
                let actions = if id == "CartPole-v1" {
                    VecActions::Discrete(&discrete)
                } else {
                    VecActions::Continuous(&torques)
                };
                episodes += venv.step(actions).expect("step").episodes.len();
                let action = if id == "CartPole-v1" {
                    Action::Discrete(t % 2)
                } else {
                    Action::Continuous(&torques[..1])
                };
                if single.step(action).expect("step").done() {
                    single.reset(None).expect("reset");
                }
            }
        });
        assert!(episodes > 4, "{id}: only {episodes} autoresets exercised");
        assert_eq!(count, 0, "{id}: 2000 steps made {count} heap allocations");
    }
}
