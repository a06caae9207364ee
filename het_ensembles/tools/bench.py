"""`het-ensembles bench`: time and memory of the heteroscedastic head, side by side with edward2.

Protocol: B=64, D=2048, K=1000, R=15, tau=1.5, S in {100, 1000, 5000}.
Rows: this project's `MCSoftmaxDenseFA` (per-example and shared noise), the same head with
`latent_dim=D` (HET-XL; `--classes 21843` for ImageNet-21k), edward2 0.0.2's `MCSoftmaxDenseFA`
(same arguments, both share-samples settings), a plain Dense head, and the floor:
`tf.nn.log_softmax` forward + backward over one [B, S, K] tensor. A step is forward + backward of
the head on fixed inputs. Each row reports its head's trainable parameter count.

A shared machine's load drifts within minutes, so rows run **interleaved in rounds**: for each S,
round r runs every row once (ours, HET-XL, edward2, ..., each in a fresh process so its memory is its own:
one warm-up step, then `ceil(steps / rounds)` timed steps), then round r + 1 does the same. Each
row reports the min and median of all its timed steps; each ratio (ours / edward2, ours / floor)
is computed per round from the two rows' fastest steps in that round, and reported as the median
over rounds with its min-max spread. A warning is printed when a row's per-round times, or a
ratio's per-round values, differ by more than 20%. Ratios are the headline figures.

Memory is reported two ways: the process's peak RSS, and the step memory: the peak during the
train steps minus the RSS once the head is built (the largest over rounds). The step memory
includes the gradients the step returns (133 MiB for the FA head, whose 2048 x 15000 factor
kernel any implementation must differentiate); the memory ratio is also given without them,
which is the working memory of the Monte Carlo estimate itself.

`--context` instead times the head inside a real model: ResNet-50 with the head of the shipped
ImageNet recipe, `configs/imagenet/heteroscedastic.py`, built as `het-ensembles train` builds it
(FA, R=15, tau=1.5, S=5000 samples shared across the batch in training and at test), against
the deterministic one, B=32, 224 x 224 inputs: train step (forward + backward) and test
ms/example, interleaved in rounds the same way.

The edward2 rows need the `[reference]` extra (`pip install "het-ensembles[reference]"`, i.e.
edward2 0.0.2); without it the command says so and exits, unless `--only` leaves them out.
"""

import argparse
import importlib.util
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

from tqdm import tqdm

from het_ensembles import member_dir

ROWS = (
    ("het_ensembles", False),
    ("het_ensembles", True),
    ("het_xl", False),  # MCSoftmaxDenseFA(latent_dim=D): HET-XL, noise in the D-dim pre-logits
    ("het_xl", True),
    ("edward2", False),
    ("edward2", True),
    ("floor", False),
)
DEFAULTS = {"batch": 64, "dim": 2048, "classes": 1000, "factors": 15, "temperature": 1.5}
# --context: (model, head, phase) rows; the head settings are configs/imagenet/heteroscedastic.py's.
CONTEXT_ROWS = (
    ("resnet50", "dense", "train"),
    ("resnet50", "het", "train"),
    ("resnet50", "dense", "test"),
    ("resnet50", "het", "test"),
)
CONTEXT_SPEC = {"batch": 32, "image_size": 224, "classes": 1000}
CONTEXT_CONFIG = "configs/imagenet/heteroscedastic.py"  # --context benches this recipe's head
DISAGREEMENT = 0.2  # rounds differing by more than this (max / min - 1) trigger a warning


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cpu_seconds():
    """User + system CPU time of this process (all threads): steadier than wall time when the
    machine is shared."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_mib(field):
    """VmRSS / VmHWM of this process from /proc (Linux), in MiB; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux clear_refs 5); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _train_step(impl, share, num_samples, spec):
    """A tf.function doing forward + backward of one head on fixed random inputs."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.RandomState(0)
    batch, dim, classes = spec["batch"], spec["dim"], spec["classes"]
    x = tf.constant(rng.randn(batch, dim).astype("float32"))
    y = tf.constant(rng.randint(0, classes, batch))
    if impl == "floor":
        z = tf.Variable(rng.randn(batch, num_samples, classes).astype("float32"))

        @tf.function
        def floor_step():
            with tf.GradientTape() as tape:
                loss = -tf.reduce_sum(tf.nn.log_softmax(z)[:, :, 0])
            return tape.gradient(loss, z)

        return floor_step
    args = {
        "num_classes": classes,
        "num_factors": spec["factors"],
        "temperature": spec["temperature"],
        "train_mc_samples": num_samples,
        "share_samples_across_batch": share,
        "logits_only": True,
    }
    if impl == "dense":
        import keras

        head = keras.layers.Dense(classes)
    elif impl == "edward2":
        sys.modules.setdefault("edward2.numpy", None)  # its NumPy backend breaks on new SciPy
        import edward2

        head = edward2.layers.MCSoftmaxDenseFA(**args)
    else:
        from het_ensembles import layers

        het_xl = {"latent_dim": dim} if impl == "het_xl" else {}
        head = layers.MCSoftmaxDenseFA(**args, **het_xl, seed=0)
    head(x[:1], training=True) if impl == "edward2" else head(x[:1])
    step = _gradient_step(head, x, y)
    step.parameters = int(sum(np.prod(w.shape) for w in head.trainable_weights))
    return step


def _gradient_step(layer, x, y):
    """A tf.function of one training step's work: the cross-entropy of `layer(x)` against `y`
    and its gradient with respect to all of `layer`'s trainable weights (returned)."""
    import tensorflow as tf

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = layer(x, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
        return tape.gradient(loss, layer.trainable_weights)

    return step


def context_head(config_file=CONTEXT_CONFIG):
    """The heteroscedastic head of `config_file` as `het-ensembles train` builds it."""
    from het_ensembles.training import config as config_lib

    return config_lib.head_kwargs(config_lib.complete_config(config_lib.load_config(config_file)))


def _context_step(head, phase, spec):
    """A tf.function running ResNet-50 (dense or heteroscedastic head) on fixed random images:
    forward + backward over all weights ("train") or the inference forward pass ("test")."""
    import numpy as np
    import tensorflow as tf

    from het_ensembles.models import build_model

    rng = np.random.RandomState(0)
    batch, size, classes = spec["batch"], spec["image_size"], spec["classes"]
    x = tf.constant(rng.randn(batch, size, size, 3).astype("float32"))
    y = tf.constant(rng.randint(0, classes, batch))
    head_spec = spec["head"] if head == "het" else {"type": "dense"}
    model = build_model("resnet50", input_shape=(size, size, 3), num_classes=classes,
                        head=head_spec, l2=1e-4, seed=0)  # fmt: skip

    if phase == "test":
        return tf.function(lambda: model(x, training=False))
    return _gradient_step(model, x, y)


def _worker(row, steps, spec):
    """Runs one configuration for one round in this process: one warm-up step, then `steps`
    timed steps. Returns the row's times and memory."""
    if row[0] == "resnet50":
        step = _context_step(row[1], row[2], spec)
    else:
        step = _train_step(*row, spec)
    # Working memory of the steps alone: peak during the steps minus the RSS once the weights
    # exist. The process peak also counts building the head (weights, their initialisers).
    reset = _reset_peak_rss()
    rss_before_steps = _status_mib("VmRSS")
    step()  # warm-up: tracing and first-touch allocation
    times, cpu_times, output_bytes = [], [], 0
    for _ in range(steps):
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        result = step()
        # Results are EagerTensors: .numpy() waits for the step to finish.
        outputs = [t.numpy() for t in (result if isinstance(result, list) else [result])]
        output_bytes = sum(o.nbytes for o in outputs)
        times.append(time.perf_counter() - start)
        cpu_times.append(_cpu_seconds() - cpu_start)
        del result, outputs  # only one step's outputs alive at a time
    return {
        "times": times,
        "cpu_times": cpu_times,
        "peak_rss_mib": _peak_rss_mib(),
        "step_memory_mib": (_status_mib("VmHWM") - rss_before_steps) if reset else None,
        "output_mib": output_bytes / 2**20,
        "parameters": getattr(step, "parameters", None),
    }


def _run_round(row, steps, spec):
    """One round of one row, in a fresh process; {"error": ...} if it failed."""
    cmd = [sys.executable, "-m", "het_ensembles.tools.bench", "--_worker",
           json.dumps([list(row), steps, spec])]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit code {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _summarise(row, rounds):
    """A row's figures over its rounds (`rounds`: one `_worker` result per round)."""
    keys = ("impl", "share_samples", "num_samples")
    summary = dict(zip(keys, row)) if row[0] != "resnet50" else {
        "model": row[0], "head": row[1], "phase": row[2]}  # fmt: skip
    failed = [r["error"] for r in rounds if "error" in r]
    if failed:
        return {**summary, "error": failed[0]}
    times = [t for r in rounds for t in r["times"]]
    memory = [r["step_memory_mib"] for r in rounds if r["step_memory_mib"] is not None]
    return {
        **summary,
        "seconds_min": min(times),
        "seconds_median": statistics.median(times),
        "cpu_seconds_median": statistics.median(t for r in rounds for t in r["cpu_times"]),
        "round_seconds": [min(r["times"]) for r in rounds],  # each round's fastest step
        "peak_rss_mib": max(r["peak_rss_mib"] for r in rounds),
        "step_memory_mib": max(memory) if memory else None,
        "output_mib": rounds[0]["output_mib"],
        "parameters": rounds[0].get("parameters"),
        "times": times,
    }


def _spread(values):
    """max / min - 1 of positive values (0 for one value)."""
    return max(values) / min(values) - 1 if values else 0.0


def _ratio(row, other):
    """Per-round time ratio row / other: median, min, max, and the per-round values."""
    if row is None or other is None or "error" in row or "error" in other:
        return None
    per_round = [a / b for a, b in zip(row["round_seconds"], other["round_seconds"])]
    return {"median": statistics.median(per_round), "min": min(per_round),
            "max": max(per_round), "rounds": per_round}  # fmt: skip


def _interleave(plan, rounds, steps, spec, desc):
    """Runs the rows of `plan` in `rounds` interleaved rounds; returns {row: [round results]}."""
    results = {row: [] for row in plan}
    per_round = math.ceil(steps / rounds)
    with tqdm(total=rounds * len(plan), desc=desc, unit="run", file=sys.stderr) as bar:
        for r in range(rounds):
            for row in plan:
                bar.set_postfix_str(f"round {r + 1}: {' '.join(map(str, row))}")
                results[row].append(_run_round(row, per_round, spec))
                bar.update()
    return results


def run(sample_sizes, *, steps=6, rounds=3, impls=None, spec=None):
    """Runs every configuration, interleaved in rounds per S; returns the rows and warnings."""
    spec = dict(DEFAULTS, **(spec or {}))
    rows = []
    for s in sample_sizes:
        plan = [(impl, share, s) for impl, share in ROWS if impls is None or impl in impls]
        if s == sample_sizes[0]:
            plan = [("dense", False, 1)] + plan
        results = _interleave(plan, rounds, steps, spec, f"bench S={s}")
        rows += [_summarise(row, results[row]) for row in plan]
    return rows, compare(rows)


def compare(rows):
    """Adds the ratios to our rows (in place); returns warnings about disagreeing rounds."""
    for r in rows:
        if r["impl"] not in ("het_ensembles", "het_xl") or "error" in r:
            continue
        twin = _find(rows, "edward2", r["share_samples"], r["num_samples"])
        r["vs_edward2"] = _ratio(r, twin)
        r["vs_floor"] = _ratio(r, _find(rows, "floor", False, r["num_samples"]))
        if twin and r["step_memory_mib"] and twin["step_memory_mib"]:
            r["memory_vs_edward2"] = r["step_memory_mib"] / twin["step_memory_mib"]
            # Without the gradients the step returns (the same ~133 MiB for both heads).
            r["working_memory_vs_edward2"] = (r["step_memory_mib"] - r["output_mib"]) / (
                twin["step_memory_mib"] - twin["output_mib"]
            )
    warnings = []
    for r in rows:
        if "error" in r:
            continue
        name = f"{r['impl']} {_noise(r)} S={r['num_samples']}"
        if _spread(r["round_seconds"]) > DISAGREEMENT:
            warnings.append(f"{name}: rounds disagree by {_spread(r['round_seconds']):.0%} "
                            f"({', '.join(f'{t:.3f}' for t in r['round_seconds'])} s)")  # fmt: skip
        for key in ("vs_edward2", "vs_floor"):
            ratio = r.get(key)
            if ratio and ratio["max"] / ratio["min"] - 1 > DISAGREEMENT:
                warnings.append(f"{name} {key}: per-round ratios disagree by "
                                f"{ratio['max'] / ratio['min'] - 1:.0%}")  # fmt: skip
    return warnings


def run_context(*, steps=6, rounds=3, spec=None):
    """ResNet-50 with a dense vs a heteroscedastic head, interleaved in rounds."""
    spec = {**CONTEXT_SPEC, "head": context_head(), **(spec or {})}
    results = _interleave(list(CONTEXT_ROWS), rounds, steps, spec, "bench --context")
    rows = [_summarise(row, results[row]) for row in CONTEXT_ROWS]
    for r in rows:
        if r["head"] == "het" and "error" not in r:
            dense = next(d for d in rows if (d["head"], d["phase"]) == ("dense", r["phase"]))
            r["vs_dense"] = _ratio(r, dense)
    warnings = [
        f"resnet50 {r['head']} {r['phase']}: rounds disagree by {_spread(r['round_seconds']):.0%}"
        for r in rows
        if "error" not in r and _spread(r["round_seconds"]) > DISAGREEMENT
    ]
    return rows, warnings, spec


def _noise(r):
    if r["impl"] in ("dense", "floor"):
        return "-"
    return "shared" if r["share_samples"] else "per-example"


def _fmt_ratio(ratio):
    if not ratio:
        return ""
    return f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f})"


def _mib(value):
    return "n/a" if value is None else f"{value:.0f}"


def _format_table(rows):
    lines = [
        (
            "| head | noise | S | min s/step | median s/step | CPU s/step | step memory MiB |"
            " of which gradients | peak RSS MiB | time vs edward2 (spread) | memory vs edward2"
            " (without gradients) | time vs floor (spread) | parameters |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = "-" if r["impl"] == "dense" else r["num_samples"]
        if "error" in r:
            lines.append(f"| {r['impl']} | {_noise(r)} | {s} | failed: {r['error']} |"
                         " | | | | | | | | |")  # fmt: skip
            continue
        memory_ratio = ""
        if r.get("memory_vs_edward2"):
            memory_ratio = f"{r['memory_vs_edward2']:.3f}x ({r['working_memory_vs_edward2']:.3f}x)"
        lines.append(
            f"| {r['impl']} | {_noise(r)} | {s} | {r['seconds_min']:.3f} | "
            f"{r['seconds_median']:.3f} | {r['cpu_seconds_median']:.3f} | "
            f"{_mib(r['step_memory_mib'])} | {r['output_mib']:.0f} | {r['peak_rss_mib']:.0f} | "
            f"{_fmt_ratio(r.get('vs_edward2'))} | {memory_ratio} | {_fmt_ratio(r.get('vs_floor'))} | "
            f"{r.get('parameters') or '-'} |"
        )
    return "\n".join(lines)


def _format_context(rows, spec):
    lines = [
        (
            "| model | head | phase | min s/step | median s/step | ms/example (min) |"
            " step memory MiB | time vs dense (spread) |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['head']} | {r['phase']} | failed: {r['error']} |"
                         " | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {r['model']} | {r['head']} | {r['phase']} | {r['seconds_min']:.3f} | "
            f"{r['seconds_median']:.3f} | {1000 * r['seconds_min'] / spec['batch']:.1f} | "
            f"{_mib(r['step_memory_mib'])} | {_fmt_ratio(r.get('vs_dense'))} |"
        )
    return "\n".join(lines)


def _find(rows, impl, share, num_samples):
    for r in rows:
        if (r.get("impl"), r.get("share_samples"), r.get("num_samples")) == (
            impl, share, num_samples):  # fmt: skip
            return None if "error" in r else r
    return None


def cli_main(argv):
    parser = argparse.ArgumentParser(prog="het-ensembles bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="S=1000 only (~4 minutes)")
    parser.add_argument("--samples", default=None,
                        help="comma-separated S values (default 100,1000,5000)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=6,
                        help="timed steps per row, spread over the rounds (>= 5)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    parser.add_argument("--only", default=None,
                        help="comma-separated subset of het_ensembles,het_xl,edward2,"
                        "floor")  # fmt: skip
    parser.add_argument("--context", action="store_true",
                        help="ResNet-50 B=32 224px: dense vs heteroscedastic head instead")  # fmt: skip
    parser.add_argument("--json", default=None, help="write the rows as JSON to this path")
    parser.add_argument("--classes", type=int, default=DEFAULTS["classes"],
                        help="number of classes K (e.g. 21843 for ImageNet-21k)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.steps < 5:
        parser.error(f"--steps must be >= 5. Received: --steps={args.steps}")
    if args.rounds < 3:
        parser.error(f"--rounds must be >= 3. Received: --rounds={args.rounds}")
    try:
        samples = (
            [1000] if args.quick and args.samples is None
            else [int(s) for s in (args.samples or "100,1000,5000").split(",")]
        )  # fmt: skip
    except ValueError:
        parser.error(f"--samples must be comma-separated integers. Received: {args.samples}")
    if any(s < 1 for s in samples):
        parser.error(f"--samples values must be >= 1. Received: {args.samples}")
    impls = None if args.only is None else set(args.only.split(","))
    known = {impl for impl, _ in ROWS}
    if impls is not None and not impls <= known:
        parser.error(f"--only takes a subset of {sorted(known)}. Received: --only={args.only}")
    if args.classes < 2:
        parser.error(f"--classes must be >= 2. Received: --classes={args.classes}")
    wants_edward2 = not args.context and (impls is None or "edward2" in impls)
    if wants_edward2 and importlib.util.find_spec("edward2") is None:
        parser.error(
            "the edward2 rows need edward2 0.0.2, the [reference] extra: "
            'pip install "het-ensembles[reference]" (from a checkout: pip install -e ".[reference]"),'
            " or leave them out with --only het_ensembles,het_xl,floor"
        )
    load_before = os.getloadavg()
    if args.context:
        rows, warnings, protocol = run_context(steps=args.steps, rounds=args.rounds)
        table = _format_context(rows, protocol)
    else:
        spec = dict(DEFAULTS, classes=args.classes)
        rows, warnings = run(samples, steps=args.steps, rounds=args.rounds, impls=impls, spec=spec)
        table, protocol = _format_table(rows), spec
    load = (load_before[0], os.getloadavg()[0])
    print(table)
    print(f"rounds: {args.rounds}; load average (1 min) before / after: "
          f"{load[0]:.2f} / {load[1]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    for warning in warnings:
        print(f"WARNING: {warning}")
    if args.json:
        member_dir.write_json(args.json, {"protocol": protocol, "rounds": args.rounds,
                                "load_average": load, "warnings": warnings, "rows": rows})  # fmt: skip
        print(f"wrote {args.json}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--_worker":
        row, steps, spec = json.loads(sys.argv[2])
        print(json.dumps(_worker(tuple(row), steps, spec)))
    else:
        sys.exit(cli_main(sys.argv[1:]))
