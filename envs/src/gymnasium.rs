//! [`GymnasiumEnv`]: any Gymnasium environment, stepped in CPython embedded with pyo3 (feature
//! `gymnasium`).
//!
//! * Ids are `gymnasium:<ID>` ([`ID_PREFIX`]), e.g. `gymnasium:LunarLander-v3`; `<ID>` is what
//!   `gymnasium.make` takes (including its `module:Env-v0` form), and the keyword arguments are
//!   given as a JSON object (the CLI takes them from the config's `[env_kwargs]`).
//! * The environment is exactly `gymnasium.make(ID, **kwargs)`: Gymnasium's own wrappers, its
//!   own `TimeLimit` registered with the id, so `terminated` and `truncated` keep Gymnasium's
//!   meaning. `reset(Some(seed))` is `env.reset(seed=seed)`.
//! * `Box` spaces map to [`Space::Box`] (flattened in C order, bounds as `f32`), `Discrete(n,
//!   start)` to [`Space::Discrete`]`(n)` (rlpg's action `a` is Gymnasium's `start + a`),
//!   `MultiDiscrete(nvec, start)` to [`Space::MultiDiscrete`] (flattened in C order, each value
//!   counted from its `start`), `MultiBinary` to [`Space::MultiBinary`] (flattened); any other
//!   space is an error naming it.
//! * Action masks: an env with an `action_masks()` method (sb3-contrib's convention, also
//!   through its `ActionMasker` wrapper) masks actions ([`Env::masks_actions`]); the mask is its
//!   flat array in MaskablePPO's layout (a tuple of per-component arrays is concatenated), and
//!   one of the wrong length is an error naming the env and the flags.
//! * Step infos: the entries of the step's `info` dict named by
//!   [`GymnasiumEnv::with_info_keys`] (the config's `info_keywords`), as floats; a missing
//!   entry is "not reported" (NaN), one that is not a number an error naming the key.
//! * The Python that runs the env is found by [`python_env`]: `RLPG_PYTHON`, else an active
//!   `VIRTUAL_ENV`, else the venv that `scripts/setup.sh --gymnasium` makes in rlpg's cache. Its
//!   site-packages are put first on the embedded interpreter's `sys.path`. The interpreter linked
//!   in is the one the build found (pyo3's rules: `PYO3_PYTHON`, else `python3` on `PATH`); the
//!   venv must have the same `major.minor`.
//! * A Python exception in `reset` or `step` is an [`EnvError::Other`] naming the env and quoting
//!   the exception's type, message and innermost frame.
//! * Observations are read through the buffer protocol straight into the caller's buffer: no
//!   Python object is made for them (float32 `Box`es; other dtypes are converted by NumPy).
//! * The Python env's state cannot be saved ([`Env::snapshot`] is unsupported): a resumed run
//!   starts fresh episodes.
//! * Envs in this process take turns at one interpreter lock. [`worker_vec_env`] (`env_workers`
//!   in a config; `workers.rs`) steps them in worker processes instead, in parallel, with the
//!   same results; [`entry`]'s registry entries make such vector envs when asked.

use std::ffi::CStr;
use std::path::PathBuf;
use std::process::Command;

use pyo3::buffer::PyBuffer;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyModule, PyTuple};

use crate::core::{Action, BoxSpace, Env, EnvError, InfoKey, Observation, Space, Step, StepInfo};

#[cfg(unix)]
mod workers;
#[cfg(unix)]
pub use workers::worker_vec_env;

/// The prefix of the env ids the bridge builds: `gymnasium:<ID>`.
pub const ID_PREFIX: &str = "gymnasium:";

/// The command that makes the Python environment the bridge uses by default.
pub const SETUP_COMMAND: &str = "scripts/setup.sh --gymnasium";

/// The folder in rlpg's cache where [`SETUP_COMMAND`] makes its venv.
pub const CACHE_VENV: &str = "gymnasium-venv";

/// Whether `id` names a Gymnasium environment through the bridge (starts with [`ID_PREFIX`]).
pub fn is_gymnasium_id(id: &str) -> bool {
    id.starts_with(ID_PREFIX)
}

/// The Python installation whose packages the embedded interpreter imports.
#[derive(Clone, Debug, PartialEq)]
pub struct PythonEnv {
    /// Its interpreter (the venv's `bin/python`).
    pub python: PathBuf,
    /// Where it was found: `RLPG_PYTHON`, `VIRTUAL_ENV` or rlpg's cache.
    pub origin: String,
}

/// rlpg's cache folder: `$RLPG_CACHE`, else `$XDG_CACHE_HOME/rlpg`, else `$HOME/.cache/rlpg` (as
/// `scripts/setup.sh`).
fn cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("RLPG_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("rlpg")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("rlpg")))
}

/// The Python the bridge uses: `$RLPG_PYTHON` (an interpreter), else `$VIRTUAL_ENV/bin/python`,
/// else `bin/python` of the venv [`SETUP_COMMAND`] makes in rlpg's cache. An error names what was
/// looked for and the setup command.
pub fn python_env() -> Result<PythonEnv, String> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let (python, origin) = if let Some(python) = var("RLPG_PYTHON") {
        (python, "RLPG_PYTHON".to_owned())
    } else if let Some(venv) = var("VIRTUAL_ENV") {
        (venv.join("bin").join("python"), "VIRTUAL_ENV (the active venv)".to_owned())
    } else {
        let Some(cache) = cache_dir() else {
            return Err(format!(
                "no Python environment with gymnasium: RLPG_PYTHON, VIRTUAL_ENV and HOME are all \
                 unset; run {SETUP_COMMAND}"
            ));
        };
        let venv = cache.join(CACHE_VENV);
        let python = venv.join("bin").join("python");
        if !python.exists() {
            return Err(format!(
                "no Python environment with gymnasium: {} does not exist (and neither \
                 RLPG_PYTHON nor VIRTUAL_ENV is set); run {SETUP_COMMAND} to make it",
                venv.display()
            ));
        }
        (python, format!("rlpg's cache ({SETUP_COMMAND})"))
    };
    if !python.exists() {
        return Err(format!(
            "the Python from {origin}, {}, does not exist; run {SETUP_COMMAND} (or fix {origin})",
            python.display()
        ));
    }
    Ok(PythonEnv { python, origin })
}

/// Python code of the bridge that is not on the hot path: activating the venv, making the env,
/// describing its spaces, converting odd observations.
const HELPER: &CStr = cr#"
import json, site, sys, threading

# gymnasium.make imports an env's module on first use, and CPython (3.11 at least) can fail
# concurrent imports of a package and its submodules from two threads ("partially initialized
# module", KeyError of the package), which envs made in parallel threads would hit. One make at a
# time; reentrant, for envs whose constructor makes another env. Waiting releases the GIL.
_make_lock = threading.RLock()

def activate(prefix, site_dirs):
    # The embedded interpreter starts with its own installation's site-packages; the venv's come
    # first instead, and the base ones go (as in the venv's own interpreter).
    own = set(site.getsitepackages() + [site.getusersitepackages()])
    before = [p for p in sys.path if p not in own]
    for d in site_dirs:
        site.addsitedir(d)
    added = [p for p in sys.path if p not in before and p not in own]
    sys.path[:] = added + before
    sys.prefix = sys.exec_prefix = prefix

def make(env_id, kwargs_json):
    import gymnasium
    with _make_lock:
        return gymnasium.make(env_id, **json.loads(kwargs_json))

def space(sp):
    import numpy as np
    from gymnasium import spaces
    if isinstance(sp, spaces.Discrete):
        return ("Discrete", int(sp.n), int(sp.start), "int")
    if isinstance(sp, spaces.Box):
        low = np.asarray(sp.low).astype(np.float32).ravel()
        high = np.asarray(sp.high).astype(np.float32).ravel()
        kind = "float32" if sp.dtype == np.float32 else ("float" if np.issubdtype(sp.dtype, np.floating) else "other")
        return ("Box", [float(x) for x in low], [float(x) for x in high], kind)
    if isinstance(sp, spaces.MultiDiscrete):
        # Flattened in C order, as Stable-Baselines3 flattens a MultiDiscrete with several axes.
        return ("MultiDiscrete", [int(x) for x in np.ravel(sp.nvec)], [int(x) for x in np.ravel(sp.start)], "int")
    if isinstance(sp, spaces.MultiBinary):
        return ("MultiBinary", int(np.prod(sp.shape)), 0, "int")
    return ("Other", repr(sp), 0, "")

def flat_obs(sp, obs):
    # A MultiDiscrete or MultiBinary observation as float32 values, a MultiDiscrete's from 0.
    import numpy as np
    from gymnasium import spaces
    a = np.asarray(obs)
    if isinstance(sp, spaces.MultiDiscrete):
        a = a - sp.start
    return np.ascontiguousarray(a, dtype=np.float32).ravel()

def multi_action(sp, values):
    # rlpg's MultiDiscrete values count from 0: Gymnasium's from `start`.
    import numpy as np
    from gymnasium import spaces
    a = np.asarray(values, dtype=sp.dtype).reshape(sp.shape)
    if isinstance(sp, spaces.MultiDiscrete):
        a = a + sp.start
    return a

def masks_fn(env):
    # sb3-contrib's convention: the env (or a wrapper such as its ActionMasker) has a method
    # action_masks(); Gymnasium's wrappers reach it with get_wrapper_attr.
    try:
        f = env.get_wrapper_attr("action_masks")
    except AttributeError:
        return None
    return f if callable(f) else None

def flat_mask(mask):
    # MaskablePPO's flat layout; a tuple of per-component masks (Gymnasium's sample(mask=...))
    # is concatenated.
    import numpy as np
    if isinstance(mask, (tuple, list)) and len(mask) > 0 and np.ndim(mask[0]) > 0:
        mask = np.concatenate([np.ravel(np.asarray(m)) for m in mask])
    return [bool(x) for x in np.ravel(np.asarray(mask))]

def info_values(info, names):
    # The named entries of a step's info dict as floats; NaN for one the step did not report.
    import numpy as np
    out = []
    for name in names:
        if name not in info:
            out.append(float("nan"))
            continue
        value = info[name]
        try:
            out.append(float(np.asarray(value, dtype=np.float64).reshape(())))
        except Exception:
            raise ValueError("info[%r] is %r, not a number" % (name, value)) from None
    return out

def action_buffer(sp):
    import numpy as np
    return np.zeros(int(np.prod(sp.shape)), dtype=np.float32)

def shaped_action(sp, values):
    import numpy as np
    return np.asarray(values, dtype=sp.dtype).reshape(sp.shape)

def as_float32(obs):
    import numpy as np
    return np.ascontiguousarray(obs, dtype=np.float32).ravel()

def max_episode_steps(env):
    return env.spec.max_episode_steps if env.spec is not None else None
"#;

/// Asks `python` for its prefix, version and site-packages folders (one subprocess, once).
fn describe(python: &PythonEnv) -> Result<(String, String, Vec<String>), String> {
    let script = "import json, site, sys; print(json.dumps([sys.prefix, \
                  '%d.%d' % sys.version_info[:2], site.getsitepackages()]))";
    let out = Command::new(&python.python).args(["-c", script]).output().map_err(|e| {
        format!("cannot run {} (from {}): {e}", python.python.display(), python.origin)
    })?;
    if !out.status.success() {
        return Err(format!(
            "{} (from {}) failed: {}",
            python.python.display(),
            python.origin,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{} answered unexpectedly: {e}", python.python.display()))
}

/// The bridge's helper module, in an interpreter whose `sys.path` has the venv: made once per
/// process. An error says what is missing and how to set it up.
fn helper(py: Python<'_>) -> Result<&Bound<'_, PyModule>, String> {
    static HELPER_MODULE: PyOnceLock<Result<Py<PyModule>, String>> = PyOnceLock::new();
    let made = HELPER_MODULE.get_or_init(py, || {
        let python = python_env()?;
        let (prefix, version, site_dirs) = describe(&python)?;
        let ours = py.version_info();
        let ours = format!("{}.{}", ours.major, ours.minor);
        if version != ours {
            return Err(format!(
                "{} (from {}) is Python {version}, but rlpg was built against Python {ours}; \
                 rerun {SETUP_COMMAND} with Python {ours}, or rebuild rlpg with \
                 PYO3_PYTHON={} so that both agree",
                python.python.display(),
                python.origin,
                python.python.display()
            ));
        }
        let module = PyModule::from_code(py, HELPER, c"rlpg_gymnasium_bridge.py", c"rlpg_bridge")
            .map_err(|e| {
            format!("internal error in the bridge's helper: {}", describe_err(py, &e))
        })?;
        module.call_method1("activate", (prefix, site_dirs)).map_err(|e| {
            format!("cannot activate {}: {}", python.python.display(), describe_err(py, &e))
        })?;
        py.import("gymnasium").map_err(|e| {
            format!(
                "cannot import gymnasium from {} (from {}): {}; run {SETUP_COMMAND} to install it",
                python.python.display(),
                python.origin,
                describe_err(py, &e)
            )
        })?;
        Ok(module.unbind())
    });
    match made {
        Ok(module) => Ok(module.bind(py)),
        Err(message) => Err(message.clone()),
    }
}

/// What the bridge runs on, for `rlpg doctor`: the Python it found (and where from), its version
/// and Gymnasium's; or why it cannot run (no venv, gymnasium missing, a version mismatch).
pub fn status() -> Result<String, String> {
    let python = python_env()?;
    Python::initialize();
    Python::attach(|py| {
        helper(py)?;
        let version = |module: &str| -> String {
            py.import(module)
                .and_then(|m| m.getattr("__version__"))
                .map_or_else(|_| "?".to_owned(), |v| v.to_string())
        };
        let info = py.version_info();
        Ok(format!(
            "gymnasium {}, numpy {}, Python {}.{}.{} from {} ({})",
            version("gymnasium"),
            version("numpy"),
            info.major,
            info.minor,
            info.patch,
            python.python.display(),
            python.origin
        ))
    })
}

/// A Python exception as `Type: message (at file:line in function)`, the location being the
/// innermost frame of its traceback.
fn describe_err(py: Python<'_>, err: &PyErr) -> String {
    let ty = err.get_type(py);
    let name = ty.name().map(|n| n.to_string()).unwrap_or_else(|_| "exception".to_owned());
    let module = ty.module().map(|m| m.to_string()).unwrap_or_default();
    let name =
        if module.is_empty() || module == "builtins" { name } else { format!("{module}.{name}") };
    let message = err.value(py).to_string();
    let mut location = String::new();
    if let Some(tb) = err.traceback(py) {
        let mut tb = tb.into_any();
        while let Ok(next) = tb.getattr("tb_next") {
            if next.is_none() {
                break;
            }
            tb = next;
        }
        let frame = tb.getattr("tb_frame").and_then(|f| f.getattr("f_code"));
        if let (Ok(code), Ok(line)) = (frame, tb.getattr("tb_lineno")) {
            let file = code.getattr("co_filename").map(|f| f.to_string()).unwrap_or_default();
            let func = code.getattr("co_name").map(|f| f.to_string()).unwrap_or_default();
            location = format!(" (at {file}:{line} in {func})");
        }
    }
    if message.is_empty() {
        format!("{name}{location}")
    } else {
        format!("{name}: {message}{location}")
    }
}

/// Runs `f` attached to the Python interpreter (holding the GIL): [`crate::VecEnv`] wraps a
/// whole batch step in it, so its Python envs' own attaches are cheap re-entries.
pub(crate) fn attached<R>(f: impl FnOnce() -> R) -> R {
    Python::attach(|_| f())
}

/// The helper's description of a space: `(kind, low or n, high or start, dtype)`.
type SpaceInfo<'py> = (String, Bound<'py, PyAny>, Bound<'py, PyAny>, String);

/// How a Gymnasium observation becomes rlpg's `f32` row.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ObsKind {
    /// A float32 `Box`: copied through the buffer protocol.
    Float32,
    /// Another `Box` dtype: converted to float32 by NumPy first.
    Convert,
    /// `Discrete(n, start)`: the integer minus `start`.
    Discrete(i64),
    /// `MultiDiscrete` (minus its `start`) or `MultiBinary`: converted by the helper.
    Flat,
}

/// Whether the episode may be stepped.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Episode {
    NotReset,
    Running,
    Over,
}

/// One Gymnasium environment, `gymnasium.make(ID, **kwargs)`, stepped in the embedded Python
/// (see the module docs for ids, spaces, seeding and errors).
pub struct GymnasiumEnv {
    id: String,
    env: Py<PyAny>,
    step_fn: Py<PyAny>,
    reset_fn: Py<PyAny>,
    helper: Py<PyModule>,
    py_action_space: Py<PyAny>,
    observation_space: Space,
    action_space: Space,
    obs_kind: ObsKind,
    /// `start` of a `Discrete` action space.
    action_start: i64,
    /// A float32 array that continuous actions are written into (copied before each step).
    action_buffer: Option<Py<PyAny>>,
    /// `action_buffer` fits a float32 action space exactly (else NumPy converts).
    action_float32: bool,
    max_episode_steps: Option<usize>,
    episode: Episode,
    py_observation_space: Py<PyAny>,
    /// The env's `action_masks` method (sb3-contrib's convention), if it has one.
    masks_fn: Option<Py<PyAny>>,
    /// The keys of the `info` dict reported as step infos ([`GymnasiumEnv::with_info_keys`]).
    info_keys: Vec<InfoKey>,
    /// Their names as a Python list, for the helper.
    info_names: Option<Py<PyAny>>,
    /// Their values at the last step.
    last_infos: Vec<f64>,
}

impl std::fmt::Debug for GymnasiumEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GymnasiumEnv")
            .field("id", &self.id)
            .field("observation_space", &self.observation_space)
            .field("action_space", &self.action_space)
            .finish_non_exhaustive()
    }
}

impl GymnasiumEnv {
    /// `gymnasium.make(ID, **kwargs)` for `id = "gymnasium:<ID>"`, `kwargs` a JSON object. An
    /// error (no Python environment, gymnasium missing, an unknown id, a space rlpg cannot map)
    /// says what went wrong, quoting Gymnasium's own message.
    pub fn new(
        id: &str,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, EnvError> {
        let other = |message: String| EnvError::Other { env: id.to_owned(), message };
        let Some(gym_id) = id.strip_prefix(ID_PREFIX).filter(|g| !g.is_empty()) else {
            return Err(other(format!(
                "not a Gymnasium id: expected {ID_PREFIX}<ID>, e.g. {ID_PREFIX}CartPole-v1"
            )));
        };
        let kwargs_json = serde_json::Value::Object(kwargs.clone()).to_string();
        Python::initialize();
        Python::attach(|py| {
            let helper = helper(py).map_err(other)?;
            let env = helper
                .call_method1("make", (gym_id, kwargs_json))
                .map_err(|e| other(format!("gymnasium.make failed: {}", describe_err(py, &e))))?;
            let space_of = |attr: &str| -> Result<(Bound<'_, PyAny>, SpaceInfo<'_>), EnvError> {
                let sp = env
                    .getattr(attr)
                    .map_err(|e| other(format!("{attr}: {}", describe_err(py, &e))))?;
                let info = helper
                    .call_method1("space", (&sp,))
                    .and_then(|i| i.extract())
                    .map_err(|e| other(format!("{attr}: {}", describe_err(py, &e))))?;
                Ok((sp, info))
            };
            let (py_observation_space, (kind, a, b, dtype)) = space_of("observation_space")?;
            let (observation_space, obs_kind) = map_space(&kind, &a, &b)
                .map(|(space, start)| match (&space, start, dtype.as_str()) {
                    (Space::MultiDiscrete(_) | Space::MultiBinary(_), _, _) => {
                        (space, ObsKind::Flat)
                    }
                    (_, Some(start), _) => (space, ObsKind::Discrete(start)),
                    (_, None, "float32") => (space, ObsKind::Float32),
                    (_, None, _) => (space, ObsKind::Convert),
                })
                .map_err(|e| other(format!("observation space {e}")))?;
            let (py_action_space, (kind, a, b, dtype)) = space_of("action_space")?;
            let (action_space, start) =
                map_space(&kind, &a, &b).map_err(|e| other(format!("action space {e}")))?;
            if start.is_none() && dtype == "other" {
                return Err(other(format!(
                    "action space {}: only floating-point Box action spaces are supported",
                    py_action_space.repr().map(|r| r.to_string()).unwrap_or_default()
                )));
            }
            let action_buffer = match action_space {
                Space::Box(_) => Some(
                    helper
                        .call_method1("action_buffer", (&py_action_space,))
                        .map_err(|e| other(describe_err(py, &e)))?
                        .unbind(),
                ),
                _ => None,
            };
            let max_episode_steps = helper
                .call_method1("max_episode_steps", (&env,))
                .and_then(|m| m.extract::<Option<usize>>())
                .map_err(|e| other(describe_err(py, &e)))?;
            let method = |name: &str| {
                env.getattr(name).map(Bound::unbind).map_err(|e| other(describe_err(py, &e)))
            };
            let masks_fn = helper
                .call_method1("masks_fn", (&env,))
                .map_err(|e| other(describe_err(py, &e)))?;
            let masks_fn = (!masks_fn.is_none()).then(|| masks_fn.unbind());
            Ok(Self {
                id: id.to_owned(),
                step_fn: method("step")?,
                reset_fn: method("reset")?,
                helper: helper.clone().unbind(),
                action_float32: dtype == "float32",
                py_action_space: py_action_space.unbind(),
                env: env.unbind(),
                observation_space,
                action_space,
                obs_kind,
                action_start: start.unwrap_or(0),
                action_buffer,
                max_episode_steps,
                episode: Episode::NotReset,
                py_observation_space: py_observation_space.unbind(),
                masks_fn,
                info_keys: Vec::new(),
                info_names: None,
                last_infos: Vec::new(),
            })
        })
    }

    /// This env reporting the entries `keys` of its `info` dict as step infos
    /// ([`Env::info_keys`]): each step's value as a float (NaN when the step's `info` lacks it;
    /// a value that is not a number is an error naming the key).
    pub fn with_info_keys(mut self, keys: &[InfoKey]) -> Self {
        let names: Vec<&str> = keys.iter().map(|k| k.name.as_ref()).collect();
        self.info_names = (!keys.is_empty())
            .then(|| {
                Python::attach(|py| names.into_pyobject(py).ok().map(|l| l.into_any().unbind()))
            })
            .flatten();
        self.info_keys = keys.to_vec();
        self.last_infos = vec![f64::NAN; keys.len()];
        self
    }

    /// The time limit Gymnasium registered with the id (its `spec.max_episode_steps`), if any.
    pub fn max_episode_steps(&self) -> Option<usize> {
        self.max_episode_steps
    }

    fn python_error(&self, py: Python<'_>, during: &str, err: &PyErr) -> EnvError {
        EnvError::Other {
            env: self.id.clone(),
            message: format!("Python exception in {during}: {}", describe_err(py, err)),
        }
    }

    /// Writes the observation `obs` (a Gymnasium observation) into `out`.
    fn read_obs(
        &self,
        py: Python<'_>,
        obs: &Bound<'_, PyAny>,
        out: &mut [f32],
    ) -> Result<(), EnvError> {
        let copy = |array: &Bound<'_, PyAny>, out: &mut [f32]| -> PyResult<()> {
            PyBuffer::<f32>::get(array)?.copy_to_slice(py, out)
        };
        let convert = |out: &mut [f32]| -> PyResult<()> {
            copy(&self.helper.bind(py).call_method1(intern!(py, "as_float32"), (obs,))?, out)
        };
        let read = match self.obs_kind {
            // Not a float32 buffer after all (e.g. a wrapper returned float64): convert.
            ObsKind::Float32 => copy(obs, out).or_else(|_| convert(out)),
            ObsKind::Convert => convert(out),
            ObsKind::Discrete(start) => obs.extract::<i64>().map(|v| {
                if let Some(first) = out.first_mut() {
                    *first = (v - start) as f32;
                }
            }),
            ObsKind::Flat => self
                .helper
                .bind(py)
                .call_method1(intern!(py, "flat_obs"), (self.py_observation_space.bind(py), obs))
                .and_then(|flat| copy(&flat, out)),
        };
        read.map_err(|e| EnvError::InvalidOutput {
            env: self.id.clone(),
            message: format!(
                "observation {} does not fit the observation space {} ({} values): {}",
                obs.repr().map(|r| r.to_string()).unwrap_or_default(),
                self.observation_space,
                out.len(),
                describe_err(py, &e)
            ),
        })
    }

    /// The Python action for `action` (already checked against the action space).
    fn py_action<'py>(&self, py: Python<'py>, action: Action<'_>) -> PyResult<Bound<'py, PyAny>> {
        match action {
            // Small ints are cached by CPython: no allocation for them.
            Action::Discrete(a) => Ok((self.action_start + a as i64).into_pyobject(py)?.into_any()),
            Action::Continuous(x) => match &self.action_buffer {
                Some(buffer) if self.action_float32 => {
                    let buffer = buffer.bind(py);
                    PyBuffer::<f32>::get(buffer)?.copy_from_slice(py, x)?;
                    // A copy, shaped as the space: an env may keep the action it was given.
                    self.helper.bind(py).call_method1(
                        intern!(py, "shaped_action"),
                        (self.py_action_space.bind(py), buffer),
                    )
                }
                _ => self.helper.bind(py).call_method1(
                    intern!(py, "shaped_action"),
                    (self.py_action_space.bind(py), x.to_vec()),
                ),
            },
            Action::MultiDiscrete(values) => self.helper.bind(py).call_method1(
                intern!(py, "multi_action"),
                (self.py_action_space.bind(py), values.to_vec()),
            ),
            Action::MultiBinary(flags) => self.helper.bind(py).call_method1(
                intern!(py, "multi_action"),
                (
                    self.py_action_space.bind(py),
                    flags.iter().map(|&f| i64::from(f)).collect::<Vec<_>>(),
                ),
            ),
        }
    }

    /// Reads the step's infos (the entries of `info` named by [`GymnasiumEnv::with_info_keys`]).
    fn read_infos(&mut self, py: Python<'_>, info: &Bound<'_, PyAny>) -> Result<(), EnvError> {
        let Some(names) = &self.info_names else { return Ok(()) };
        let values: Vec<f64> = self
            .helper
            .bind(py)
            .call_method1(intern!(py, "info_values"), (info, names.bind(py)))
            .and_then(|v| v.extract())
            .map_err(|e| EnvError::InvalidOutput {
                env: self.id.clone(),
                message: format!("step's info: {}", describe_err(py, &e)),
            })?;
        self.last_infos.copy_from_slice(&values);
        Ok(())
    }
}

/// `Space` for a description from the helper's `space`: `("Box", low, high, dtype)` or
/// `("Discrete", n, start, _)`, with `Some(start)` for a `Discrete`.
fn map_space(
    kind: &str,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> Result<(Space, Option<i64>), String> {
    match kind {
        "Discrete" => {
            let n: usize = a.extract().map_err(|e: PyErr| e.to_string())?;
            let start: i64 = b.extract().map_err(|e: PyErr| e.to_string())?;
            Ok((Space::Discrete(n), Some(start)))
        }
        "MultiDiscrete" => {
            let nvec: Vec<usize> = a.extract().map_err(|e: PyErr| e.to_string())?;
            Ok((Space::MultiDiscrete(nvec), None))
        }
        "MultiBinary" => {
            let n: usize = a.extract().map_err(|e: PyErr| e.to_string())?;
            Ok((Space::MultiBinary(n), None))
        }
        "Box" => {
            let low: Vec<f32> = a.extract().map_err(|e: PyErr| e.to_string())?;
            let high: Vec<f32> = b.extract().map_err(|e: PyErr| e.to_string())?;
            if low.len() != high.len() || low.iter().zip(&high).any(|(l, h)| l > h) {
                return Err(format!("Box has malformed bounds {low:?}, {high:?}"));
            }
            Ok((Space::Box(BoxSpace::new(low, high)), None))
        }
        _ => Err(format!(
            "{} is not supported: rlpg maps Gymnasium's Box, Discrete, MultiDiscrete and \
             MultiBinary spaces",
            a
        )),
    }
}

impl Env for GymnasiumEnv {
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
        self.masks_fn.is_some()
    }

    fn action_mask(&self, mask: &mut [bool]) -> Result<(), EnvError> {
        let Some(masks_fn) = &self.masks_fn else {
            mask.fill(true);
            return Ok(());
        };
        let flags: Vec<bool> = Python::attach(|py| {
            masks_fn
                .bind(py)
                .call0()
                .and_then(|m| self.helper.bind(py).call_method1(intern!(py, "flat_mask"), (m,)))
                .and_then(|m| m.extract())
                .map_err(|e| self.python_error(py, "action_masks()", &e))
        })?;
        if flags.len() != mask.len() {
            return Err(EnvError::InvalidOutput {
                env: self.id.clone(),
                message: format!(
                    "action_masks() returned {} flags, but the action space {} needs {} \
                     (MaskablePPO's layout: one per action of a Discrete, the values of each \
                     component in turn for a MultiDiscrete, two per value of a MultiBinary): {}",
                    flags.len(),
                    self.action_space,
                    mask.len(),
                    crate::space::bits(&flags)
                ),
            });
        }
        mask.copy_from_slice(&flags);
        Ok(())
    }

    fn info_keys(&self) -> &[InfoKey] {
        &self.info_keys
    }

    fn step_infos(&self, values: &mut [f64]) {
        values.copy_from_slice(&self.last_infos[..values.len()]);
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        self.episode = Episode::NotReset;
        let mut obs: Observation = smallvec::smallvec![0.0; self.observation_space.flat_dim()];
        Python::attach(|py| {
            let reset = self.reset_fn.bind(py);
            let out = match seed {
                Some(seed) => {
                    let kwargs = pyo3::types::PyDict::new(py);
                    kwargs
                        .set_item(intern!(py, "seed"), seed)
                        .map_err(|e| self.python_error(py, "reset", &e))?;
                    reset.call((), Some(&kwargs))
                }
                None => reset.call0(),
            }
            .map_err(|e| self.python_error(py, "reset", &e))?;
            let first = out
                .cast::<PyTuple>()
                .map_err(|_| self.bad_return(py, "reset", &out))?
                .get_item(0)
                .map_err(|_| self.bad_return(py, "reset", &out))?;
            self.read_obs(py, &first, &mut obs)
        })?;
        self.episode = Episode::Running;
        Ok(obs)
    }

    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let mut obs: Observation = smallvec::smallvec![0.0; self.observation_space.flat_dim()];
        let info = self.step_into(action, &mut obs)?;
        Ok(Step {
            obs,
            reward: info.reward,
            terminated: info.terminated,
            truncated: info.truncated,
        })
    }

    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        match self.episode {
            Episode::Running => {}
            Episode::NotReset => return Err(EnvError::NotReset { env: self.id.clone() }),
            Episode::Over => return Err(EnvError::EpisodeOver { env: self.id.clone() }),
        }
        if !self.action_space.contains(action) {
            return Err(EnvError::invalid_action(&self.id, action, &self.action_space));
        }
        if obs.len() != self.observation_space.flat_dim() {
            return Err(EnvError::Other {
                env: self.id.clone(),
                message: format!(
                    "step_into was given a buffer of {} values for observations of the space {} \
                     ({} values)",
                    obs.len(),
                    self.observation_space,
                    self.observation_space.flat_dim()
                ),
            });
        }
        // Until the step succeeds the env is in an unknown state: it needs a reset.
        self.episode = Episode::NotReset;
        let info = Python::attach(|py| {
            let action = self
                .py_action(py, action)
                .map_err(|e| self.python_error(py, "step (action)", &e))?;
            let out = self
                .step_fn
                .bind(py)
                .call1((action,))
                .map_err(|e| self.python_error(py, "step", &e))?;
            let tuple = out.cast::<PyTuple>().map_err(|_| self.bad_return(py, "step", &out))?;
            if tuple.len() != 5 {
                return Err(self.bad_return(py, "step", &out));
            }
            let item = |i| tuple.get_item(i).map_err(|e| self.python_error(py, "step", &e));
            self.read_obs(py, &item(0)?, obs)?;
            let reward: f64 =
                item(1)?.extract().map_err(|e| self.python_error(py, "step (reward)", &e))?;
            let terminated = item(2)?.is_truthy().map_err(|e| self.python_error(py, "step", &e))?;
            let truncated = item(3)?.is_truthy().map_err(|e| self.python_error(py, "step", &e))?;
            self.read_infos(py, &item(4)?)?;
            Ok(StepInfo { reward, terminated, truncated })
        })?;
        self.episode = if info.done() { Episode::Over } else { Episode::Running };
        Ok(info)
    }
}

impl GymnasiumEnv {
    fn bad_return(&self, py: Python<'_>, what: &str, out: &Bound<'_, PyAny>) -> EnvError {
        let _ = py;
        EnvError::InvalidOutput {
            env: self.id.clone(),
            message: format!(
                "{what} returned {}, not Gymnasium's tuple ({})",
                out.repr().map(|r| r.to_string()).unwrap_or_default(),
                if what == "step" {
                    "obs, reward, terminated, truncated, info"
                } else {
                    "obs, info"
                }
            ),
        }
    }
}

impl Drop for GymnasiumEnv {
    fn drop(&mut self) {
        // `env.close()` frees what the env holds outside Python's heap (windows, simulators);
        // an error while closing has nowhere to go and is dropped.
        Python::attach(|py| {
            let _ = self.env.bind(py).call_method0(intern!(py, "close"));
        });
    }
}

/// A registry entry for `id = "gymnasium:<ID>"` with these keyword arguments: it makes one env
/// at once, so that an unknown id or a missing package is reported before anything else, and
/// describes it with Gymnasium's registered time limit.
pub fn entry(
    id: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
) -> Result<crate::EnvEntry, EnvError> {
    entry_with_infos(id, kwargs, &[])
}

/// [`entry`] for envs that report the entries `infos` of their `info` dict as step infos
/// ([`GymnasiumEnv::with_info_keys`]).
pub fn entry_with_infos(
    id: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
    infos: &[InfoKey],
) -> Result<crate::EnvEntry, EnvError> {
    let probe = GymnasiumEnv::new(id, kwargs)?.with_info_keys(infos);
    let limit = probe.max_episode_steps();
    #[cfg(unix)]
    let template = workers::WorkerEnv::like(id, &probe);
    drop(probe);
    let (owned_id, kwargs, infos) = (id.to_owned(), kwargs.clone(), infos.to_vec());
    let mut description = format!("Gymnasium's {}", &id[ID_PREFIX.len()..]);
    if let Some(limit) = limit {
        description.push_str(&format!(" (Gymnasium's own time limit: {limit} steps)"));
    }
    if !kwargs.is_empty() {
        description.push_str(&format!(" with {}", serde_json::Value::Object(kwargs.clone())));
    }
    let entry = crate::EnvEntry::try_new(id, {
        let (id, kwargs) = (owned_id.clone(), kwargs.clone());
        move || Ok(GymnasiumEnv::new(&id, &kwargs)?.with_info_keys(&infos))
    })
    .description(description);
    #[cfg(unix)]
    let entry = entry.with_workers(move |n, stepping| {
        worker_vec_env(&owned_id, &kwargs, &template, n, stepping.workers, stepping.worker_timeout)
    });
    Ok(entry)
}
