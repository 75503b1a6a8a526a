#!/usr/bin/env python3
"""Check rlpg policy exports from Python: policy.onnx through onnxruntime and policy.json +
policy.safetensors through numpy must both reproduce rlpg-policy's actions.

Usage: check_policy_export.py FIXTURE_DIR [--latency]

FIXTURE_DIR holds one folder per export (written by rlpg-policy's `write_check_fixtures`
example), each with policy.json, policy.safetensors, policy.onnx and check.safetensors
(`obs` [rows, obs_dim] float32 and `action`, rlpg-policy's actions: int64 [rows] or float32
[rows, action_dim]). Discrete actions must be identical, continuous ones within 1e-5
(absolute, or relative for values beyond 1). Exit code 0 when every export passes, 1 otherwise.

The numpy forward pass below is the reference reading of policy.json (format "rlpg-policy",
version 1; documented in policy/src/manifest.rs): it is how a Python program can use an export
without onnxruntime.
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
SUPPORTED_VERSION = 1


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


def numpy_policy(export_dir):
    """The deterministic policy of an export as a numpy function of raw observations."""
    manifest = json.loads((export_dir / "policy.json").read_text())
    if manifest.get("format") != "rlpg-policy":
        raise ValueError(f"{export_dir}/policy.json: not an rlpg policy manifest")
    if manifest.get("version") != SUPPORTED_VERSION:
        raise ValueError(f"{export_dir}/policy.json: version {manifest.get('version')} is not supported")
    tensors = load_file(str(export_dir / "policy.safetensors"))
    norm = manifest["observation"]["normalization"]
    layers = manifest["layers"]
    head = manifest["head"]
    space = manifest["action"]["space"]
    rescale = manifest["action"]["rescale"]

    def act(obs):
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
        if kind == "categorical":
            return h.argmax(axis=1).astype(np.int64)
        if kind == "gumbel_softmax":
            bound = np.float32(head["logit_bound"])
            if bound > 0:
                h = np.tanh((h - h.mean(axis=1, keepdims=True)) / bound) * bound
            return log_softmax(h).argmax(axis=1).astype(np.int64)
        dim = len(space["low"])
        y = h[:, :dim]
        if kind in ("squashed_gaussian", "deterministic_tanh"):
            y = np.tanh(y)
        elif kind != "gaussian":
            raise ValueError(f"unknown head {kind!r}")
        if rescale is not None:
            y = y * np.array(rescale["scale"], dtype=np.float32) + np.array(rescale["loc"], dtype=np.float32)
        return np.minimum(np.maximum(y, bounds(space["low"])), bounds(space["high"]))

    return act


def compare(what, got, expected):
    """None if `got` reproduces `expected`, else a one-line description of the worst row."""
    if got.shape != expected.shape:
        return f"{what}: shape {got.shape}, expected {expected.shape}"
    if expected.dtype == np.int64:
        if got.dtype != np.int64:
            return f"{what}: dtype {got.dtype}, expected int64"
        wrong = np.flatnonzero(got != expected)
        if wrong.size:
            i = wrong[0]
            return f"{what}: {wrong.size} of {len(expected)} actions differ (row {i}: {got[i]} vs {expected[i]})"
        return None
    err = np.abs(got.astype(np.float64) - expected) / np.maximum(1.0, np.abs(expected))
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

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    problems = []
    if (inp.name, out.name) != ("obs", "action"):
        problems.append(f"input/output are named {inp.name}/{out.name}, expected obs/action")
    if inp.shape[0] != "batch" or out.shape[0] != "batch":
        problems.append(f"batch dimension is not dynamic: {inp.shape} -> {out.shape}")
    onnx_actions = session.run(["action"], {"obs": obs})[0]
    single = np.concatenate([session.run(["action"], {"obs": obs[i:i + 1]})[0] for i in range(5)])
    numpy_actions = numpy_policy(export_dir)(obs)
    for what, got in [("onnxruntime", onnx_actions), ("onnxruntime batch 1", single),
                      ("numpy", numpy_actions)]:
        want = expected if what != "onnxruntime batch 1" else expected[:5]
        problem = compare(what, got, want)
        if problem:
            problems.append(problem)
    timing = ""
    if latency:
        timing = " " + ort_latency(session, obs)
    return problems, len(obs), timing


def ort_latency(session, obs):
    parts = []
    for batch in (1, 256):
        x = np.ascontiguousarray(obs[:batch])
        for _ in range(200):
            session.run(["action"], {"obs": x})
        n = 20000 if batch == 1 else 2000
        start = time.perf_counter()
        for _ in range(n):
            session.run(["action"], {"obs": x})
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
        try:
            problems, rows, timing = check(d, latency)
        except Exception as e:  # a broken model or file is a failure of that export, not a crash
            problems, rows, timing = [f"{type(e).__name__}: {e}"], 0, ""
        status = "ok" if not problems else "FAILED"
        print(f"{d.name}: {status} ({rows} observations){timing}")
        for p in problems:
            print(f"  {p}")
        failed += bool(problems)
    print(f"{len(dirs) - failed} of {len(dirs)} exports reproduce rlpg-policy "
          f"(onnxruntime {ort.__version__}, numpy {np.__version__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
