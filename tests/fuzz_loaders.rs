//! The loaders that face files rlpg may not have written, fed corrupt inputs for a fixed budget:
//! an export directory (`rlpg_policy::Policy::load`, and `rlpg::Policy::load` on it), a
//! checkpoint (`read_meta`, `Checkpoint::read`, `rlpg eval`'s evaluation, `rlpg::Policy::load`,
//! resuming a run), TensorBoard event files (`read_scalars`, `rlpg plot`'s aggregation, the trim
//! a resume does) and config files (`Config::load`, a run's `config.toml`, `--set`).
//!
//! Each input is a valid file of the kind (from short training runs made here, or the presets)
//! damaged the way files are damaged or forged: cut short, bits flipped, bytes overwritten with
//! extreme values, chunks deleted or repeated; and, past the checksums and length fields that
//! catch those, structure-aware edits that keep the file well-formed: a leaf of the JSON header
//! or metadata replaced with an absurd value (huge or negative sizes and shapes, wrong types,
//! empty and oversized arrays), a TOML value replaced, a tensor reshaped or retyped with its
//! checksum recomputed, an event record rewritten with valid CRCs. The mutations know nothing of
//! a format's fields, only of its framing, so they follow the formats as they grow.
//!
//! What counts as a bug: a panic, an input that takes longer than [`TIME_LIMIT`], or one
//! allocation (Rust's allocator; libtorch's own are not seen) larger than [`ALLOCATION_LIMIT`]
//! plus 16 times the input's size. A clean error or a successful load are both fine. Each input
//! runs on its own thread, so a hang or a panic is reported with the input that caused it.
//!
//! Budget: [`inputs`] per target (the default below, or `RLPG_FUZZ_INPUTS=N` for a longer run);
//! inputs are derived from a fixed seed (`RLPG_FUZZ_SEED` changes it), so a failure reproduces.
//! Each target prints how many inputs it tried and how many loaded, failed cleanly or were bugs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rlpg::checkpoint::{Checkpoint, checkpoint_dir, read_meta, step_checkpoints};
use rlpg::run::{EnvSource, evaluate_checkpoint, train};
use rlpg::{AgentKind, Config, Override};
use serde_json::Value;

mod common;
use common::{Scratch, copy_dir};

/// The longest one input may take (a loaded CI machine included).
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// The largest single allocation an input may cause, beyond 16 times its own size.
const ALLOCATION_LIMIT: usize = 256 << 20;

// ---------------------------------------------------------------------------------------------
// The allocation meter: the largest single allocation made by each thread since it started.

struct Meter;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the allocator also runs while a thread's locals are being destroyed.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is passed on to the system allocator unchanged; the meter only records
// sizes in a thread-local `Cell`, which does not allocate.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static METER: Meter = Meter;

// ---------------------------------------------------------------------------------------------
// Inputs: a small generator and the mutations.

/// SplitMix64: small, fast and the same everywhere, so an input is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Integers that break size arithmetic: zero, one, signed and unsigned limits, powers of two.
const EXTREME_INTS: &[i128] = &[
    0,
    1,
    -1,
    2,
    255,
    65_536,
    i32::MAX as i128,
    1 << 31,
    1 << 32,
    (1 << 32) + 1,
    1 << 40,
    1 << 53,
    i64::MAX as i128,
    i64::MIN as i128,
    u64::MAX as i128,
    (u64::MAX / 4 + 1) as i128,
];

/// 1-3 byte-level edits of `bytes`, described.
fn mutate_bytes(rng: &mut Rng, bytes: &[u8]) -> (Vec<u8>, String) {
    let mut out = bytes.to_vec();
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let len = out.len();
        match rng.below(8) {
            0 => {
                let at = rng.below(len + 1);
                out.truncate(at);
                what.push(format!("cut at {at}"));
            }
            1 | 2 if len > 0 => {
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(len);
                    out[at] ^= 1 << rng.below(8);
                }
                what.push("flipped bits".to_owned());
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let value = *rng.pick(&[0u8, 0xff, 0x7f, 0x80, b'9', b'"', b'{', b'[', b'-']);
                out[at] = value;
                what.push(format!("byte {at} := {value:#x}"));
            }
            4 if len >= 8 => {
                let at = rng.below(len - 7);
                let value = *rng.pick(EXTREME_INTS) as u64;
                out[at..at + 8].copy_from_slice(&value.to_le_bytes());
                what.push(format!("u64 at {at} := {value}"));
            }
            5 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                out.drain(start..end);
                what.push(format!("deleted {start}..{end}"));
            }
            6 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(256)).min(len);
                let chunk = out[start..end].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, chunk);
                what.push(format!("repeated {start}..{end} at {at}"));
            }
            _ => {
                let at = rng.below(len + 1);
                let junk: Vec<u8> = (0..1 + rng.below(32)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, junk);
                what.push(format!("inserted bytes at {at}"));
            }
        }
    }
    (out, what.join(", "))
}

/// A value of another kind than a JSON node would have, or an absurd one of its kind.
fn absurd_json(rng: &mut Rng, old: &Value) -> Value {
    match rng.below(10) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(2)),
        2 => Value::String(String::new()),
        3 => Value::String("x".repeat(1 + rng.below(4096))),
        4 => Value::Array(Vec::new()),
        5 => {
            // A shape-like array of extreme sizes.
            let n = 1 + rng.below(4);
            Value::Array((0..n).map(|_| json_int(*rng.pick(EXTREME_INTS))).collect())
        }
        6 => Value::Array(vec![old.clone(); 2 + rng.below(64)]),
        7 => serde_json::json!({ "unexpected": old.clone() }),
        8 => serde_json::json!(f64::MAX * if rng.chance(2) { 1.0 } else { -1.0 }),
        _ => json_int(*rng.pick(EXTREME_INTS)),
    }
}

fn json_int(v: i128) -> Value {
    if let Ok(v) = i64::try_from(v) {
        Value::from(v)
    } else if let Ok(v) = u64::try_from(v) {
        Value::from(v)
    } else {
        Value::from(v as f64)
    }
}

/// Every node of `value` as a path of keys and indices, the root first.
fn json_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(k.clone());
                json_paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate().take(16) {
                prefix.push(i.to_string());
                json_paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn json_at<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |v, key| match v {
        Value::Object(map) => map.get_mut(key).expect("path from json_paths"),
        Value::Array(items) => &mut items[key.parse::<usize>().expect("index")],
        _ => unreachable!("paths lead through objects and arrays"),
    })
}

/// 1-2 edits of nodes of `value`: replaced with an absurd value, removed from their object, or
/// (numbers) nudged by one.
fn mutate_json(rng: &mut Rng, value: &Value) -> (Value, String) {
    let mut out = value.clone();
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(2) {
        let mut paths = Vec::new();
        json_paths(&out, &mut Vec::new(), &mut paths);
        let path = rng.pick(&paths).clone();
        let named = path.join(".");
        if !path.is_empty() && rng.chance(5) {
            let (parent, last) = path.split_at(path.len() - 1);
            if let Value::Object(map) = json_at(&mut out, parent) {
                map.remove(&last[0]);
                what.push(format!("removed {named}"));
                continue;
            }
        }
        let node = json_at(&mut out, &path);
        let new = match &*node {
            Value::Number(n) if rng.chance(3) => {
                let v = n.as_f64().unwrap_or(0.0);
                serde_json::json!(if rng.chance(2) { v + 1.0 } else { v - 1.0 })
            }
            Value::String(s) if rng.chance(2) => {
                let (bytes, _) = mutate_bytes(rng, s.as_bytes());
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }
            old => absurd_json(rng, old),
        };
        what.push(format!("{named} := {}", short(&new.to_string())));
        *node = new;
    }
    (out, what.join(", "))
}

/// TOML values that are out of range, of the wrong type, huge, deeply nested or not numbers.
const ABSURD_TOML: &[&str] = &[
    "0",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "4294967296",
    "1e308",
    "-1e308",
    "5e-324",
    "nan",
    "inf",
    "-inf",
    "\"\"",
    "[]",
    "{}",
    "true",
    "[1000000000, 1000000000]",
    "[0]",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "1979-05-27T07:32:00Z",
    "\"\\u0000\"",
];

/// 1-2 line-level edits of TOML `text` (a value replaced, a line deleted or repeated, a table
/// header repeated), or byte-level edits.
fn mutate_toml(rng: &mut Rng, text: &str) -> (String, String) {
    if rng.chance(4) {
        let (bytes, what) = mutate_bytes(rng, text.as_bytes());
        return (String::from_utf8_lossy(&bytes).into_owned(), what);
    }
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(2) {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len());
        match rng.below(6) {
            0 => {
                what.push(format!("deleted line {}", i + 1));
                lines.remove(i);
            }
            1 => {
                what.push(format!("repeated line {}", i + 1));
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            _ => {
                let assignments: Vec<usize> =
                    (0..lines.len()).filter(|&j| lines[j].contains(" = ")).collect();
                if assignments.is_empty() {
                    continue;
                }
                let j = *rng.pick(&assignments);
                let key = lines[j].split(" = ").next().unwrap_or_default().to_owned();
                let value = *rng.pick(ABSURD_TOML);
                what.push(format!("{} := {value}", key.trim()));
                lines[j] = format!("{key} = {value}");
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    (out, what.join(", "))
}

/// A safetensors file's header (JSON) and the bytes after it, if the framing holds.
fn split_safetensors(bytes: &[u8]) -> Option<(Value, &[u8])> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header = serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    Some((header, &bytes[8 + n..]))
}

fn join_safetensors(header: &Value, data: &[u8]) -> Vec<u8> {
    let json = header.to_string().into_bytes();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    out
}

/// A safetensors file with its JSON header edited (shapes, dtypes, offsets, metadata; a JSON
/// string of metadata is edited as JSON itself) and its length field kept right.
fn mutate_safetensors_header(rng: &mut Rng, bytes: &[u8]) -> (Vec<u8>, String) {
    let Some((mut header, data)) = split_safetensors(bytes) else {
        return mutate_bytes(rng, bytes);
    };
    // Metadata values are strings that may hold JSON (an rlpg checkpoint's `rlpg` entry).
    let nested = header
        .get("__metadata__")
        .and_then(Value::as_object)
        .and_then(|m| m.iter().find_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))));
    if let Some((key, text)) = nested.filter(|_| rng.chance(2)) {
        if let Ok(inner) = serde_json::from_str::<Value>(&text) {
            let (inner, what) = mutate_json(rng, &inner);
            header["__metadata__"][&key] = Value::String(inner.to_string());
            return (join_safetensors(&header, data), format!("metadata {key}: {what}"));
        }
    }
    let (header, what) = mutate_json(rng, &header);
    (join_safetensors(&header, data), format!("header: {what}"))
}

fn short(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The harness.

/// Inputs per target: `default`, or `RLPG_FUZZ_INPUTS`.
fn inputs(default: usize) -> usize {
    std::env::var("RLPG_FUZZ_INPUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn fuzz_seed(target: &str) -> u64 {
    let base: u64 =
        std::env::var("RLPG_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed);
    target.bytes().fold(base, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// How one input ended.
enum Outcome {
    Loaded,
    Refused,
}

/// Counts for one target, and the bugs found.
#[derive(Default)]
struct Tally {
    loaded: usize,
    refused: usize,
    bugs: Vec<String>,
}

impl Tally {
    /// Runs `load` on its own thread with the time limit and the allocation meter, and records
    /// how it ended. `size` is the input's size in bytes, `what` describes it.
    fn run(
        &mut self,
        size: usize,
        what: &str,
        load: impl FnOnce() -> Result<Outcome, String> + Send + 'static,
    ) {
        let (send, receive) = std::sync::mpsc::channel();
        let started = Instant::now();
        std::thread::spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load));
            let largest = LARGEST.with(Cell::get);
            let _ = send.send((result, largest));
        });
        let limit = ALLOCATION_LIMIT + 16 * size;
        match receive.recv_timeout(TIME_LIMIT) {
            Err(_) => {
                self.bugs.push(format!("{what}: no result after {TIME_LIMIT:?} (hang?)"));
                // The thread cannot be stopped; the rest of the budget would queue behind it.
                panic!("{}", self.bugs.join("\n"));
            }
            Ok((Err(panic), _)) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                self.bugs.push(format!("{what}: panicked: {message}"));
            }
            Ok((_, largest)) if largest > limit => self.bugs.push(format!(
                "{what}: allocated {largest} bytes at once for an input of {size} bytes"
            )),
            Ok((Ok(Ok(Outcome::Loaded)), _)) => self.loaded += 1,
            Ok((Ok(Ok(Outcome::Refused)), _)) => self.refused += 1,
            Ok((Ok(Err(message)), _)) => {
                self.bugs.push(format!("{what}: {message}"));
            }
        }
        if started.elapsed() > TIME_LIMIT {
            self.bugs.push(format!("{what}: took {:?}", started.elapsed()));
        }
    }

    /// Prints the counts and fails with every bug found.
    fn report(self, target: &str) {
        let tried = self.loaded + self.refused + self.bugs.len();
        eprintln!(
            "fuzz {target}: {tried} inputs: {} loaded, {} refused with an error, {} bugs",
            self.loaded,
            self.refused,
            self.bugs.len()
        );
        assert!(self.bugs.is_empty(), "fuzz {target}: bugs:\n{}", self.bugs.join("\n"));
    }
}

/// libtorch's generator is global: training runs for the corpora take turns.
static TORCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A short training run of `agent` on `env` under `root` with `sets`, checkpointed mid-way.
fn short_run(root: &Path, env: &str, agent: AgentKind, sets: &[&str]) -> PathBuf {
    let _turn = TORCH.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let text = Config::new(env, agent).to_toml_string().expect("toml");
    let overrides: Vec<Override> = ["eval_every=0", "eval_episodes=2", "seed=3"]
        .iter()
        .chain(sets)
        .map(|s| Override::parse(s).expect("override"))
        .collect();
    let config = Config::from_toml_str(&text, "fuzz corpus", &overrides).expect("config");
    train(&config, root, None, false).expect("train").run_dir.path().to_owned()
}

/// The runs whose files the targets damage: every agent, both kinds of action, observation
/// statistics, a replay buffer.
fn corpus_runs(root: &Path) -> Vec<PathBuf> {
    vec![
        short_run(
            root,
            "CartPole-v1",
            AgentKind::Reinforce,
            &["total_timesteps=2048", "checkpoint_every=1024", "normalize_obs=true"],
        ),
        short_run(
            root,
            "Pendulum-v1",
            AgentKind::Pathwise,
            &[
                "total_timesteps=400",
                "checkpoint_every=200",
                "pathwise.learning_starts=100",
                "pathwise.batch_size=32",
            ],
        ),
        short_run(
            root,
            "CartPole-v1",
            AgentKind::Pathwise,
            &["total_timesteps=400", "checkpoint_every=200", "pathwise.learning_starts=100"],
        ),
    ]
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn observations(dim: usize) -> Vec<Vec<f32>> {
    vec![vec![0.0; dim], vec![1.0; dim], vec![-3.0e38; dim], vec![f32::NAN; dim]]
}

// ---------------------------------------------------------------------------------------------
// The targets.

/// An export directory, as a deployed program loads one it did not write.
#[test]
fn fuzz_policy_exports() {
    let root = Scratch::new("fuzz-policy");
    let exports: Vec<(Vec<u8>, Vec<u8>)> = corpus_runs(&root.join("runs"))
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let dir = root.join(format!("export-{i}"));
            rlpg::export::export_run(run, None, &dir, EnvSource::Builtin).expect("export");
            let read = |name: &str| std::fs::read(dir.join(name)).expect("export file");
            (read(rlpg::deploy::MANIFEST_FILE), read(rlpg::deploy::TENSORS_FILE))
        })
        .collect();
    let mut rng = Rng(fuzz_seed("policy"));
    let mut tally = Tally::default();
    for n in 0..inputs(2_000) {
        let (manifest, tensors) = rng.pick(&exports).clone();
        let (manifest, tensors, what) = match rng.below(5) {
            0 => {
                let (m, what) = mutate_bytes(&mut rng, &manifest);
                (m, tensors, format!("policy.json bytes: {what}"))
            }
            1 => {
                let value: Value = serde_json::from_slice(&manifest).expect("manifest JSON");
                let (value, what) = mutate_json(&mut rng, &value);
                (value.to_string().into_bytes(), tensors, format!("policy.json: {what}"))
            }
            2 => {
                let (t, what) = mutate_bytes(&mut rng, &tensors);
                (manifest, t, format!("policy.safetensors bytes: {what}"))
            }
            _ => {
                let (t, what) = mutate_safetensors_header(&mut rng, &tensors);
                (manifest, t, format!("policy.safetensors {what}"))
            }
        };
        let dir = root.join("input");
        std::fs::create_dir_all(&dir).expect("mkdir");
        write(&dir.join(rlpg::deploy::MANIFEST_FILE), &manifest);
        write(&dir.join(rlpg::deploy::TENSORS_FILE), &tensors);
        let size = manifest.len() + tensors.len();
        tally.run(size, &format!("input {n} ({what})"), move || {
            let outcome = match rlpg::deploy::Policy::load(&dir) {
                Err(e) => {
                    if e.to_string().is_empty() {
                        return Err("an empty error message".to_owned());
                    }
                    Outcome::Refused
                }
                Ok(policy) => {
                    for obs in observations(policy.obs_dim()) {
                        let _ = policy.act(&obs);
                    }
                    Outcome::Loaded
                }
            };
            // The same directory on libtorch.
            if let Ok(policy) = rlpg::Policy::load(&dir) {
                let _ = policy.act(&vec![0.0; policy.obs_dim()]);
            }
            Ok(outcome)
        });
    }
    tally.report("policy exports");
}

/// A checkpoint edited so that its checksum still holds: a tensor reshaped, retyped, emptied,
/// renamed, dropped or repeated (the checksum covers the tensors, so it is recomputed, as a
/// forger would), or the config text inside it edited (the checksum does not cover it).
fn mutate_checkpoint(rng: &mut Rng, bytes: &[u8], path: &Path) -> (Vec<u8>, String) {
    let mut checkpoint = Checkpoint::from_bytes(bytes, path).expect("corpus checkpoint reads");
    let what = if rng.chance(3) {
        let (config, what) = mutate_toml(rng, &checkpoint.meta.config);
        checkpoint.meta.config = config;
        format!("config text: {what}")
    } else {
        let training = rng.chance(2) && !checkpoint.training.is_empty();
        let tensors = if training { &mut checkpoint.training } else { &mut checkpoint.agent };
        let i = rng.below(tensors.len());
        let (name, t) = &mut tensors[i];
        let numel = t.numel() as i64;
        let what = match rng.below(7) {
            0 => {
                *t = t.reshape([numel]);
                "flattened"
            }
            1 => {
                *t = t.reshape([1, numel]);
                "given a leading 1"
            }
            2 => {
                *t = t.flatten(0, -1).narrow(0, 0, numel / 2);
                "halved"
            }
            3 => {
                *t = t.to_kind(*rng.pick(&[tch::Kind::Double, tch::Kind::Int64, tch::Kind::Uint8]));
                "retyped"
            }
            4 => {
                name.push('x');
                "renamed"
            }
            5 => {
                *t = tch::Tensor::cat(&[&t.flatten(0, -1), &t.flatten(0, -1)], 0);
                "doubled"
            }
            _ => {
                drop(tensors.remove(i));
                "removed"
            }
        };
        format!("{} tensor {i} {what}", if training { "training" } else { "agent" })
    };
    match checkpoint.to_bytes() {
        Ok(bytes) => (bytes, what),
        Err(e) => panic!("a forged checkpoint must serialise ({what}): {e}"),
    }
}

/// A checkpoint, as `rlpg runs`, `rlpg eval`, `rlpg::Policy::load` and `rlpg train --resume` read
/// one that was damaged or forged.
#[test]
fn fuzz_checkpoints() {
    let root = Scratch::new("fuzz-checkpoint");
    // Each run with only its mid-run checkpoint left: resuming it must load that one.
    let runs: Vec<(PathBuf, PathBuf, Vec<u8>)> = corpus_runs(&root.join("runs"))
        .into_iter()
        .map(|run| {
            let steps = step_checkpoints(&run).expect("list");
            let (_, middle) = steps.iter().find(|(step, _)| *step > 0).expect("mid-run").clone();
            let bytes = std::fs::read(&middle).expect("read");
            for entry in std::fs::read_dir(checkpoint_dir(&run)).expect("dir") {
                std::fs::remove_file(entry.expect("entry").path()).expect("rm");
            }
            write(&middle, &bytes);
            (run, middle, bytes)
        })
        .collect();
    let mut rng = Rng(fuzz_seed("checkpoint"));
    let mut tally = Tally::default();
    for n in 0..inputs(400) {
        let (run, path, bytes) = rng.pick(&runs).clone();
        let (input, what) = match rng.below(3) {
            0 => mutate_bytes(&mut rng, &bytes),
            1 => mutate_safetensors_header(&mut rng, &bytes),
            _ => mutate_checkpoint(&mut rng, &bytes, &path),
        };
        // Resuming is the slowest reader (it trains the rest of the short run): one in four.
        let resume = rng.chance(4);
        let input_run = root.join("input");
        let _ = std::fs::remove_dir_all(&input_run);
        copy_dir(&run, &input_run);
        let input_path = checkpoint_dir(&input_run).join(path.file_name().expect("name"));
        write(&input_path, &input);
        let size = input.len();
        tally.run(size, &format!("input {n} ({what})"), move || {
            let meta = read_meta(&input_path);
            let read = Checkpoint::read(&input_path);
            if meta.is_ok() != read.is_ok() {
                return Err(format!(
                    "read_meta and Checkpoint::read disagree: {:?} / {:?}",
                    meta.err().map(|e| e.to_string()),
                    read.err().map(|e| e.to_string())
                ));
            }
            let _ = rlpg::runs::inspect_run(&input_run);
            let evaluated = evaluate_checkpoint(&input_path, 1, 0, EnvSource::Builtin);
            if let Ok(policy) = rlpg::Policy::load(&input_path) {
                let _ = policy.act(&vec![0.0; policy.obs_dim()]);
            }
            if resume {
                let options =
                    rlpg::run::TrainOptions { warn: Some(&mut |_| {}), ..Default::default() };
                let _ = rlpg::run::resume(&input_run, options);
            }
            Ok(if evaluated.is_ok() { Outcome::Loaded } else { Outcome::Refused })
        });
    }
    tally.report("checkpoints");
}

/// One TFRecord holding `data`, with both checksums right (masked CRC32C, bit by bit).
fn record(data: &[u8]) -> Vec<u8> {
    fn masked_crc(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            }
        }
        (!crc).rotate_right(15).wrapping_add(0xa282_ead8)
    }
    let len = (data.len() as u64).to_le_bytes();
    let mut out = len.to_vec();
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The records' data of an event file rlpg wrote.
fn records_of(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= 16 {
        let len = u64::from_le_bytes(bytes[..8].try_into().expect("8")) as usize;
        out.push(bytes[12..12 + len].to_vec());
        bytes = &bytes[16 + len..];
    }
    out
}

/// Event files, as `rlpg plot` reads any folder it is given and a resume trims a run's.
#[test]
fn fuzz_event_files() {
    let root = Scratch::new("fuzz-events");
    let files: Vec<Vec<u8>> = corpus_runs(&root.join("runs"))
        .iter()
        .flat_map(|run| rlpg::event_files(run).expect("event files"))
        .map(|file| std::fs::read(file).expect("read"))
        .collect();
    let mut rng = Rng(fuzz_seed("events"));
    let mut tally = Tally::default();
    for n in 0..inputs(3_000) {
        let bytes = rng.pick(&files).clone();
        let (input, what) = if rng.chance(2) {
            mutate_bytes(&mut rng, &bytes)
        } else {
            // Checksum-valid records with hostile contents: one record's data edited, a record
            // with a huge declared length, or records repeated or dropped.
            let mut records = records_of(&bytes);
            let i = rng.below(records.len());
            let what = match rng.below(4) {
                0 => {
                    let (data, what) = mutate_bytes(&mut rng, &records[i]);
                    records[i] = data;
                    format!("record {i}: {what}")
                }
                1 => {
                    let len = *rng.pick(EXTREME_INTS) as u64;
                    let mut data = vec![0x2a]; // field 5 (summary), length-delimited
                    let mut v = len;
                    while v >= 0x80 {
                        data.push((v as u8) | 0x80);
                        v >>= 7;
                    }
                    data.push(v as u8);
                    records[i] = data;
                    format!("record {i}: a summary of declared length {len}")
                }
                2 => {
                    let copy = records[i].clone();
                    records.insert(i, copy);
                    format!("record {i} repeated")
                }
                _ => {
                    records.remove(i);
                    format!("record {i} dropped")
                }
            };
            (records.iter().flat_map(|r| record(r)).collect(), what)
        };
        let dir = root.join("input");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("events.out.tfevents.1.fuzz");
        write(&file, &input);
        let size = input.len();
        tally.run(size, &format!("input {n} ({what})"), move || {
            let read = rlpg::read_scalars(&file);
            let options = rlpg::plot::PlotOptions::new(dir.join("plot.png"));
            let _ = rlpg::plot::aggregate(&[&dir], &options);
            let _ = rlpg::trim_event_files(&dir, 1_000);
            // Whatever trimming kept must read back.
            if let Err(e) = rlpg::read_scalars(&file) {
                if read.is_ok() {
                    return Err(format!("readable before trimming, not after: {e}"));
                }
            }
            Ok(if read.is_ok() { Outcome::Loaded } else { Outcome::Refused })
        });
    }
    tally.report("event files");
}

/// Config files and `--set` arguments, and a run's `config.toml` as `rlpg runs` reads it. A
/// config that loads must write out and load back as the same config (a run directory holds it
/// that way).
#[test]
fn fuzz_configs() {
    let root = Scratch::new("fuzz-config");
    let presets = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut texts: Vec<String> = std::fs::read_dir(&presets)
        .expect("configs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| std::fs::read_to_string(p).expect("preset"))
        .collect();
    texts.sort();
    texts.push(Config::new("CartPole-v1", AgentKind::Pathwise).to_toml_string().expect("toml"));
    let mut rng = Rng(fuzz_seed("config"));
    let mut tally = Tally::default();
    for n in 0..inputs(3_000) {
        let base = rng.pick(&texts).clone();
        let (text, what) = mutate_toml(&mut rng, &base);
        let file = root.join("config.toml");
        write(&file, text.as_bytes());
        // A `--set` made of a line of the input.
        let set = text.lines().nth(rng.below(text.lines().count().max(1))).unwrap_or("").to_owned();
        let run = root.join("run");
        std::fs::create_dir_all(run.join("checkpoints")).expect("mkdir");
        write(&run.join(rlpg::CONFIG_FILE), text.as_bytes());
        tally.run(text.len(), &format!("input {n} ({what})"), move || {
            let loaded = Config::load(&file, &[]);
            if let Ok(set) = Override::parse(set.replace(" = ", "=").as_str()) {
                let _ = Config::load(&file, &[set]);
            }
            let _ = Config::load_checked(&file, &[], &rlpg::envs::Registry::builtin());
            let _ = rlpg::runs::inspect_run(&run);
            let Ok(config) = loaded else { return Ok(Outcome::Refused) };
            let written = config.to_toml_string().map_err(|e| format!("cannot write: {e}"))?;
            let back = Config::from_toml_str(&written, "written", &[])
                .map_err(|e| format!("loads, but its written form does not: {e}"))?;
            if back != config {
                return Err(format!("loads, but reads back different:\n{written}"));
            }
            Ok(Outcome::Loaded)
        });
    }
    tally.report("configs");
}

/// Regressions found by `fuzz_checkpoints`: a checkpoint whose config text (not covered by the
/// checksum) asks for `num_envs = 2^63 - 1` panicked with a capacity overflow in `rlpg eval`,
/// and one whose actor has hidden layers of 10^9 units spent minutes allocating before its
/// tensors were compared with the file's. Both are now refused with the key named, at once.
#[test]
fn forged_checkpoint_configs_that_ask_for_absurd_sizes_are_refused() {
    let root = Scratch::new("fuzz-forged");
    let run = short_run(
        &root.join("runs"),
        "Pendulum-v1",
        AgentKind::Pathwise,
        &["total_timesteps=200", "pathwise.learning_starts=100", "pathwise.batch_size=32"],
    );
    let (_, path) = step_checkpoints(&run).expect("list").pop().expect("a checkpoint");
    let bytes = std::fs::read(&path).expect("read");
    for (key, value) in [
        ("num_envs", "9223372036854775807"),
        ("eval_episodes", "1000000000"),
        ("actor_hidden", "[1000000000, 1000000000]"),
        ("critic_hidden", "[30000, 30000]"),
        ("buffer_size", "10000000000"),
    ] {
        let mut checkpoint = Checkpoint::from_bytes(&bytes, &path).expect("reads");
        let config = &checkpoint.meta.config;
        let line = config
            .lines()
            .find(|l| l.split(" = ").next() == Some(key))
            .unwrap_or_else(|| panic!("no `{key} = ` line in {config}"));
        checkpoint.meta.config = config.replace(line, &format!("{key} = {value}"));
        let forged = root.join(format!("forged-{key}.safetensors"));
        write(&forged, &checkpoint.to_bytes().expect("serialises"));
        let started = Instant::now();
        let e = evaluate_checkpoint(&forged, 1, 0, EnvSource::Builtin).expect_err("refused");
        assert!(e.to_string().contains(key), "{key} = {value}: {e}");
        let Err(e) = rlpg::Policy::load(&forged) else { panic!("{key} = {value}: loaded") };
        assert!(e.to_string().contains(key), "{key} = {value}: {e}");
        assert!(started.elapsed() < Duration::from_secs(10), "{key}: {:?}", started.elapsed());
    }
}
