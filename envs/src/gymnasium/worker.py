# A worker process of rlpg's Gymnasium bridge (envs/src/gymnasium/workers.rs): it makes a range of
# the vector env's envs with gymnasium.make and steps them on command. Run by the venv's own
# Python as `python -c <this file> <config JSON>`; never imported.
#
# Protocol. At start-up the worker writes one line on the protocol pipe (the process's original
# stdout; the env's own prints go to stderr): "ready", or "err <JSON list of {env, during, kind,
# message}>" if it could not make its envs. Then every command and its results pass through the
# shared memory (the file config["shm"], mapped by both processes), and the two sides wake each
# other with futexes on its words (Linux):
#   rlpg writes the command (step, reset with a seed, reset without one, close) and its seed, sets
#   `finished` to 0, adds one to `command_seq` and wakes every worker at once;
#   each worker runs the command on its envs (step: each with its action from shared memory, and
#   reset those whose episode ended, continuing their random stream; reset with SEED: env i with
#   seed SEED + i, modulo 2**64), writes its observations, rewards, end flags, action masks (of the
#   state each env acts on next), step infos and errors (a JSON list as above, or nothing) into
#   shared memory, its `done` word to the command's number, and adds one to `finished` with
#   FUTEX_WAKE_OP: an atomic add in the kernel that orders every write before it and wakes rlpg
#   when the last worker finishes. rlpg thus wakes once per batch, each worker once per command.
# A worker that has just finished a command waits for the next one by reading `command_seq` for a
# few microseconds before it sleeps on the futex, as long as the commands it saw lately came that
# soon (rlpg stepping in a tight loop); otherwise it sleeps at once. Before each env steps, its
# index goes into this worker's `current` slot, so that if the process dies rlpg can name the env.

import ctypes
import json
import os
import platform
import signal
import sys
import time
import traceback

STEP, RESET_SEEDED, RESET, CLOSE = 1, 2, 3, 4
FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAKE_OP = 0, 1, 5
# FUTEX_WAKE_OP's operation: *uaddr2 += 1, then wake uaddr2's waiter if the old value was `last`.
FUTEX_OP_ADD, FUTEX_OP_CMP_EQ = 1, 0
# Reading a word in a loop sees the other side's writes in order only on x86 (total store order);
# elsewhere the worker does not spin: it sleeps on the futex, whose system call orders memory.
SPIN_OK = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
# Spin at most this long (seconds) while the commands have lately come within it.
SPIN_MAX = 100e-6


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def main():
    config = json.loads(sys.argv[1])
    # Ctrl-C goes to rlpg, which finishes its step, saves and then closes the workers; a worker
    # must not die of it in the middle of a step. The parent's death ends the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    try:
        worker = Worker(config)
    except Exception as e:
        proto.write("err " + json.dumps([error(config["first"], "make", "exception", e)]) + "\n")
        proto.flush()
        return
    proto.write("ready\n")
    proto.flush()
    worker.serve()


def describe(e):
    """`Type: message (at file:line in function)`, as the in-process bridge describes errors."""
    name = type(e).__name__
    module = type(e).__module__
    if module not in (None, "builtins"):
        name = module + "." + name
    where = ""
    tb = traceback.extract_tb(e.__traceback__)
    if tb:
        frame = tb[-1]
        where = " (at %s:%d in %s)" % (frame.filename, frame.lineno, frame.name)
    message = str(e)
    return "%s: %s%s" % (name, message, where) if message else name + where


def error(env, during, kind, e):
    return {"env": env, "during": during, "kind": kind, "message": describe(e)}


def encode_errors(errors, room):
    """`errors` as JSON bytes of at most `room` bytes: long messages are cut if they must be."""
    data = json.dumps(errors).encode()
    limit = 4096
    while len(data) > room and limit > 16:
        for e in errors:
            if len(e["message"]) > limit:
                e["message"] = e["message"][:limit] + " [...]"
        data = json.dumps(errors).encode()
        limit //= 2
    return data if len(data) <= room else json.dumps(errors[:1]).encode()[:room]


class Worker:
    def __init__(self, config):
        import mmap

        import gymnasium
        import numpy as np
        from gymnasium import spaces

        self.np = np
        self.spaces = spaces
        self.first = config["first"]
        self.count = count = config["count"]
        n = config["num_envs"]
        obs_dim, act_dim = config["obs_dim"], config["act_dim"]
        with open(config["shm"], "r+b") as f:
            self.mm = mmap.mmap(f.fileno(), config["size"])
        offsets = config["offsets"]

        def view(name, dtype, shape):
            size = int(np.prod(shape))
            return np.frombuffer(self.mm, dtype, size, offsets[name]).reshape(shape)

        def words(name, code, length, at=0):
            start = offsets[name] + at
            return memoryview(self.mm)[start : start + length * struct_size(code)].cast(code)

        self.act_f32 = view("act_f32", np.float32, (n, max(act_dim, 1)))
        self.act_i64 = view("act_i64", np.int64, (n, max(act_dim, 1)))
        self.next_obs = view("next_obs", np.float32, (n, obs_dim))
        self.reset_obs = view("reset_obs", np.float32, (n, obs_dim))
        self.rewards = words("rewards", "d", n)
        self.flags = words("flags", "B", n)
        self.slot = slot = config["worker"]
        self.current = words("current", "q", 1, at=8 * slot)
        self.mask_len = config["mask_len"]
        self.masks = view("masks", np.uint8, (n, max(self.mask_len, 1)))
        self.info_names = config["info_names"]
        self.infos = view("infos", np.float64, (n, max(len(self.info_names), 1)))
        # The control block: rlpg's command line (command_seq, command, seed), `finished`, and
        # this worker's line (done, error bytes) and error area.
        control = offsets["control"]
        self.command = memoryview(self.mm)[control : control + 8].cast("I")
        self.seed = memoryview(self.mm)[control + 8 : control + 16].cast("Q")
        here = control + config["control_line"] * (2 + slot)
        self.done = memoryview(self.mm)[here : here + 8].cast("I")
        self.error_room = config["error_bytes"]
        self.error_at = offsets["errors"] + slot * self.error_room
        self.seen = self.command[0]
        self.parent = config["parent"]
        self.workers = config["workers"]
        # The futex system call, its words' addresses and arguments made once.
        self.syscall = ctypes.CDLL(None, use_errno=True).syscall
        self.syscall.restype = ctypes.c_long
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.mm))
        self.sys_futex = ctypes.c_long(config["futex"])
        self.command_word = ctypes.c_void_p(base + control)
        self.finished_word = ctypes.c_void_p(base + control + config["control_line"])
        encoded = (FUTEX_OP_ADD << 28) | (FUTEX_OP_CMP_EQ << 24) | (1 << 12) | (self.workers - 1)
        self.wake_op = (
            ctypes.c_long(FUTEX_WAKE_OP), ctypes.c_long(0), ctypes.c_long(1), ctypes.c_long(encoded)
        )
        self.wait_op = ctypes.c_long(FUTEX_WAIT)
        self.one_second = Timespec(1, 0)
        self.spin_gap = 0.0  # a moving average of how long commands took to come (seconds)

        kwargs = json.loads(config["kwargs"])
        self.envs = [gymnasium.make(config["gym_id"], **kwargs) for _ in range(count)]
        self.steps = [env.step for env in self.envs]
        self.resets = [env.reset for env in self.envs]
        env = self.envs[0]
        self.obs_space = env.observation_space
        self.obs_start = self.start(env.observation_space)
        self.obs_row = (obs_dim,)
        self.obs_multi_discrete = isinstance(env.observation_space, spaces.MultiDiscrete)
        self.act_space = sp = env.action_space
        self.act_start = self.start(sp)
        self.act_dim = act_dim
        if self.act_start is not None:
            self.kind = "discrete"
        elif isinstance(sp, spaces.MultiDiscrete):
            self.kind = "multi_discrete"
        elif isinstance(sp, spaces.MultiBinary):
            self.kind = "multi_binary"
        else:
            self.kind = "box"
        # sb3-contrib's convention: the env, or a wrapper, has a method action_masks().
        self.masks_fns = [e.get_wrapper_attr("action_masks") for e in self.envs] if self.mask_len else []

    def start(self, space):
        return int(space.start) if isinstance(space, self.spaces.Discrete) else None

    def serve(self):
        """Runs commands until rlpg says close (or is gone)."""
        while True:
            self.wait()
            command = self.command[1]
            if command == CLOSE:
                return
            if command == STEP:
                errors = self.step()
            elif command == RESET_SEEDED:
                errors = self.reset(self.seed[0])
            elif command == RESET:
                errors = self.reset(None)
            else:
                errors = [error(self.first, "command", "exception", ValueError(command))]
            self.finish(errors)

    def wait(self):
        """Waits until rlpg writes a new command (a new `command_seq`)."""
        command, seen = self.command, self.seen
        began = time.perf_counter()
        if command[0] == seen and SPIN_OK and self.spin_gap < SPIN_MAX:
            end = began + min(SPIN_MAX, 2.0 * self.spin_gap + 20e-6)
            while command[0] == seen and time.perf_counter() < end:
                pass
        if command[0] != seen and not SPIN_OK:
            self.barrier()
        while command[0] == seen:
            self.syscall(
                self.sys_futex, self.command_word, self.wait_op, ctypes.c_long(seen),
                ctypes.byref(self.one_second), None, ctypes.c_long(0),
            )
            if command[0] == seen and os.getppid() != self.parent:
                sys.exit(0)  # rlpg is gone
        self.seen = command[0]
        self.spin_gap = 0.75 * self.spin_gap + 0.25 * (time.perf_counter() - began)

    def barrier(self):
        """Orders this worker's later reads after its read of `command_seq` (on CPUs that may
        reorder reads): a futex wake system call with no one to wake is a full memory barrier."""
        self.syscall(
            self.sys_futex, self.command_word, ctypes.c_long(FUTEX_WAKE), ctypes.c_long(0),
            None, None, ctypes.c_long(0),
        )

    def finish(self, errors):
        """Reports the command done (with `errors`) and wakes rlpg if this worker was the last."""
        if errors:
            data = encode_errors(errors, self.error_room)
            self.mm[self.error_at : self.error_at + len(data)] = data
            self.done[1] = len(data)
        else:
            self.done[1] = 0
        self.done[0] = self.seen
        op, nr_wake, nr_wake2, encoded = self.wake_op
        self.syscall(
            self.sys_futex, self.finished_word, op, nr_wake, nr_wake2, self.finished_word, encoded
        )

    def action(self, i):
        np, sp, kind = self.np, self.act_space, self.kind
        if kind == "discrete":
            return int(self.act_i64[i, 0]) + self.act_start
        # Copies, shaped as the space: an env may keep the action it was given.
        if kind == "multi_discrete":
            return np.array(self.act_i64[i, : self.act_dim], dtype=sp.dtype).reshape(sp.shape) + sp.start
        if kind == "multi_binary":
            return np.array(self.act_i64[i, : self.act_dim], dtype=np.int8).reshape(sp.shape)
        return np.array(self.act_f32[i, : self.act_dim], dtype=sp.dtype).reshape(sp.shape)

    def write_obs(self, rows, i, obs):
        np = self.np
        if self.obs_start is not None:
            rows[i, 0] = int(obs) - self.obs_start
        elif self.obs_multi_discrete:
            rows[i] = (np.asarray(obs) - self.obs_space.start).astype(np.float32).ravel()
        elif type(obs) is np.ndarray and obs.shape == self.obs_row:
            rows[i] = obs  # a flat array (a Box's, usually): cast to float32 as astype does
        else:
            rows[i] = np.asarray(obs, dtype=np.float32).ravel()

    def write_mask(self, i, k):
        # MaskablePPO's flat layout; a tuple of per-component masks is concatenated.
        if not self.mask_len:
            return
        np = self.np
        mask = self.masks_fns[k]()
        if isinstance(mask, (tuple, list)) and len(mask) > 0 and np.ndim(mask[0]) > 0:
            mask = np.concatenate([np.ravel(np.asarray(m)) for m in mask])
        flags = np.ravel(np.asarray(mask)).astype(bool)
        if flags.size != self.mask_len:
            raise ValueError(
                "action_masks() returned %d flags, but the action space %r needs %d: %s"
                % (flags.size, self.act_space, self.mask_len, flags.astype(np.int8).tolist())
            )
        self.masks[i, : self.mask_len] = flags

    def write_infos(self, i, info):
        for j, name in enumerate(self.info_names):
            if name not in info:
                self.infos[i, j] = float("nan")
                continue
            try:
                self.infos[i, j] = float(self.np.asarray(info[name], dtype=self.np.float64).reshape(()))
            except Exception:
                raise ValueError("info[%r] is %r, not a number" % (name, info[name])) from None

    def reset(self, seed):
        errors = []
        current = self.current
        for k, env in enumerate(self.envs):
            i = self.first + k
            current[0] = i
            try:
                if seed is None:
                    out = env.reset()
                else:
                    out = env.reset(seed=(seed + i) % 2**64)
                self.write_obs(self.reset_obs, i, out[0])
            except Exception as e:
                errors.append(error(i, "reset", "exception", e))
                continue
            try:
                self.write_mask(i, k)
            except Exception as e:
                errors.append(error(i, "action_masks", "output", e))
        current[0] = -1
        return errors

    def step(self):
        errors = []
        current, rewards, flags = self.current, self.rewards, self.flags
        next_obs, write_obs, first = self.next_obs, self.write_obs, self.first
        # Discrete actions as Python ints, read at once; others made one by one.
        discrete = self.kind == "discrete"
        if discrete:
            actions = (self.act_i64[first : first + self.count, 0] + self.act_start).tolist()
        for k, step in enumerate(self.steps):
            i = first + k
            current[0] = i
            try:
                out = step(actions[k] if discrete else self.action(i))
            except Exception as e:
                # As in one process: the batch stops at the first env that fails.
                errors.append(error(i, "step", "exception", e))
                break
            try:
                obs, reward, terminated, truncated = out[0], float(out[1]), bool(out[2]), bool(out[3])
                write_obs(next_obs, i, obs)
                if self.info_names:
                    self.write_infos(i, out[4])
            except Exception as e:
                errors.append(error(i, "step", "output", e))
                break
            rewards[i] = reward
            flags[i] = terminated | truncated << 1
            if terminated or truncated:
                try:
                    write_obs(self.reset_obs, i, self.resets[k]()[0])
                except Exception as e:
                    errors.append(error(i, "reset", "exception", e))
                    continue
            # The mask of the state the env acts on next: after the reset for one that ended.
            if self.mask_len:
                try:
                    self.write_mask(i, k)
                except Exception as e:
                    errors.append(error(i, "action_masks", "output", e))
                    break
        current[0] = -1
        return errors


def struct_size(code):
    return {"d": 8, "q": 8, "Q": 8, "I": 4, "B": 1}[code]


main()
