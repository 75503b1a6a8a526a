//! [`StepPool`]: a persistent pool of threads that runs the tasks of one job (one env each) and
//! returns when all of them are done, for [`crate::VecEnv`]'s threaded stepping.
//!
//! Design, for a job every ~50 µs or less:
//!
//! * **Persistent threads**: spawning a thread costs tens of microseconds, as much as a step.
//!   The pool's threads live as long as the vector env.
//! * **The calling thread works too**: with `threads = 2` there is one pool thread; the caller
//!   steps envs beside it instead of sleeping while it waits.
//! * **Tasks are claimed one at a time** from a shared counter, so a slow env (one step 100x
//!   longer than the others) delays only the thread that claimed it: the others take the
//!   remaining envs.
//! * **Waiting**: an idle pool thread spins for [`SPIN`] (the next step usually comes sooner,
//!   after the agent acts) and then sleeps on a condition variable; publishing a job wakes
//!   sleepers only when there are any.
//!
//! The job's state is one `u64`: a generation number (which job) and the index of the next
//! task to claim. A thread claims a task with a compare-and-swap that names the generation, so
//! a thread that arrives late (after the job finished, or during the next one) can never claim
//! a task of a job it has not read, and the caller never waits for a thread that has nothing to
//! do. Results are written by the tasks to disjoint places chosen by their index; which thread
//! ran a task never shows in them.

use std::any::Any;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle pool thread looks for the next job before it goes to sleep.
const SPIN: Duration = Duration::from_micros(200);

/// The most tasks one job may have (the task index is 24 bits of the job state).
pub(crate) const MAX_TASKS: usize = (1 << TASK_BITS) - 1;

const TASK_BITS: u32 = 24;
const TASK_MASK: u64 = (1 << TASK_BITS) - 1;

/// The job being run: the task function and the number of tasks. Written by the caller only
/// between jobs; read by a pool thread only after it claimed a task of the job (see
/// [`StepPool::run`] for why that read is ordered after the write).
type TaskFn<'a> = &'a (dyn Fn(usize) + Sync);

struct Shared {
    /// `generation << TASK_BITS | next task index` of the current job (generation 0: none yet;
    /// an odd generation with index [`TASK_MASK`]: closed, between two jobs).
    state: AtomicU64,
    /// The current job's number of tasks (written before the generation is published).
    tasks: AtomicUsize,
    /// Tasks of the current job that have finished.
    done: AtomicUsize,
    /// The current job's task function; see [`TaskFn`].
    job: UnsafeCell<Option<TaskFn<'static>>>,
    /// A task's panic, handed back to the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Pool threads asleep on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    shutdown: AtomicBool,
}

// SAFETY: `job` is the only field that is not Sync by itself. It is written only by the thread
// that owns the pool, between jobs, and read by pool threads only after claiming a task of the
// job it holds (see `StepPool::run`), so reads and writes never overlap.
unsafe impl Sync for Shared {}

impl Shared {
    /// Claims and runs tasks of the job of generation `generation` until none is left to
    /// claim; returns whether any was claimed.
    fn work(&self, generation: u64) -> bool {
        let mut worked = false;
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state >> TASK_BITS != generation {
                return worked;
            }
            let index = (state & TASK_MASK) as usize;
            if index >= self.tasks.load(Ordering::Acquire) {
                return worked;
            }
            match self.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    worked = true;
                    // SAFETY: the claim succeeded, so the job of `generation` has an unfinished
                    // task (this one) and the caller is still inside `run`: `job` holds its task
                    // function, written before the generation was published (Release) and read
                    // here after the claim (Acquire).
                    let job = unsafe { *self.job.get() };
                    if let Some(job) = job {
                        let result =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(index)));
                        if let Err(payload) = result {
                            let mut slot = self.panic.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(payload);
                        }
                    }
                    self.done.fetch_add(1, Ordering::Release);
                    state = self.state.load(Ordering::Acquire);
                }
                Err(current) => state = current,
            }
        }
    }
}

/// A persistent pool of `threads - 1` threads which, with the calling thread, runs the tasks of
/// one job at a time ([`StepPool::run`]). Dropping it stops and joins its threads.
pub(crate) struct StepPool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    generation: u64,
}

impl std::fmt::Debug for StepPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepPool").field("threads", &self.threads()).finish_non_exhaustive()
    }
}

impl StepPool {
    /// A pool that runs jobs on `threads` threads, the caller's included (`threads >= 2`).
    /// Fails if the operating system refuses a thread.
    pub(crate) fn new(threads: usize, name: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            tasks: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            panic: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let mut pool = Self { shared, handles: Vec::new(), generation: 0 };
        for i in 1..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker(&shared))?;
            // On an error, `pool` is dropped and stops the threads already started.
            pool.handles.push(handle);
        }
        Ok(pool)
    }

    /// Threads that run a job, the caller's included.
    pub(crate) fn threads(&self) -> usize {
        self.handles.len() + 1
    }

    /// Runs `task(i)` for every `i` in `0..tasks`, each exactly once, on the pool's threads and
    /// the caller's, and returns when all have finished. A task that panics does not stop the
    /// others; the first panic is resumed here once every task has finished.
    ///
    /// # Panics
    /// If `tasks > MAX_TASKS` (the vector env refuses such sizes first).
    pub(crate) fn run(&mut self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        assert!(tasks <= MAX_TASKS, "a job of {tasks} tasks (at most {MAX_TASKS})");
        if tasks == 0 {
            return;
        }
        let shared = &*self.shared;
        // SAFETY (lifetime): the reference is erased to 'static only while this call runs: it is
        // cleared below after every task has finished, and pool threads call it only after
        // claiming a task of this job (see `Shared::work`).
        let erased: TaskFn<'static> = unsafe { std::mem::transmute::<TaskFn<'_>, _>(task) };
        // Two generations per job. The odd one closes the previous job before anything of the
        // next is written: a pool thread that still holds the previous job's state (every task
        // claimed) and then reads the next job's larger `tasks` would otherwise win its
        // compare-and-swap on the unchanged state and run a task of the next job twice. After
        // this store every such compare-and-swap fails (the state changed), and a thread that
        // reads the new `tasks` (Acquire, paired with the Release below) also sees this store.
        self.generation += 2;
        let generation = self.generation;
        shared.state.store((generation - 1) << TASK_BITS | TASK_MASK, Ordering::SeqCst);
        // SAFETY (exclusive write): no job is running (the previous `run` waited for all its
        // tasks) and no task can be claimed now (the state above is closed), so no pool thread
        // reads `job`: a thread reads it only after claiming a task.
        unsafe { *shared.job.get() = Some(erased) };
        shared.tasks.store(tasks, Ordering::Release);
        shared.done.store(0, Ordering::Relaxed);
        // Publishes the job (Release: `job`, `tasks` and `done` above are visible to a thread
        // that reads this generation). SeqCst pairs with the sleepers' check in `worker`.
        shared.state.store(generation << TASK_BITS, Ordering::SeqCst);
        if shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = shared.lock.lock().unwrap_or_else(|p| p.into_inner());
            shared.wake.notify_all();
        }
        shared.work(generation);
        // The last tasks may still run on pool threads: wait for them (at most one task each).
        let mut spins = 0u32;
        while shared.done.load(Ordering::Acquire) < tasks {
            if spins < 1_000 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: every task has finished (`done == tasks`, Acquire), and a late pool thread can
        // no longer claim one (all `tasks` indices are claimed), so nothing reads `job` now.
        unsafe { *shared.job.get() = None };
        let panic = shared.panic.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
    }
}

/// A pool thread: waits for each new job, works on it, and waits again, until shutdown.
fn worker(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        // Spin for the next job, then sleep until one is published.
        let start = Instant::now();
        let mut generation = shared.state.load(Ordering::Acquire) >> TASK_BITS;
        while generation == seen && !shared.shutdown.load(Ordering::Relaxed) {
            if start.elapsed() > SPIN {
                let mut guard = shared.lock.lock().unwrap_or_else(|p| p.into_inner());
                shared.sleepers.fetch_add(1, Ordering::SeqCst);
                // Checked again after announcing the sleep (SeqCst): either `run` sees the
                // sleeper and notifies under the lock, or this load sees the new generation.
                while shared.state.load(Ordering::SeqCst) >> TASK_BITS == seen
                    && !shared.shutdown.load(Ordering::SeqCst)
                {
                    guard = shared.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
                }
                shared.sleepers.fetch_sub(1, Ordering::SeqCst);
                drop(guard);
            } else {
                std::hint::spin_loop();
            }
            generation = shared.state.load(Ordering::Acquire) >> TASK_BITS;
        }
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        seen = generation;
        shared.work(generation);
    }
}

impl Drop for StepPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = self.shared.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.wake.notify_all();
        }
        for handle in self.handles.drain(..) {
            // A pool thread never panics (tasks' panics are caught), so there is nothing to
            // report from `join`.
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once_per_job() {
        let mut pool = StepPool::new(3, "test").expect("threads");
        assert_eq!(pool.threads(), 3);
        let counts: Vec<AtomicUsize> = (0..37).map(|_| AtomicUsize::new(0)).collect();
        // Jobs of changing sizes back to back: a thread late from one job must never claim a
        // task of the next (a task run twice shows in its count).
        for job in 0..2_000 {
            let tasks = job % 38;
            pool.run(tasks, &|i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
            if job % 500 == 0 {
                // Let the pool threads fall asleep: the next job must wake them.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let expected: Vec<usize> =
            (0..37).map(|i| (0..2_000).filter(|job| job % 38 > i).count()).collect();
        let got: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_panicking_task_is_resumed_after_the_others_and_the_pool_still_works() {
        let mut pool = StepPool::new(2, "test").expect("threads");
        let ran = AtomicUsize::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(8, &|i| {
                ran.fetch_add(1, Ordering::Relaxed);
                assert!(i != 5, "task 5 fails");
            })
        }));
        let payload = result.expect_err("the panic must reach the caller");
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        assert!(message.contains("task 5 fails"), "{message}");
        assert_eq!(ran.load(Ordering::Relaxed), 8, "the other tasks still ran");
        let again = AtomicUsize::new(0);
        pool.run(4, &|_| {
            again.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(again.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn dropping_the_pool_ends_its_threads() {
        let pool = StepPool::new(3, "test").expect("threads");
        // Each pool thread holds the shared state until it returns.
        let shared = Arc::downgrade(&pool.shared);
        drop(pool);
        assert!(shared.upgrade().is_none(), "a pool thread outlived the pool");
    }

    #[test]
    fn a_slow_task_does_not_hold_back_the_others() {
        let mut pool = StepPool::new(2, "test").expect("threads");
        let order = Mutex::new(Vec::new());
        pool.run(6, &|i| {
            if i == 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
            order.lock().expect("lock").push(i);
        });
        let order = order.into_inner().expect("lock");
        // Task 0 is claimed first and sleeps; the other thread runs every other task meanwhile.
        assert_eq!(order.last(), Some(&0), "{order:?}");
        assert_eq!(order.len(), 6);
    }
}
