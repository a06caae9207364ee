"""configs/imagenet/heteroscedastic_mixup.py: uncertainty-baselines' "Heteroscedastic with Mixup".

Reference: google/uncertainty-baselines commit 163351d4, `baselines/imagenet/heteroscedastic.py`
mixup flags (lines 76-82: mixup_alpha 0 (off), same_mix_weight_per_batch False,
use_random_shuffling False, use_truncated_beta True; `adaptive_mixup: False` at line 160) and
`baselines/imagenet/README.md` (row "Heteroscedastic with Mixup": 58.4M parameters). The
parameter count is checked against He et al.'s closed form (tests/model_counts.py) plus
edward2's MCSoftmaxDenseFA head, and against the published 58.4M.
"""

import os

import numpy as np
import tensorflow_datasets as tfds
import test_paper_configs
from model_counts import resnet_trunk_counts

from het_ensembles import member_dir, training

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = "imagenet/heteroscedastic_mixup"
MIXUP = {
    "mixup_alpha": 0.2,  # not published for the row: Zhang et al.'s ImageNet value
    "same_mix_weight_per_batch": False,  # heteroscedastic.py:77
    "use_random_shuffling": False,  # :79
    "use_truncated_beta": True,  # :82
}


def load(name):
    return training.load_config(os.path.join(REPO, "configs", f"{name}.py")).to_dict()


def test_config_is_the_heteroscedastic_row_with_the_mixup_flags():
    config = load(NAME)
    assert config == {**load("imagenet/heteroscedastic"), **MIXUP}
    assert training.default_config().mixup_alpha == 0.0  # the script's default: off
    training.validate_config(training.complete_config(config), num_classes=1000)


def test_docstring_names_script_commit_row_and_launch_command():
    with open(os.path.join(REPO, "configs", f"{NAME}.py")) as f:
        source = f.read()
    docstring = " ".join(source.split('"""')[1].split())
    for text in (
        "`baselines/imagenet/heteroscedastic.py`",
        "163351d4",
        "Heteroscedastic with Mixup",
        "NLL 0.854, accuracy 78.9%, ECE 0.043",
        "58.4M",
        "mixup_rescaling_stats.npz",
        f"het-ensembles train --config=configs/{NAME}.py",
    ):
        assert text in docstring, text


def test_parameter_count_is_the_published_58_4m():
    config = training.complete_config(load(NAME))
    model = training.create_model(config, input_shape=(224, 224, 3), num_classes=1000)
    trunk, bn_channels = resnet_trunk_counts()
    head = 2 * (2048 * 1000 + 1000) + (2048 + 1) * 1000 * 15  # loc, scale, factors (edward2)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == trunk + head == 58_341_032
    assert model.count_params() == trainable + 2 * bn_channels  # + moving mean / variance
    assert abs(model.count_params() - 58.4e6) < 0.1e6  # README: 58.4M (mixup adds none)


def test_config_trains_one_step_with_mixup_and_reports_rescaling(tmp_path):
    config = training.complete_config(load(NAME))
    config.update(test_paper_configs.SMOKE)  # a step of a small CNN on 16 x 16 images
    with tfds.testing.mock_data(num_examples=8):
        results = training.train_and_evaluate(config, str(tmp_path / "member"))
    assert results["train/steps"] == 1
    for metric in ("nll", "accuracy", "ece"):
        assert np.isfinite(results[f"test/{metric}+rescaling"])
    stats = member_dir.read_npz(str(tmp_path / "member" / member_dir.MIXUP_RESCALING_STATS_FILE))
    assert stats["mean_images"].shape == (16, 16, 3) and stats["mean_labels"].shape == (1000,)
    np.testing.assert_allclose(stats["mean_labels"].sum(), 1.0, rtol=1e-5)  # mean of one-hots
