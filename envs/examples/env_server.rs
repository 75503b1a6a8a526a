//! One registered environment served over stdin/stdout, so that a program in another language
//! can step exactly rlpg's env (its dynamics, seeding, time limit, masks and infos): what
//! `benches/peers/rlpg_env.py` wraps as a Gymnasium env for peer comparisons (sb3-contrib's
//! MaskablePPO on Restock-v0).
//!
//! ```sh
//! cargo run --release -p rlpg-envs --example env_server -- Restock-v0
//! ```
//!
//! Protocol: JSON lines. The server first writes `{"id", "observation_space", "action_space",
//! "masks", "infos"}` (spaces as rlpg serialises them, e.g. `{"MultiDiscrete": [5, 5, 5]}`;
//! `infos` the info names). Then, one request per line:
//! * `{"reset": SEED}` (or `null`) → `{"obs": [...], "mask": [...]}`;
//! * `{"step": ACTION}` (an index, a list of indices, of 0/1 values, or of floats, as the action
//!   space says) → `{"obs", "reward", "terminated", "truncated", "infos": {name: value},
//!   "mask"}`;
//! * end of input → exit.
//!
//! `mask` is the mask of the state reached (`null` without masks). An error is
//! `{"error": "..."}` on its line, and the env must be reset before the next step.

use std::io::{BufRead, Write};

use rlpg_envs::{ActionBuf, Env, Space, make};
use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let id = std::env::args().nth(1).ok_or("usage: env_server ENV_ID")?;
    let mut env = make(&id)?;
    let infos: Vec<String> = env.info_keys().iter().map(|k| k.name.to_string()).collect();
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    let mut out = std::io::BufWriter::new(stdout.lock());
    let hello = json!({
        "id": id,
        "observation_space": env.observation_space(),
        "action_space": env.action_space(),
        "masks": env.masks_actions(),
        "infos": infos,
    });
    writeln!(out, "{hello}")?;
    out.flush()?;
    let mut values = vec![0.0; infos.len()];
    for line in stdin.lock().lines() {
        let line = line?;
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(request) => answer(&mut *env, &request, &infos, &mut values),
            Err(e) => Err(format!("not JSON: {e}")),
        };
        let reply = reply.unwrap_or_else(|error| json!({ "error": error }));
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

/// The reply to one request.
fn answer(
    env: &mut dyn Env,
    request: &Value,
    infos: &[String],
    values: &mut [f64],
) -> Result<Value, String> {
    if let Some(seed) = request.get("reset") {
        let obs = env.reset(seed.as_u64()).map_err(|e| e.to_string())?;
        return Ok(json!({ "obs": obs.as_slice(), "mask": mask(env)? }));
    }
    let Some(action) = request.get("step") else {
        return Err(format!("expected {{\"reset\": SEED}} or {{\"step\": ACTION}}, got {request}"));
    };
    let action = parse_action(env.action_space(), action)?;
    let step = env.step(action.as_action()).map_err(|e| e.to_string())?;
    env.step_infos(values);
    let named: serde_json::Map<String, Value> =
        infos.iter().zip(values.iter()).map(|(k, &v)| (k.clone(), json!(v))).collect();
    let mask = if step.done() { Value::Null } else { mask(env)? };
    Ok(json!({
        "obs": step.obs.as_slice(),
        "reward": step.reward,
        "terminated": step.terminated,
        "truncated": step.truncated,
        "infos": named,
        "mask": mask,
    }))
}

/// The mask of the env's current state as 0/1 values, or null.
fn mask(env: &dyn Env) -> Result<Value, String> {
    if !env.masks_actions() {
        return Ok(Value::Null);
    }
    let mut flags = vec![false; env.action_space().mask_len()];
    env.action_mask(&mut flags).map_err(|e| e.to_string())?;
    Ok(json!(flags.iter().map(|&f| u8::from(f)).collect::<Vec<_>>()))
}

/// `value` as an action of `space`.
fn parse_action(space: &Space, value: &Value) -> Result<ActionBuf, String> {
    let bad = || format!("{value} is not an action of {space}");
    let indices = || -> Result<Vec<usize>, String> {
        let list = value.as_array().ok_or_else(bad)?;
        list.iter().map(|v| v.as_u64().map(|v| v as usize).ok_or_else(bad)).collect()
    };
    Ok(match space {
        Space::Discrete(_) => ActionBuf::Discrete(value.as_u64().ok_or_else(bad)? as usize),
        Space::MultiDiscrete(_) => ActionBuf::MultiDiscrete(indices()?),
        Space::MultiBinary(_) => {
            ActionBuf::MultiBinary(indices()?.iter().map(|&v| v != 0).collect())
        }
        Space::Box(_) => {
            let list = value.as_array().ok_or_else(bad)?;
            let x: Option<Vec<f32>> = list.iter().map(|v| v.as_f64().map(|v| v as f32)).collect();
            ActionBuf::Continuous(x.ok_or_else(bad)?)
        }
    })
}
