"""Streaming sets through the console script, as users run them: `het-ensembles train` one epoch
of a tiny CNN on a `folder:` set (with a truncated test image and `skip_corrupt=true`), on a
`tfrecord:` set (TF-slim labels from 1, a validation split), on `tfds:mnist` (under
`tfds.testing.mock_data`) and on a `webvision:` layout, then `het-ensembles evaluate` on each. Checked against the data written here: steps per epoch, K, examples counted and skipped,
and the evaluator's cache directory (flat, not the absolute path).
"""

import concurrent.futures
import json
import os

import console
import image_files
import pytest

TRAIN, TEST, CLASSES = 24, 6, ("ant", "bee", "cow")
MOCK = {"num_examples": 16}  # tfds:mnist: 16 mock examples per split
TINY = [
    "--config=configs/noisy_digits/heteroscedastic.py",
    "--config.image_size=16",
    "--config.train_epochs=1",
    "--config.warmup_epochs=0",
    "--config.per_core_batch_size=8",
    "--config.train_mc_samples=8",
    "--config.test_mc_samples=8",
    "--config.model_kwargs.filters=(4, 8)",
    "--config.model_kwargs.hidden_units=8",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("streaming_cli")
    image_files.write_folder_split(
        str(workdir / "imgs" / "train"), {i: CLASSES[i % 3] for i in range(TRAIN)}
    )
    image_files.write_folder_split(
        str(workdir / "imgs" / "test"), {i: CLASSES[i % 3] for i in range(TRAIN, TRAIN + TEST)}
    )
    cut = image_files.image_bytes(39, size=(40, 40))
    (workdir / "imgs" / "test" / "ant" / "cut.jpg").write_bytes(cut[: len(cut) // 2])
    records = [image_files.example(i, [1 + i % 3]) for i in range(TRAIN + TEST)]
    image_files.write_shards(str(workdir / "shards"), "train", records[:TRAIN], 3)
    image_files.write_shards(str(workdir / "shards"), "validation", records[TRAIN:], 1)
    webvision_labels = image_files.write_webvision(workdir / "webvision")
    folder = "folder:imgs?skip_corrupt=true"
    shards = "tfrecord:shards?label_offset=1"
    trains = [
        (["train", *TINY, f"--config.dataset={folder}", "--output_dir=runs/folder"], None),
        (
            [
                "train",
                *TINY,
                f"--config.dataset={shards}",
                "--config.validation_fraction=0.25",
                "--output_dir=runs/shards",
            ],
            None,
        ),
        (["train", *TINY, "--config.dataset=tfds:mnist", "--output_dir=runs/mnist"], MOCK),
        (["train", *TINY, "--config.dataset=webvision:webvision", "--output_dir=runs/web"], None),
    ]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: console.run(job[0], workdir, mock_tfds=job[1]), trains))
    evaluations = [
        ["evaluate", "--members", "runs/mnist", "--dataset", "tfds:mnist", "--output_dir=eval/mn"],
        [
            "evaluate",
            "--members",
            "runs/web",
            "--dataset",
            "webvision:webvision",
            "--output_dir=eval/web",
        ],
        ["evaluate", "--members", "runs/folder", "--dataset", folder, "--output_dir=eval/folder"],
        [
            "evaluate",
            "--members",
            "runs/shards",
            "--dataset",
            shards,
            f"{shards}:validation",
            "--output_dir=eval/shards",
        ],
    ]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(
            pool.map(
                lambda a: console.run([*a, "--no_progress"], workdir, mock_tfds=MOCK), evaluations
            )
        )

    def read(*parts):
        with open(os.path.join(workdir, *parts)) as f:
            return json.load(f)

    return workdir, folder, shards, read, webvision_labels


def test_training_sees_the_written_sets(runs):
    _, _, _, read, _ = runs
    folder_config, folder_metrics = (
        read("runs/folder/config.json"),
        read("runs/folder/metrics.json"),
    )
    assert folder_config["num_classes"] == 3
    assert folder_metrics["train/steps"] == TRAIN // 8  # one epoch of 24 images, batch 8
    # 7 test files listed, the truncated one skipped and counted.
    assert folder_metrics["test/num_examples"] == TEST
    assert folder_metrics["test/num_skipped"] == 1
    shards_config, shards_metrics = (
        read("runs/shards/config.json"),
        read("runs/shards/metrics.json"),
    )
    assert shards_config["num_classes"] == 3
    assert shards_metrics["train/steps"] == (TRAIN - TRAIN // 4) // 8  # 6 held out for validation
    assert shards_metrics["val/num_examples"] == TRAIN // 4
    assert shards_metrics["test/num_examples"] == TEST
    assert "test/num_skipped" not in shards_metrics


def test_evaluate_counts_skips_and_keeps_a_flat_cache(runs):
    workdir, folder, shards, read, _ = runs
    folder_results = read("eval/folder/metrics.json")
    assert folder_results[folder]["ensemble"]["num_examples"] == TEST
    assert folder_results[folder]["ensemble"]["num_skipped"] == 1
    shards_results = read("eval/shards/metrics.json")
    assert shards_results[shards]["ensemble"]["num_examples"] == TEST
    assert shards_results[f"{shards}:validation"]["ensemble"]["num_examples"] == TRAIN // 4
    for sub in ("folder", "shards"):
        caches = os.listdir(workdir / "eval" / sub / "predictions")
        assert all(
            "/" not in c and c.startswith(("folder_imgs_", "tfrecord_shards_")) for c in caches
        )
    assert sorted(c.split("_")[2] for c in os.listdir(workdir / "eval/shards/predictions")) == [
        "test",
        "validation",
    ]


def test_tfds_and_webvision_sets_train_and_evaluate(runs):
    _, _, _, read, webvision_labels = runs
    mnist_config, mnist_metrics = read("runs/mnist/config.json"), read("runs/mnist/metrics.json")
    assert mnist_config["num_classes"] == 10  # from the builder's ClassLabel
    assert mnist_metrics["train/steps"] == MOCK["num_examples"] // 8
    assert read("eval/mn/metrics.json")["tfds:mnist"]["ensemble"]["num_examples"] == 16
    web_config, web_metrics = read("runs/web/config.json"), read("runs/web/metrics.json")
    assert web_config["num_classes"] == 3 == max(webvision_labels.values()) + 1
    assert web_metrics["train/steps"] == 10 // 8  # 10 listed train images, batch 8
    web_eval = read("eval/web/metrics.json")["webvision:webvision"]["ensemble"]
    assert web_eval["num_examples"] == 4  # the val_filelist.txt images
