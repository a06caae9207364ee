"""`het-ensembles bench`: time and memory of the heteroscedastic head, side by side with edward2.

Protocol (DESIGN.md section 4): B=64, D=2048, K=1000, R=15, tau=1.5, S in {100, 1000, 5000}; one
process per configuration (so peak RSS belongs to that row alone); the median of >= 5 timed train
steps (forward + backward of the head, after warm-up). Rows: this project's `MCSoftmaxDenseFA`
(per-example and shared noise), the same head with `latent_dim=D` (HET-XL; `--classes 21843`
for ImageNet-21k), edward2 0.0.2's `MCSoftmaxDenseFA` (same arguments, both
share-samples settings), a plain Dense head, and the floor: `tf.nn.log_softmax` forward + backward
over one [B, S, K] tensor. Ratios measured in the same run are the figures that count.

Memory is reported two ways: the process's peak RSS (and its growth over the Dense row, which for
an FA head includes its 2048 x 15000 factor kernel and that kernel's gradient, ~0.25 GiB in any
implementation), and the step memory: the peak during the train steps minus the RSS once the head
is built, i.e. the working memory of the Monte Carlo estimate itself.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from tqdm import tqdm

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
    parameters = int(sum(np.prod(w.shape) for w in head.trainable_weights))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = head(x, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
        return tape.gradient(loss, head.trainable_weights)

    step.parameters = parameters
    return step


def _worker(impl, share, num_samples, steps, spec):
    """Runs one configuration in this process and returns its row."""
    step = _train_step(impl, share, num_samples, spec)
    # Working memory of the steps alone: peak during the steps minus the RSS once the weights
    # exist. The process peak also counts building the head (weights, their initialisers).
    reset = _reset_peak_rss()
    rss_before_steps = _status_mib("VmRSS")
    for _ in range(2):  # warm-up: tracing and first-touch allocation
        step()
    times, cpu_times = [], []
    for _ in range(steps):
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        result = step()
        # Gradients are EagerTensors: .numpy() waits for the step to finish.
        [t.numpy() for t in (result if isinstance(result, list) else [result])]
        times.append(time.perf_counter() - start)
        cpu_times.append(_cpu_seconds() - cpu_start)
        del result  # only one step's gradients alive at a time
    return {
        "impl": impl,
        "share_samples": share,
        "num_samples": num_samples,
        "seconds_per_step": statistics.median(times),
        "cpu_seconds_per_step": statistics.median(cpu_times),
        "peak_rss_mib": _peak_rss_mib(),
        "step_memory_mib": (_status_mib("VmHWM") - rss_before_steps) if reset else None,
        "steps": steps,
        "parameters": getattr(step, "parameters", None),
    }


def _run_row(impl, share, num_samples, steps, spec):
    cmd = [
        sys.executable, "-m", "het_ensembles.bench", "--_worker",
        json.dumps([impl, share, num_samples, steps, spec]),
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"impl": impl, "share_samples": share, "num_samples": num_samples,
                "error": " | ".join(tail) or f"exit code {proc.returncode}"}  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _format_table(rows):
    dense = next((r for r in rows if r["impl"] == "dense" and "error" not in r), None)
    lines = [
        (
            "| head | noise | S | s/step | CPU s/step | peak RSS MiB | RSS over Dense MiB |"
            " step memory MiB | time vs edward2 | vs floor | parameters |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        noise = "-" if r["impl"] in ("dense", "floor") else ("shared" if r["share_samples"] else
                                                            "per-example")  # fmt: skip
        if "error" in r:
            lines.append(f"| {r['impl']} | {noise} | {r['num_samples']} | failed: {r['error']} |"
                         " | | | | | |")  # fmt: skip
            continue
        growth = r["peak_rss_mib"] - dense["peak_rss_mib"] if dense else float("nan")
        ratio_ed, ratio_floor = "", ""
        if r["impl"] in ("het_ensembles", "het_xl"):
            twin = _find(rows, "edward2", r["share_samples"], r["num_samples"])
            floor = _find(rows, "floor", False, r["num_samples"])
            if twin:
                ratio_ed = f"{r['seconds_per_step'] / twin['seconds_per_step']:.2f}x"
            if floor:
                ratio_floor = f"{r['seconds_per_step'] / floor['seconds_per_step']:.2f}x"
        lines.append(
            f"| {r['impl']} | {noise} | {r['num_samples'] if r['impl'] != 'dense' else '-'} | "
            f"{r['seconds_per_step']:.3f} | {r['cpu_seconds_per_step']:.3f} | "
            f"{r['peak_rss_mib']:.0f} | {growth:.0f} | "
            f"{_mib(r.get('step_memory_mib'))} | {ratio_ed} | {ratio_floor} | "
            f"{r.get('parameters') or '-'} |"
        )
    return "\n".join(lines)


def _mib(value):
    return "n/a" if value is None else f"{value:.0f}"


def _find(rows, impl, share, num_samples):
    for r in rows:
        if (r["impl"], r["share_samples"], r["num_samples"]) == (impl, share, num_samples):
            return None if "error" in r else r
    return None


def run(sample_sizes, *, steps=5, impls=None, spec=None):
    """Runs every configuration, each in its own process; returns the rows."""
    spec = dict(DEFAULTS, **(spec or {}))
    plan = [("dense", False, 1)] + [
        (impl, share, s) for s in sample_sizes for impl, share in ROWS
        if impls is None or impl in impls
    ]  # fmt: skip
    rows = []
    with tqdm(plan, desc="bench", unit="config", file=sys.stderr) as bar:
        for impl, share, s in bar:
            bar.set_postfix_str(f"{impl} share={share} S={s}")
            rows.append(_run_row(impl, share, s, steps, spec))
    return rows


def _write_json(path, payload):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


def cli_main(argv):
    parser = argparse.ArgumentParser(prog="het-ensembles bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="S=1000 only (under 2 minutes)")
    parser.add_argument("--samples", default=None,
                        help="comma-separated S values (default 100,1000,5000)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row (>= 5)")
    parser.add_argument("--only", default=None,
                        help="comma-separated subset of het_ensembles,het_xl,edward2,"
                        "floor")  # fmt: skip
    parser.add_argument("--json", default=None, help="write the rows as JSON to this path")
    parser.add_argument("--classes", type=int, default=DEFAULTS["classes"],
                        help="number of classes K (e.g. 21843 for ImageNet-21k)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.steps < 5:
        parser.error(f"--steps must be >= 5. Received: --steps={args.steps}")
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
    spec = dict(DEFAULTS, classes=args.classes)
    rows = run(samples, steps=args.steps, impls=impls, spec=spec)
    print(_format_table(rows))
    if args.json:
        _write_json(args.json, {"protocol": spec, "rows": rows})
        print(f"wrote {args.json}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--_worker":
        impl, share, num_samples, steps, spec = json.loads(sys.argv[2])
        print(json.dumps(_worker(impl, share, num_samples, steps, spec)))
    else:
        sys.exit(cli_main(sys.argv[1:]))
