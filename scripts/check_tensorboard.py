"""Reads an rlpg run directory with TensorBoard's own data layer and checks what it shows.

Usage: check_tensorboard.py RUN_DIR (a run trained with capture_video_every > 0 that finished).
Exits non-zero with a message naming the first thing that is wrong.
"""

import glob
import json
import math
import os
import sys
import tomllib

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util


def fail(message):
    print(f"check_tensorboard: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def main(run_dir):
    with open(os.path.join(run_dir, "config.toml"), "rb") as f:
        config = tomllib.load(f)
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    acc = event_accumulator.EventAccumulator(
        run_dir,
        size_guidance={
            event_accumulator.SCALARS: 0,
            event_accumulator.IMAGES: 0,
            event_accumulator.TENSORS: 0,
        },
    )
    acc.Reload()
    tags = acc.Tags()

    # Scalars: the curves, the smoothed return, and the final evaluation at the last step.
    for tag in [
        "charts/episodic_return",
        "charts/episodic_length",
        "charts/SPS",
        "charts/episodic_return_mean100",
        "eval/mean_return",
        "losses/policy_loss",
    ]:
        check(tag in tags["scalars"], f"scalar {tag} missing; scalars: {tags['scalars']}")
    evals = acc.Scalars("eval/mean_return")
    check(evals[-1].step == summary["steps"], f"last eval at step {evals[-1].step}")
    want = summary["final_eval_mean_return"]
    check(
        math.isclose(evals[-1].value, want, rel_tol=1e-6, abs_tol=1e-4),
        f"final eval {evals[-1].value} != summary's {want}",
    )
    mean100 = acc.Scalars("charts/episodic_return_mean100")
    log_every = config["log_every"]
    check(len(mean100) >= summary["steps"] // log_every - 1, f"{len(mean100)} mean100 points")
    returns = [e.value for e in acc.Scalars("charts/episodic_return")]
    upto = [e.value for e in acc.Scalars("charts/episodic_return") if e.step <= mean100[-1].step]
    recent = upto[-100:]
    check(
        math.isclose(mean100[-1].value, sum(recent) / len(recent), rel_tol=1e-4),
        f"mean100 {mean100[-1].value} is not the mean of the last 100 returns",
    )
    check(len(returns) == summary["episodes"], f"{len(returns)} returns, {summary['episodes']} episodes")

    # The config as a Markdown table in the Text dashboard, at step 0.
    check("config" in tags["tensors"], f"no config text; tensors: {tags['tensors']}")
    text_event = acc.Tensors("config")[0]
    check(text_event.step == 0, f"config text at step {text_event.step}")
    check(
        acc.SummaryMetadata("config").plugin_data.plugin_name == "text",
        "config text is not a text-plugin summary",
    )
    text = tensor_util.make_ndarray(text_event.tensor_proto).item().decode()
    check(text.startswith("| key | value |"), f"config text is not a table: {text[:80]!r}")
    check(f"| env | {config['env']} |" in text, "config text lacks the env row")
    lr = config["reinforce"]["learning_rate"]
    rows = dict(
        (cells[1].strip(), cells[2].strip())
        for cells in (line.split("|") for line in text.splitlines()[2:])
    )
    check(math.isclose(float(rows["reinforce.learning_rate"]), lr), "config text learning rate")
    check(rows["seed"] == str(config["seed"]), f"config text seed {rows['seed']}")

    # The HParams session, parsed by the hparams plugin's own parser.
    content = acc.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start_tag, end_tag = hparams_metadata.SESSION_START_INFO_TAG, hparams_metadata.SESSION_END_INFO_TAG
    check(start_tag in content and end_tag in content, f"hparams tags: {sorted(content)}")
    start = hparams_metadata.parse_session_start_info_plugin_data(content[start_tag])
    check(start.hparams["env"].string_value == config["env"], f"hparams env: {start.hparams['env']}")
    check(start.hparams["seed"].number_value == config["seed"], "hparams seed")
    check(
        math.isclose(start.hparams["reinforce.learning_rate"].number_value, lr),
        "hparams reinforce.learning_rate",
    )
    check(start.hparams["normalize_obs"].bool_value == config["normalize_obs"], "hparams normalize_obs")
    check(not any(k.startswith("pathwise.") for k in start.hparams), "another agent's hparams")
    end = hparams_metadata.parse_session_end_info_plugin_data(content[end_tag])
    check(end.status == api_pb2.STATUS_SUCCESS, f"session end status {end.status}")

    # The videos: animated GIFs in the Images dashboard, the same bytes as videos/*.gif.
    check("videos/eval" in tags["images"], f"no videos/eval image; images: {tags['images']}")
    images = acc.Images("videos/eval")
    files = sorted(glob.glob(os.path.join(run_dir, "videos", "step-*.gif")))
    check(len(images) == len(files) >= 2, f"{len(images)} images, {len(files)} GIF files")
    every = config["capture_video_every"]
    for image, path in zip(images, files):
        check(image.encoded_image_string[:6] == b"GIF89a", f"image at {image.step} is not a GIF")
        with open(path, "rb") as f:
            check(f.read() == image.encoded_image_string, f"{path} differs from its image")
        check(os.path.basename(path) == f"step-{image.step:09d}.gif", f"{path} at {image.step}")
        check(image.step % every == 0 or image.step == summary["steps"], f"video at {image.step}")
        check((image.width, image.height) == (300, 200), f"video size {image.width}x{image.height}")
    gif = images[-1].encoded_image_string
    frames = gif.count(b"\x21\xf9\x04")  # one graphic control extension per frame
    check(frames > 100, f"the last video has {frames} frames")
    print(
        f"check_tensorboard: ok: {len(tags['scalars'])} scalar tags, config text "
        f"({len(text.splitlines())} lines), hparams session ({len(start.hparams)} hparams, "
        f"status SUCCESS), {len(images)} videos ({', '.join(str(len(i.encoded_image_string)) for i in images)} bytes)"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1])
