"""Per-replica batching under a MirroredStrategy over 2 logical CPU devices.

Runs in a subprocess: logical devices must be configured before TensorFlow initialises, which
other tests in this pytest process may already have done.
"""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from het_ensembles import data

    x_test = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    data.register_arrays("replica_set", lambda: {
        "x_train": x_test, "y_train": np.arange(10) % 3, "x_test": x_test,
        "y_test": np.arange(10) % 3,
    })
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {"replicas": strategy.num_replicas_in_sync, "eval": [], "train": []}
    dataset = data.load("replica_set", "test", batch_size=4, is_training=False,
                        strategy=strategy)
    for x, y in dataset:
        xs = strategy.experimental_local_results(x)
        ys = strategy.experimental_local_results(y)
        out["eval"].append([[xi[:, 0].numpy().tolist(), yi.numpy().tolist()]
                            for xi, yi in zip(xs, ys)])
    iterator = iter(data.load("replica_set", "train", batch_size=4, is_training=True,
                              strategy=strategy))
    for _ in range(3):
        x, _ = next(iterator)
        out["train"].append([list(xi.shape) for xi in strategy.experimental_local_results(x)])
    try:
        data.load("replica_set", "train", batch_size=3, is_training=True, strategy=strategy)
    except ValueError as error:
        out["error"] = str(error)
    print("RESULT" + json.dumps(out))
    """
)


def test_per_replica_batches_cover_every_eval_example_once():
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], check=False, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, completed.stderr[-3000:]
    out = json.loads(lines[0][len("RESULT") :])
    assert out["replicas"] == 2
    # Global batch 4 = 2 per replica; the last global batch (2 examples) is kept.
    seen = []
    for step in out["eval"]:
        assert len(step) == 2 and all(len(x) <= 2 for x, _ in step)
        for x, y in step:
            assert [int(v) % 3 for v in x] == y  # features and labels stay paired
            seen.extend(int(v) for v in x)
    assert sorted(seen) == list(range(10))
    assert out["train"] == [[[2, 3], [2, 3]]] * 3
    assert "divisible by the number of replicas (2)" in out["error"]
