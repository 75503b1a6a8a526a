#!/usr/bin/env python3
"""Check rlpg policy exports from Python: policy.onnx through onnxruntime and policy.json +
policy.safetensors through numpy must both reproduce rlpg-policy's actions and distributions,
with and without action masks.

Usage: check_policy_export.py FIXTURE_DIR [--latency]

FIXTURE_DIR holds one folder per export (written by rlpg-policy's `write_check_fixtures`
example), each with policy.json, policy.safetensors, policy.onnx and check.safetensors:
`obs` [rows, obs_dim] float32; `action`, rlpg-policy's greedy actions (int64 [rows] for
Discrete, int64 [rows, dim] for MultiDiscrete/MultiBinary, float32 [rows, action_dim] for a
box); its distribution, `probs` float32, or `mean` and `std` float32 (none for a deterministic
head); and when the policy declares a mask, `mask` uint8 [rows, mask_len] with `action_masked`
and `probs_masked` under it. Integer actions must be identical, floats within 1e-5 (absolute,
or relative for values beyond 1); under a mask, disallowed choices must have probability exactly
0 and never be chosen. Exit code 0 when every export passes, 1 otherwise.

The numpy forward pass below is the reference reading of policy.json (format "rlpg-policy",
versions 1 and 2; documented in policy/src/manifest.rs): it is how a Python program can use an
export without onnxruntime.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file

TOLERANCE = 1e-5
WORST = [0.0]  # the largest float difference seen by `compare` in the current export
SUPPORTED_VERSIONS = (1, 2)


def bounds(values):
    return np.array([float(v) for v in values], dtype=np.float32)  # float("inf") reads "inf"


def activation(name, x):
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.maximum(x, np.float32(0))
    if name == "elu":
        return np.where(x > 0, x, np.expm1(x)).astype(np.float32)
    if name == "leaky_relu":
        return np.where(x > 0, x, np.float32(0.01) * x).astype(np.float32)
    if name == "silu":
        return (x / (np.float32(1) + np.exp(-x))).astype(np.float32)
    raise ValueError(f"unknown activation {name!r}")


def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def mask_components(space):
    """Flags (and logits) per component, in the mask's order."""
    kind = space["type"]
    if kind == "discrete":
        return [space["n"]]
    if kind == "multi_discrete":
        return list(space["nvec"])
    if kind == "multi_binary":
        return [2] * space["n"]
    return []


def numpy_policy(export_dir):
    """The policy of an export as a numpy function of raw observations and an optional mask
    (bool [rows, mask_len]): returns (greedy actions, {distribution output: values})."""
    manifest = json.loads((export_dir / "policy.json").read_text())
    if manifest.get("format") != "rlpg-policy":
        raise ValueError(f"{export_dir}/policy.json: not an rlpg policy manifest")
    if manifest.get("version") not in SUPPORTED_VERSIONS:
        raise ValueError(f"{export_dir}/policy.json: version {manifest.get('version')} is not supported")
    tensors = load_file(str(export_dir / "policy.safetensors"))
    norm = manifest["observation"]["normalization"]
    layers = manifest["layers"]
    head = manifest["head"]
    space = manifest["action"]["space"]
    rescale = manifest["action"]["rescale"]

    def act(obs, mask=None):
        h = obs.astype(np.float32)
        if norm is not None:
            mean = np.array(norm["mean"], dtype=np.float64)
            std = np.sqrt(np.array(norm["var"], dtype=np.float64) + norm["epsilon"])
            z = ((h.astype(np.float64) - mean) / std).astype(np.float32)
            h = np.clip(z, np.float32(-norm["clip"]), np.float32(norm["clip"]))
        for layer in layers:
            h = h @ tensors[layer["weight"]].T + tensors[layer["bias"]]
            if layer["activation"] is not None:
                h = activation(layer["activation"], h)
        kind = head["kind"]
        if kind in ("categorical", "gumbel_softmax", "multi_categorical"):
            actions, probs, start = [], [], 0
            for k in mask_components(space):
                logits = h[:, start:start + k]
                if kind == "gumbel_softmax" and head["logit_bound"] > 0:
                    bound = np.float32(head["logit_bound"])
                    logits = np.tanh((logits - logits.mean(axis=1, keepdims=True)) / bound) * bound
                if mask is not None:
                    logits = np.where(mask[:, start:start + k], logits, np.float32(-np.inf))
                probs.append(softmax(logits))
                if kind == "gumbel_softmax":
                    logits = log_softmax(logits)
                actions.append(logits.argmax(axis=1).astype(np.int64))
                start += k
            action = actions[0] if space["type"] == "discrete" else np.stack(actions, axis=1)
            return action, {"probs": np.concatenate(probs, axis=1).astype(np.float32)}
        if kind == "bernoulli":
            p = (np.float32(1) / (np.float32(1) + np.exp(-h))).astype(np.float32)
            ones = h > 0
            if mask is not None:
                may0, may1 = mask[:, 0::2], mask[:, 1::2]
                p = np.where(may1, np.where(may0, p, np.float32(1)), np.float32(0))
                ones = (ones & may1) | ~may0
            return ones.astype(np.int64), {"probs": p}
        dim = len(space["low"])
        y = h[:, :dim]
        dist = {}
        if kind in ("gaussian", "squashed_gaussian"):
            if kind == "gaussian" and head["log_std"] is not None:
                log_std = np.broadcast_to(tensors[head["log_std"]], y.shape)
            else:
                log_std = np.clip(h[:, dim:2 * dim], np.float32(-20), np.float32(2))
            dist = {"mean": y, "std": np.exp(log_std)}
        if kind in ("squashed_gaussian", "deterministic_tanh"):
            y = np.tanh(y)
        elif kind != "gaussian":
            raise ValueError(f"unknown head {kind!r}")
        if rescale is not None:
            y = y * np.array(rescale["scale"], dtype=np.float32) + np.array(rescale["loc"], dtype=np.float32)
        return np.minimum(np.maximum(y, bounds(space["low"])), bounds(space["high"])), dist

    return act


def float_ties(space, probs, got, expected):
    """Per row: True where every choice on which greedy actions `got` and `expected` differ is a
    tie of `expected`'s probabilities `probs` within TOLERANCE (the largest probability reached
    by two choices, or a Bernoulli's 0.5): the float rounding of another summation order may
    then pick the other one."""
    rows = len(expected)
    got, expected = got.reshape(rows, -1), expected.reshape(rows, -1)
    if space["type"] == "multi_binary" and probs.shape[1] == got.shape[1]:
        tie = np.abs(probs - 0.5) <= TOLERANCE  # a Bernoulli head: P(1) per value
        return np.all((got == expected) | tie, axis=1)
    starts = np.cumsum([0] + mask_components(space))[:-1]
    p_got = np.take_along_axis(probs, got + starts, axis=1)
    p_expected = np.take_along_axis(probs, expected + starts, axis=1)
    return np.all((got == expected) | (np.abs(p_got - p_expected) <= TOLERANCE), axis=1)


def compare(what, got, expected, ties=None):
    """None if `got` reproduces `expected`, else a one-line description of the worst row. Integer
    actions must be equal, except in the rows where `ties` (bool per row) is True."""
    if got.shape != expected.shape:
        return f"{what}: shape {got.shape}, expected {expected.shape}"
    if expected.dtype == np.int64:
        if got.dtype != np.int64:
            return f"{what}: dtype {got.dtype}, expected int64"
        wrong = got != expected
        if wrong.ndim > 1:
            wrong = wrong.any(axis=tuple(range(1, wrong.ndim)))
        if ties is not None:
            wrong &= ~ties
        rows = np.flatnonzero(wrong)
        if rows.size:
            i = rows[0]
            return f"{what}: {rows.size} of {len(expected)} actions differ (row {i}: {got[i]} vs {expected[i]})"
        return None
    err = np.abs(got.astype(np.float64) - expected) / np.maximum(1.0, np.abs(expected))
    if err.size:
        WORST[0] = max(WORST[0], float(np.nanmax(err)))
    if not np.all(np.isfinite(got)) or err.max() > TOLERANCE:
        i = tuple(int(k) for k in np.unravel_index(np.nanargmax(err), err.shape))
        return f"{what}: max difference {err.max():.2e} > {TOLERANCE} (at {i}: {got[i]} vs {expected[i]})"
    return None


def check(export_dir, latency):
    model_path = export_dir / "policy.onnx"
    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    data = load_file(str(export_dir / "check.safetensors"))
    obs, expected = data["obs"], data["action"]
    dist_names = [n for n in ("probs", "mean", "std") if n in data]
    mask = data["mask"].astype(bool) if "mask" in data else None

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    problems = []
    want_inputs = ["obs"] + (["mask"] if mask is not None else [])
    if inputs != want_inputs:
        problems.append(f"inputs are {inputs}, expected {want_inputs}")
    want_outputs = ["action"] + [("log_std" if n == "std" else n) for n in dist_names]
    if outputs != want_outputs:
        problems.append(f"outputs are {outputs}, expected {want_outputs}")
    if any(i.shape[0] != "batch" for i in session.get_inputs() + session.get_outputs()):
        problems.append("a batch dimension is not dynamic")
    if problems:
        return problems, len(obs), ""

    def run(x, m):
        feed = {"obs": x}
        if mask is not None:
            feed["mask"] = m if m is not None else np.ones((len(x), mask.shape[1]), dtype=bool)
        got = dict(zip(outputs, session.run(outputs, feed)))
        if "log_std" in got:
            got["std"] = np.exp(got.pop("log_std"))
        return got

    reference = numpy_policy(export_dir)
    cases = [("", None)] + ([("masked ", mask)] if mask is not None else [])
    for label, m in cases:
        suffix = "_masked" if m is not None else ""
        want = {"action": data["action" + suffix]}
        for n in dist_names:
            want[n] = data[n + suffix] if n + suffix in data else data[n]
        got_ort = run(obs, m)
        single = [run(obs[i:i + 1], None if m is None else m[i:i + 1]) for i in range(5)]
        np_action, np_dist = reference(obs, m)
        got_np = dict(np_dist, action=np_action)
        space = json.loads((export_dir / "policy.json").read_text())["action"]["space"]
        for name, value in want.items():
            for what, got in [("onnxruntime", got_ort[name]),
                              ("numpy", got_np[name])]:
                ties = None
                if name == "action" and "probs" in want and value.dtype == np.int64:
                    ties = float_ties(space, want["probs"], got, value)
                problem = compare(f"{label}{what} {name}", got, value, ties)
                if problem:
                    problems.append(problem)
            ort_single = np.concatenate([s[name] for s in single])
            problem = compare(f"{label}onnxruntime batch 1 {name}", ort_single, value[:5])
            if problem:
                problems.append(problem)
        if m is not None:
            problems.extend(mask_violations(json.loads((export_dir / "policy.json").read_text()),
                                            m, got_ort))
    timing = ""
    if latency:
        timing = " " + ort_latency(session, obs, mask)
    return problems, len(obs), timing


def mask_violations(manifest, mask, got):
    """Disallowed choices must have probability exactly 0 and never be the action."""
    space, kind = manifest["action"]["space"], manifest["head"]["kind"]
    problems = []
    action = got["action"].reshape(len(mask), -1)
    if kind == "bernoulli":
        forbidden = np.where(action == 1, ~mask[:, 1::2], ~mask[:, 0::2])
        p = got["probs"]
        bad_p = (~mask[:, 1::2] & (p != 0)) | (~mask[:, 0::2] & (p != 1))
    else:
        starts = np.cumsum([0] + mask_components(space))[:-1]
        forbidden = ~np.take_along_axis(mask, action + starts, axis=1)
        bad_p = ~mask & (got["probs"] != 0)
    if forbidden.any():
        problems.append(f"onnxruntime chose a masked action in {int(forbidden.any(axis=1).sum())} rows")
    if bad_p.any():
        problems.append(f"onnxruntime gave {int(bad_p.sum())} masked choices a probability other than 0")
    return problems


def ort_latency(session, obs, mask):
    parts = []
    for batch in (1, 256):
        feed = {"obs": np.ascontiguousarray(obs[:batch])}
        if mask is not None:
            feed["mask"] = np.ascontiguousarray(mask[:batch])
        for _ in range(200):
            session.run(["action"], feed)
        n = 20000 if batch == 1 else 2000
        start = time.perf_counter()
        for _ in range(n):
            session.run(["action"], feed)
        parts.append(f"batch {batch}: {(time.perf_counter() - start) / n * 1e6:.2f} us")
    return "(onnxruntime " + ", ".join(parts) + ")"


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    root = Path(argv[1])
    latency = "--latency" in argv[2:]
    dirs = sorted(p.parent for p in root.glob("*/check.safetensors"))
    if not dirs:
        print(f"error: no */check.safetensors under {root}", file=sys.stderr)
        return 2
    failed = 0
    for d in dirs:
        WORST[0] = 0.0
        try:
            problems, rows, timing = check(d, latency)
        except Exception as e:  # a broken model or file is a failure of that export, not a crash
            problems, rows, timing = [f"{type(e).__name__}: {e}"], 0, ""
        status = "ok" if not problems else "FAILED"
        print(f"{d.name}: {status} ({rows} observations, largest float difference "
              f"{WORST[0]:.1e}){timing}")
        for p in problems:
            print(f"  {p}")
        failed += bool(problems)
    print(f"{len(dirs) - failed} of {len(dirs)} exports reproduce rlpg-policy "
          f"(onnxruntime {ort.__version__}, numpy {np.__version__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
