"""Config files by the name the docs use: found from any directory, or a clear error.

`--config=configs/imagenet/heteroscedastic.py` must work from any directory once the package is
installed (a checkout's configs, or a wheel's under `<prefix>/share/het-ensembles/configs`);
`train --help --config=FILE` shows FILE's values. Both are run as a user types them, through the
installed console script in a fresh directory.
"""

import os

import console
import pytest

from het_ensembles.training import config as config_lib

REPO_CONFIGS = os.path.join(console.REPO, "configs")


@pytest.mark.parametrize(
    "name",
    [
        "configs/imagenet/heteroscedastic.py",
        "imagenet/heteroscedastic.py",
        os.path.join(REPO_CONFIGS, "imagenet", "heteroscedastic.py"),
    ],
)
def test_a_shipped_config_is_found_from_any_directory(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resolved = config_lib.resolve_config_path(name)
    assert os.path.samefile(resolved, os.path.join(REPO_CONFIGS, "imagenet", "heteroscedastic.py"))
    assert config_lib.load_config(name).train_epochs == 180


def test_a_file_in_the_current_directory_wins_over_a_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("configs/imagenet")
    with open("configs/imagenet/heteroscedastic.py", "w") as f:
        f.write("import ml_collections\n\ndef get_config():\n")
        f.write("    return ml_collections.ConfigDict({'train_epochs': 7})\n")
    assert config_lib.load_config("configs/imagenet/heteroscedastic.py").train_epochs == 7


def test_a_missing_config_names_the_file_and_the_shipped_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.resolve_config_path("configs/imagenet/nope.py")
    message = str(error.value)
    assert "Received: config='configs/imagenet/nope.py'" in message
    assert str(tmp_path) in message
    assert config_lib.shipped_config_dir() in message


def test_train_help_shows_the_given_config_file(tmp_path):
    done = console.run(
        ["train", "--help", "--config=configs/imagenet/heteroscedastic.py"], tmp_path
    )
    assert "configs/imagenet/heteroscedastic.py, before overrides" in done.stdout
    assert "--config.train_epochs=180" in done.stdout  # the file's value, not the default 90
    assert "--config.num_factors=15" in done.stdout


def test_train_with_a_missing_config_exits_2_naming_it(tmp_path):
    done = console.run(
        ["train", "--config=configs/nope.py", "--output_dir=out"], tmp_path, check=False
    )
    assert done.returncode == 2
    assert "Received: config='configs/nope.py'" in done.stderr
    assert config_lib.shipped_config_dir() in done.stderr
    assert "Traceback" not in done.stderr
    assert not os.path.exists(tmp_path / "out")
