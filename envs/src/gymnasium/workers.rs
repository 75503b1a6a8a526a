//! Gymnasium envs in worker processes (`env_workers`): a [`crate::VecEnv`] whose envs step in
//! a pool of Python processes, so that they run in parallel instead of taking turns at one
//! interpreter lock.
//!
//! * Each worker is the venv's own Python ([`super::python_env`]) running
//!   `worker.py`; it makes a contiguous range of the vector env's envs with
//!   `gymnasium.make(ID, **kwargs)`, exactly as the in-process bridge does, so a seeded run gives
//!   the same results either way.
//! * Commands, actions, observations, rewards, end flags and errors pass through one
//!   shared-memory file (in `/dev/shm` where there is one), mapped by every process, as
//!   Gymnasium's `AsyncVectorEnv` shares its observations; each worker resets its envs whose
//!   episode ended within the same step.
//! * The hand-over is futexes on words of that memory (Linux): one system call wakes every
//!   worker for a batch, and the last worker to finish wakes rlpg, so a batch costs one
//!   wake-up of each process (`worker.py` describes the protocol). A worker that has just
//!   finished keeps reading for the next command for up to 100 µs before it sleeps, while
//!   commands have lately come that soon (rlpg stepping in a tight loop).
//! * A worker that dies is an error naming the env it was stepping and its step; one that does
//!   not answer within the timeout (`env_worker_timeout`) is stopped and reported the same way;
//!   a Python exception is an error quoting it, as in one process. After such an error the pool
//!   is closed: a new vector env starts new workers.
//! * The workers ignore Ctrl-C (it is for rlpg, which finishes its step and checkpoints), end
//!   when their parent does (`PR_SET_PDEATHSIG`, and they check each second while idle), and are
//!   closed, then killed if they do not exit within a second, when the vector env is dropped.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::core::{Action, Env, EnvError, InfoKey, Observation, Space, Step, StepInfo};
use crate::vec_env::{RemoteEnvs, VecActions, VecEnv};

/// The worker program (run as `python -c`).
const WORKER_SCRIPT: &str = include_str!("worker.py");

/// How long a worker may take to start (import Gymnasium, make its envs) at least, whatever
/// the step timeout.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a closed worker may take to exit before it is killed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often rlpg, waiting for its workers, checks that none has died.
const DEATH_CHECK: Duration = Duration::from_millis(20);

/// Bytes of each worker's error area (a JSON list of its envs' failures; long messages are cut).
const ERROR_BYTES: usize = 64 * 1024;

/// Bytes of a line of the control block: each side writes lines of its own.
const CONTROL_LINE: usize = 64;

/// The commands (`worker.py` has the same numbers).
const STEP: u32 = 1;
const RESET_SEEDED: u32 = 2;
const RESET: u32 = 3;
const CLOSE: u32 = 4;

/// `n` envs `gymnasium.make(ID, **kwargs)` (`id = "gymnasium:<ID>"`) in a vector env stepped by
/// `workers` worker processes (at most one per env), each given `timeout` to answer a step or
/// reset. `like` is such an env made in this process: the workers' envs have its spaces, masks
/// and infos ([`super::GymnasiumEnv::with_info_keys`]).
pub fn worker_vec_env(
    id: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
    like: &dyn Env,
    n: usize,
    workers: usize,
    timeout: Duration,
) -> Result<VecEnv, EnvError> {
    let stand_in = WorkerEnv::like(id, like);
    let pool = WorkerPool::start(id, kwargs, &stand_in, n, workers, timeout)?;
    let stand_ins = (0..n).map(|_| Box::new(stand_in.clone()) as Box<dyn Env + Send>).collect();
    VecEnv::new_remote(stand_ins, Box::new(pool))
}

/// What stands for an env of a worker in the vector env: its id, spaces, masks and infos.
/// Stepping it alone is an error: its vector env steps it, in its worker.
#[derive(Clone)]
pub(super) struct WorkerEnv {
    id: String,
    observation_space: Space,
    action_space: Space,
    masks_actions: bool,
    info_keys: Vec<InfoKey>,
}

impl WorkerEnv {
    /// A stand-in named `id` for envs like `like`.
    pub(super) fn like(id: &str, like: &dyn Env) -> Self {
        Self {
            id: id.to_owned(),
            observation_space: like.observation_space().clone(),
            action_space: like.action_space().clone(),
            masks_actions: like.masks_actions(),
            info_keys: like.info_keys().to_vec(),
        }
    }

    fn not_here(&self) -> EnvError {
        EnvError::Other {
            env: self.id.clone(),
            message: "this env runs in a worker process and steps only through its vector env"
                .to_owned(),
        }
    }
}

impl Env for WorkerEnv {
    fn id(&self) -> &str {
        &self.id
    }
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }
    fn action_space(&self) -> &Space {
        &self.action_space
    }
    fn runs_python(&self) -> bool {
        true
    }
    fn masks_actions(&self) -> bool {
        self.masks_actions
    }
    fn action_mask(&self, _mask: &mut [bool]) -> Result<(), EnvError> {
        Err(self.not_here())
    }
    fn info_keys(&self) -> &[InfoKey] {
        &self.info_keys
    }
    fn reset(&mut self, _seed: Option<u64>) -> Result<Observation, EnvError> {
        Err(self.not_here())
    }
    fn step(&mut self, _action: Action<'_>) -> Result<Step, EnvError> {
        Err(self.not_here())
    }
}

/// Where each array lives in the shared memory (byte offsets), for `n` envs.
#[derive(Clone, Copy, Debug, serde::Serialize)]
struct Layout {
    act_f32: usize,
    act_i64: usize,
    next_obs: usize,
    reset_obs: usize,
    rewards: usize,
    flags: usize,
    current: usize,
    /// `[n * mask_len]` bytes: each env's mask of the state it acts on next.
    masks: usize,
    /// `[n * infos]` `f64`s: each env's infos of its last step.
    infos: usize,
    /// The control block, lines of [`CONTROL_LINE`] bytes: rlpg's (`command_seq: u32`,
    /// `command: u32`, `seed: u64`), then `finished: u32` (workers done with the command), then
    /// one per worker (`done: u32`, the last command it finished; `error_bytes: u32`).
    control: usize,
    /// `[workers * ERROR_BYTES]`: each worker's errors of its last command.
    errors: usize,
    #[serde(skip)]
    size: usize,
}

impl Layout {
    fn new(
        n: usize,
        (obs_dim, act_dim): (usize, usize),
        (mask_len, infos): (usize, usize),
        workers: usize,
    ) -> Self {
        // Every array starts on a cache line of its own.
        let mut end = 0;
        let mut place = |bytes: usize| {
            let at = end;
            end = (end + bytes).div_ceil(64) * 64;
            at
        };
        let act_f32 = place(n * act_dim.max(1) * 4);
        // One index per env (Discrete), or per component or value (MultiDiscrete, MultiBinary).
        let act_i64 = place(n * act_dim.max(1) * 8);
        let next_obs = place(n * obs_dim * 4);
        let reset_obs = place(n * obs_dim * 4);
        let rewards = place(n * 8);
        let flags = place(n);
        let current = place(workers * 8);
        let masks = place(n * mask_len.max(1));
        let infos = place(n * infos.max(1) * 8);
        let control = place((2 + workers) * CONTROL_LINE);
        let errors = place(workers * ERROR_BYTES);
        Self {
            act_f32,
            act_i64,
            next_obs,
            reset_obs,
            rewards,
            flags,
            current,
            masks,
            infos,
            control,
            errors,
            size: end.max(64),
        }
    }
}

/// A file mapped into this process and every worker. The file is removed once the workers have
/// mapped it (or when this is dropped), so nothing is left behind however the process ends.
struct SharedMemory {
    path: PathBuf,
    ptr: *mut u8,
    size: usize,
    _file: File,
    removed: bool,
}

// SAFETY: the mapping is owned by this value alone; the pool that holds it reads and writes it
// only between two exchanges with the workers (see `WorkerPool::exchange`).
unsafe impl Send for SharedMemory {}

impl SharedMemory {
    fn create(size: usize) -> std::io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let shm = PathBuf::from("/dev/shm");
        let dir = if shm.is_dir() { shm } else { std::env::temp_dir() };
        let path = dir.join(format!(
            "rlpg-gymnasium-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::options().read(true).write(true).create_new(true).open(&path)?;
        let mapped = file.set_len(size as u64).and_then(|()| {
            // SAFETY: a new shared mapping of a file this process opened read-write and sized
            // to `size`; it is unmapped in `drop`.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(ptr.cast::<u8>())
            }
        });
        match mapped {
            Ok(ptr) => Ok(Self { path, ptr, size, _file: file, removed: false }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    fn remove_file(&mut self) {
        if !self.removed {
            self.removed = std::fs::remove_file(&self.path).is_ok();
        }
    }

    /// `len` values of `T` at byte `offset`.
    ///
    /// # Safety
    /// No worker may write the range while the slice lives (between exchanges only), and the
    /// range must be inside the mapping and aligned for `T` (the [`Layout`]'s offsets are).
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice<T>(&self, offset: usize, len: usize) -> &mut [T] {
        assert!(offset + len * size_of::<T>() <= self.size, "outside the shared memory");
        // SAFETY: inside the mapping (checked), aligned (64-byte offsets), and not aliased
        // (the caller's promise).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset).cast::<T>(), len) }
    }

    /// The 32-bit word at byte `offset` (a multiple of 4), which the workers read and write too.
    fn word(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.size, "outside the shared memory");
        // SAFETY: inside the mapping and aligned (checked); every process accesses the word
        // atomically (plain aligned loads and stores, and the kernel's atomic futex operations).
        unsafe { AtomicU32::from_ptr(self.ptr.add(offset).cast::<u32>()) }
    }
}

/// Sleeps while the futex `word` (in memory shared with other processes) holds `expected`,
/// at most `timeout`: until a wake-up, a signal, or at once if it already holds another value.
#[cfg(target_os = "linux")]
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let timeout = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 10^9: fits every `c_long`.
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT on a valid, aligned word of a shared mapping, with a valid timespec;
    // the call only reads them.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &raw const timeout,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every process sleeping on the futex `word`.
#[cfg(target_os = "linux")]
fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned word of a shared mapping.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

// Worker processes need Linux's futexes: `WorkerPool::start` refuses them elsewhere.
#[cfg(not(target_os = "linux"))]
fn futex_wait(_word: &AtomicU32, _expected: u32, timeout: Duration) {
    std::thread::sleep(timeout.min(Duration::from_millis(1)));
}
#[cfg(not(target_os = "linux"))]
fn futex_wake_all(_word: &AtomicU32) {}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `create`, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.size) };
        self.remove_file();
    }
}

/// One worker process and the pipe of its start-up reply.
struct Worker {
    child: Child,
    replies: BufReader<ChildStdout>,
    /// Its envs: `first..first + count` of the vector env.
    first: usize,
    count: usize,
}

/// What a worker answered.
enum Reply {
    Ok,
    /// Errors of its envs, as it reported them.
    Errors(Vec<EnvFailure>),
}

/// An env's failure as a worker reports it.
#[derive(serde::Deserialize)]
struct EnvFailure {
    env: usize,
    during: String,
    kind: String,
    message: String,
}

/// The worker processes of one vector env and their shared memory.
struct WorkerPool {
    id: String,
    workers: Vec<Worker>,
    shm: SharedMemory,
    layout: Layout,
    n: usize,
    obs_dim: usize,
    act_dim: usize,
    action_space: Space,
    /// Flags of each env's action mask (0: no masks).
    mask_len: usize,
    /// Infos each step reports.
    infos: usize,
    timeout: Duration,
    /// The number of the last command (`command_seq`).
    command_seq: u32,
    /// Why the pool stopped working (a worker died or hung), if it did.
    broken: Option<EnvError>,
}

impl WorkerPool {
    fn start(
        id: &str,
        kwargs: &serde_json::Map<String, serde_json::Value>,
        like: &WorkerEnv,
        n: usize,
        workers: usize,
        timeout: Duration,
    ) -> Result<Self, EnvError> {
        let (observation_space, action_space) = (&like.observation_space, &like.action_space);
        let mask_len = if like.masks_actions { action_space.mask_len() } else { 0 };
        let info_names: Vec<&str> = like.info_keys.iter().map(|k| k.name.as_ref()).collect();
        let other = |message: String| EnvError::Other { env: id.to_owned(), message };
        let gym_id = id.strip_prefix(super::ID_PREFIX).unwrap_or(id);
        if !cfg!(target_os = "linux") {
            return Err(other(
                "env_workers needs Linux (the workers hand over through futexes); step the envs \
                 in this process instead (env_workers = 0)"
                    .to_owned(),
            ));
        }
        let python = super::python_env().map_err(other)?;
        // FUTEX_WAKE_OP compares a 12-bit number to the count of finished workers.
        let workers = workers.clamp(1, n.clamp(1, 2048));
        let (obs_dim, act_dim) = (observation_space.flat_dim(), action_space.flat_dim());
        let layout = Layout::new(n, (obs_dim, act_dim), (mask_len, info_names.len()), workers);
        let shm = SharedMemory::create(layout.size)
            .map_err(|e| other(format!("cannot create the workers' shared memory: {e}")))?;
        // No worker is at any env yet.
        // SAFETY: no worker exists yet; the layout holds one slot per worker there.
        unsafe { shm.slice::<i64>(layout.current, workers) }.fill(-1);
        let mut pool = Self {
            id: id.to_owned(),
            workers: Vec::with_capacity(workers),
            shm,
            layout,
            n,
            obs_dim,
            act_dim,
            action_space: action_space.clone(),
            mask_len,
            infos: info_names.len(),
            timeout,
            command_seq: 0,
            broken: None,
        };
        // Workers take equal shares of the envs, the first ones one more when they do not divide.
        let kwargs = serde_json::Value::Object(kwargs.clone()).to_string();
        for w in 0..workers {
            let (first, count) = (w * n / workers, (w + 1) * n / workers - w * n / workers);
            let config = serde_json::json!({
                "gym_id": gym_id,
                "kwargs": kwargs,
                "shm": pool.shm.path,
                "size": layout.size,
                "offsets": layout,
                "num_envs": n,
                "first": first,
                "count": count,
                "obs_dim": obs_dim,
                "act_dim": act_dim,
                "mask_len": mask_len,
                "info_names": info_names,
                "worker": w,
                "workers": workers,
                "parent": std::process::id(),
                "control_line": CONTROL_LINE,
                "error_bytes": ERROR_BYTES,
                "futex": futex_syscall(),
            });
            let mut child = Command::new(&python.python)
                .arg("-c")
                .arg(WORKER_SCRIPT)
                .arg(config.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                // Its own process group: Ctrl-C in a terminal goes to rlpg alone.
                .process_group(0)
                .spawn()
                .map_err(|e| {
                    other(format!(
                        "cannot start a worker process ({} from {}): {e}",
                        python.python.display(),
                        python.origin
                    ))
                })?;
            let Some(replies) = child.stdout.take() else {
                return Err(other("internal error: a worker without its pipe".to_owned()));
            };
            let replies = BufReader::new(replies);
            pool.workers.push(Worker { child, replies, first, count });
        }
        let wait = timeout.max(STARTUP_TIMEOUT);
        for w in 0..workers {
            match pool.reply(w, wait, "starting")? {
                Reply::Ok => {}
                Reply::Errors(failures) => {
                    let message = failures.first().map_or("", |f| f.message.as_str());
                    return Err(other(format!("gymnasium.make failed in a worker: {message}")));
                }
            }
        }
        // Every worker has mapped the file: nothing needs its name any more.
        pool.shm.remove_file();
        Ok(pool)
    }

    /// Worker `w`'s start-up reply, waiting at most `timeout`; a dead or silent worker breaks
    /// the pool and is reported as doing `what`.
    fn reply(&mut self, w: usize, timeout: Duration, what: &str) -> Result<Reply, EnvError> {
        let deadline = Instant::now() + timeout;
        let mut line = String::new();
        loop {
            let worker = &mut self.workers[w];
            if worker.replies.buffer().is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                let mut fd = libc::pollfd {
                    fd: worker.replies.get_ref().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
                // SAFETY: one valid pollfd for the duration of the call.
                let ready = unsafe { libc::poll(&mut fd, 1, ms) };
                if ready == 0 {
                    return Err(self.fail(w, what, Failure::Silent));
                }
                if ready < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(self.fail(w, what, Failure::Io(e)));
                }
            }
            match self.workers[w].replies.read_line(&mut line) {
                Ok(0) => return Err(self.fail(w, what, Failure::Died)),
                Ok(_) if line.ends_with('\n') => break,
                Ok(_) => {}
                Err(e) => return Err(self.fail(w, what, Failure::Io(e))),
            }
        }
        let line = line.trim_end();
        if line == "ok" || line == "ready" {
            return Ok(Reply::Ok);
        }
        let failures = line
            .strip_prefix("err ")
            .and_then(|json| serde_json::from_str::<Vec<EnvFailure>>(json).ok())
            .ok_or_else(|| {
                self.broken_with(EnvError::Other {
                    env: self.id.clone(),
                    message: format!(
                        "worker process {w} answered {line:?}, which rlpg cannot read"
                    ),
                })
            })?;
        Ok(Reply::Errors(failures))
    }

    /// Breaks the pool with `error` and returns it.
    fn broken_with(&mut self, error: EnvError) -> EnvError {
        self.broken = Some(error.clone());
        error
    }

    /// The error for worker `w` that died, fell silent or broke its pipe while doing `what`,
    /// naming the env it was at; the worker is killed and the pool broken.
    fn fail(&mut self, w: usize, what: &str, failure: Failure) -> EnvError {
        // SAFETY: the worker is dead or about to be killed, so nothing writes its slot.
        let current = unsafe { self.shm.slice::<i64>(self.layout.current, self.workers.len()) }[w];
        let worker = &mut self.workers[w];
        let _ = worker.child.kill();
        let status = wait_for(&mut worker.child, CLOSE_TIMEOUT);
        let (first, last) = (worker.first, worker.first + worker.count - 1);
        let pid = worker.child.id();
        let at = match usize::try_from(current) {
            Ok(env) => format!("{what} env {env}"),
            // Between two commands: it died idle, and is found out by the next one.
            Err(_) if what != "starting" => format!("idle, before {what} its envs"),
            Err(_) => what.to_owned(),
        };
        let what_happened = match failure {
            Failure::Died => format!(
                "died ({})",
                status.map_or_else(|| "exit status unknown".to_owned(), describe_status)
            ),
            Failure::Silent => format!(
                "did not answer within {:.0} s (env_worker_timeout), so it was stopped",
                self.timeout.as_secs_f64()
            ),
            Failure::Io(e) => format!("could not be read ({e})"),
        };
        let message = format!(
            "worker process {w} of {} (pid {pid}, envs {first}-{last}) {what_happened} while {at}",
            self.workers.len()
        );
        let error = EnvError::Other { env: self.id.clone(), message };
        let error = match usize::try_from(current) {
            Ok(env) => error.in_vec_env(env),
            Err(_) => error,
        };
        self.broken_with(error)
    }

    /// Has every worker run `command` (with `seed`), then collects their errors. Env failures
    /// are handed to `failed` (the first per worker, in env order); a dead or silent worker is
    /// an error.
    fn exchange(
        &mut self,
        (command, seed): (u32, u64),
        what: &str,
        failed: &mut dyn FnMut(EnvFailure),
    ) -> Result<(), EnvError> {
        if let Some(error) = &self.broken {
            return Err(closed(&self.id, error));
        }
        let seq = self.post(command, seed);
        self.wait_finished(seq, what)?;
        for w in 0..self.workers.len() {
            let line = self.layout.control + (2 + w) * CONTROL_LINE;
            let bytes = self.shm.word(line + 4).load(Ordering::Relaxed) as usize;
            if bytes == 0 {
                continue;
            }
            // SAFETY: between exchanges; the layout holds ERROR_BYTES bytes per worker.
            let text =
                unsafe { self.shm.slice::<u8>(self.layout.errors + w * ERROR_BYTES, ERROR_BYTES) };
            let failures =
                serde_json::from_slice::<Vec<EnvFailure>>(&text[..bytes.min(ERROR_BYTES)])
                    .map_err(|e| {
                        self.broken_with(EnvError::Other {
                            env: self.id.clone(),
                            message: format!(
                                "worker process {w} reported errors rlpg cannot read ({e})"
                            ),
                        })
                    })?;
            failures.into_iter().for_each(&mut *failed);
        }
        Ok(())
    }

    /// Writes `command` (and `seed`) for every worker and wakes them; returns its number.
    fn post(&mut self, command: u32, seed: u64) -> u32 {
        let control = self.layout.control;
        // SAFETY: no worker reads these words before `command_seq` changes below.
        let seed_word = unsafe { self.shm.slice::<u64>(control + 8, 1) };
        seed_word[0] = seed;
        self.shm.word(control + 4).store(command, Ordering::Relaxed);
        self.shm.word(control + CONTROL_LINE).store(0, Ordering::Relaxed);
        self.command_seq = self.command_seq.wrapping_add(1);
        // Release: the actions, command and seed written before are seen by a worker that sees
        // the new number.
        let command_seq = self.shm.word(control);
        command_seq.store(self.command_seq, Ordering::Release);
        futex_wake_all(command_seq);
        self.command_seq
    }

    /// Waits until every worker has finished command `seq`, at most the timeout.
    fn wait_finished(&mut self, seq: u32, what: &str) -> Result<(), EnvError> {
        let deadline = Instant::now() + self.timeout;
        let workers = self.workers.len() as u32;
        loop {
            // Acquire: the workers' results, written before their atomic add, are seen.
            let finished = self.shm.word(self.layout.control + CONTROL_LINE);
            let count = finished.load(Ordering::Acquire);
            if count >= workers {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            futex_wait(finished, count, left.min(DEATH_CHECK));
            if finished.load(Ordering::Acquire) >= workers {
                return Ok(());
            }
            // A dead worker is reported first (one may die after writing `done` but before its
            // add to `finished`), else, past the timeout, the first not done.
            for w in 0..self.workers.len() {
                if matches!(self.workers[w].child.try_wait(), Ok(Some(_)) | Err(_)) {
                    return Err(self.fail(w, what, Failure::Died));
                }
            }
            if Instant::now() >= deadline {
                let done = |w: &usize| {
                    let line = self.layout.control + (2 + w) * CONTROL_LINE;
                    self.shm.word(line).load(Ordering::Acquire) == seq
                };
                let w = (0..self.workers.len()).find(|w| !done(w)).unwrap_or(0);
                return Err(self.fail(w, what, Failure::Silent));
            }
        }
    }

    /// An env's failure as an [`EnvError`], worded as the in-process bridge words it.
    fn env_error(&self, failure: &EnvFailure) -> EnvError {
        let env = self.id.clone();
        let message = match failure.kind.as_str() {
            "output" => {
                return EnvError::InvalidOutput {
                    env,
                    message: format!(
                        "{} returned what does not fit Gymnasium's step tuple, the observation \
                         space ({} values), the action mask ({} flags) or numeric infos: {}",
                        failure.during, self.obs_dim, self.mask_len, failure.message
                    ),
                };
            }
            _ => format!("Python exception in {}: {}", failure.during, failure.message),
        };
        EnvError::Other { env, message }
    }
}

/// The number of the futex system call, for the workers (none where there are no futexes).
fn futex_syscall() -> Option<libc::c_long> {
    #[cfg(target_os = "linux")]
    return Some(libc::SYS_futex);
    #[cfg(not(target_os = "linux"))]
    None
}

/// Why a worker stopped answering.
enum Failure {
    Died,
    Silent,
    Io(std::io::Error),
}

/// The error for using a pool that broke earlier.
fn closed(id: &str, error: &EnvError) -> EnvError {
    EnvError::Other {
        env: id.to_owned(),
        message: format!(
            "the worker processes stopped after an earlier error ({error}); make a new vector env"
        ),
    }
}

/// Waits up to `timeout` for `child` to exit.
fn wait_for(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => return None,
        }
    }
}

/// `exited with code 1`, `killed by signal 11 (SIGSEGV)`.
fn describe_status(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGBUS => " (SIGBUS)",
                _ => "",
            };
            format!("killed by signal {signal}{name}")
        }
        (None, None) => "ended".to_owned(),
    }
}

impl RemoteEnvs for WorkerPool {
    fn workers(&self) -> usize {
        self.workers.len()
    }

    fn reset(
        &mut self,
        seed: Option<u64>,
        obs: &mut [f32],
        masks: &mut [bool],
        errors: &mut [Option<EnvError>],
    ) -> Result<(), EnvError> {
        errors.iter_mut().for_each(|e| *e = None);
        let command = match seed {
            Some(seed) => (RESET_SEEDED, seed),
            None => (RESET, 0),
        };
        let mut failures = Vec::new();
        self.exchange(command, "resetting", &mut |f| failures.push(f))?;
        for failure in failures {
            let error = self.env_error(&failure);
            if let Some(slot) = errors.get_mut(failure.env) {
                *slot = Some(error);
            }
        }
        // SAFETY: between exchanges; the layout holds `n * obs_dim` values there.
        let rows = unsafe { self.shm.slice::<f32>(self.layout.reset_obs, self.n * self.obs_dim) };
        obs.copy_from_slice(rows);
        self.read_masks(masks);
        Ok(())
    }

    fn step(
        &mut self,
        actions: VecActions<'_>,
        lengths: &[usize],
        next_obs: &mut [f32],
        reset_obs: &mut [f32],
        infos: &mut [StepInfo],
        (masks, env_infos): (&mut [bool], &mut [f64]),
        step_errors: &mut [Option<EnvError>],
        reset_errors: &mut [Option<EnvError>],
    ) -> Result<(), EnvError> {
        step_errors.iter_mut().for_each(|e| *e = None);
        reset_errors.iter_mut().for_each(|e| *e = None);
        let (n, act_dim, obs_dim) = (self.n, self.act_dim, self.obs_dim);
        // As in one process, an action outside the space is refused before anything steps.
        for (i, error) in step_errors.iter_mut().enumerate().take(n) {
            let Some(action) = actions.get(i, act_dim) else {
                return Err(EnvError::Other {
                    env: self.id.clone(),
                    message: format!("no action for env {i} of {n}"),
                });
            };
            if !self.action_space.contains(action) {
                *error = Some(EnvError::invalid_action(&self.id, action, &self.action_space));
                return Ok(());
            }
        }
        {
            // SAFETY: between exchanges; the layout holds these lengths.
            let (f32s, i64s) = unsafe {
                (
                    self.shm.slice::<f32>(self.layout.act_f32, n * act_dim.max(1)),
                    self.shm.slice::<i64>(self.layout.act_i64, n * act_dim.max(1)),
                )
            };
            match actions {
                VecActions::Discrete(a) | VecActions::MultiDiscrete(a) => {
                    i64s.iter_mut().zip(a).for_each(|(x, &a)| *x = a as i64);
                }
                VecActions::MultiBinary(a) => {
                    i64s.iter_mut().zip(a).for_each(|(x, &a)| *x = i64::from(a));
                }
                VecActions::Continuous(a) => f32s[..a.len()].copy_from_slice(a),
            }
        }
        let mut failures = Vec::new();
        // A dead or silent worker's error names the env it was at; its step is that env's next.
        self.exchange((STEP, 0), "stepping", &mut |f| failures.push(f))
            .map_err(|e| with_episode_step(e, lengths))?;
        for failure in failures {
            let error = self.env_error(&failure);
            let slots =
                if failure.during == "reset" { &mut *reset_errors } else { &mut *step_errors };
            if let Some(slot) = slots.get_mut(failure.env) {
                *slot = Some(error);
            }
        }
        // SAFETY: between exchanges; the layout holds these lengths.
        let (next, first, rewards, flags) = unsafe {
            (
                self.shm.slice::<f32>(self.layout.next_obs, n * obs_dim),
                self.shm.slice::<f32>(self.layout.reset_obs, n * obs_dim),
                self.shm.slice::<f64>(self.layout.rewards, n),
                self.shm.slice::<u8>(self.layout.flags, n),
            )
        };
        next_obs.copy_from_slice(next);
        for (i, info) in infos.iter_mut().enumerate() {
            let flag = flags[i];
            *info = StepInfo {
                reward: rewards[i],
                terminated: flag & 1 != 0,
                truncated: flag & 2 != 0,
            };
            if info.done() {
                let row = i * obs_dim..(i + 1) * obs_dim;
                reset_obs[row.clone()].copy_from_slice(&first[row]);
            }
        }
        self.read_masks(masks);
        if self.infos > 0 {
            // SAFETY: between exchanges; the layout holds `n * infos` values there.
            env_infos.copy_from_slice(unsafe {
                self.shm.slice::<f64>(self.layout.infos, n * self.infos)
            });
        }
        Ok(())
    }
}

impl WorkerPool {
    /// The masks the workers wrote (of the states to act on next) into `masks`.
    fn read_masks(&self, masks: &mut [bool]) {
        if self.mask_len == 0 {
            return;
        }
        // SAFETY: between exchanges; the layout holds `n * mask_len` bytes there.
        let bytes = unsafe { self.shm.slice::<u8>(self.layout.masks, self.n * self.mask_len) };
        for (flag, &byte) in masks.iter_mut().zip(bytes.iter()) {
            *flag = byte != 0;
        }
    }
}

/// `error` (about env `i` of a dead or silent worker) with the step of env `i`'s episode added.
fn with_episode_step(error: EnvError, lengths: &[usize]) -> EnvError {
    match error {
        EnvError::InVecEnv { index, source } => {
            let step = lengths.get(index).map_or(0, |l| l + 1);
            let source = match *source {
                EnvError::Other { env, message } => EnvError::Other {
                    env,
                    message: format!("{message} (step {step} of its episode)"),
                },
                other => other,
            };
            EnvError::InVecEnv { index, source: Box::new(source) }
        }
        other => other,
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        // A worker that already exited is not waiting: nothing to report.
        self.post(CLOSE, 0);
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        for worker in &mut self.workers {
            let left = deadline.saturating_duration_since(Instant::now());
            if wait_for(&mut worker.child, left).is_none() {
                let _ = worker.child.kill();
                let _ = worker.child.wait();
            }
        }
    }
}
