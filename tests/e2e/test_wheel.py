"""The package from a wheel, outside the clone: what `pip install .` users get.

A wheel built from this working tree (copied out first, so the build leaves nothing in the
clone) is installed with `--no-deps` into a fresh venv whose only other entries on `sys.path`
are the site-packages of the Python running the tests (TensorFlow and the other dependencies
come from there, also when that Python is itself a venv, which `--system-site-packages` would
skip). Those entries are added as plain paths, so their `.pth` files, the clone's editable
install among them, do not run: the wheel cannot be shadowed. Then, in a fresh directory outside the repo, the
venv's `het-ensembles` runs the README's commands: train with the documented
`--config=configs/noisy_digits/heteroscedastic.py` (found among the wheel's configs under
`<venv>/share/het-ensembles/configs`), evaluate and covariance of that member, and a missing
config is an error (exit 2) naming the file and the shipped configs.
"""

import json
import math
import os
import shutil
import site
import subprocess
import sys

import console
import pytest


def _copy_working_tree(destination):
    """The tracked and untracked, not ignored, files of the clone (the wheel's sources)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=console.REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = os.path.join(console.REPO, name)
        if os.path.isfile(source):
            os.makedirs(os.path.dirname(os.path.join(destination, name)), exist_ok=True)
            shutil.copy2(source, os.path.join(destination, name))


@pytest.fixture(scope="session")
def venv(tmp_path_factory):
    """A venv with the wheel installed; returns its directory."""
    root = tmp_path_factory.mktemp("wheel")
    source, wheels, venv = root / "source", root / "wheels", root / "venv"
    _copy_working_tree(source)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    console.run_command([*pip_wheel, "-w", wheels, source], root)
    (wheel,) = wheels.glob("het_ensembles-*.whl")
    console.run_command([sys.executable, "-m", "venv", venv], root)
    python = venv / "bin" / "python"
    (site_packages,) = venv.glob("lib/python*/site-packages")
    dependencies = [*site.getsitepackages(), site.getusersitepackages()]
    (site_packages / "test_dependencies.pth").write_text("\n".join(dependencies) + "\n")
    pip_install = [python, "-m", "pip", "install", "--no-deps", "--no-index"]
    console.run_command([*pip_install, "--force-reinstall", wheel], root)
    return venv


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("from_wheel")
    assert not str(path).startswith(console.REPO)
    return path


def _script(venv):
    return str(venv / "bin" / "het-ensembles")


def test_the_venv_imports_the_wheel_not_the_clone(venv, workdir):
    done = console.python(
        """
        import json
        import het_ensembles
        from het_ensembles.demo import members
        from het_ensembles.experiments import study
        from het_ensembles.training import config
        print(json.dumps({
            "file": het_ensembles.__file__,
            "configs": config.shipped_config_dir(),
            "demo": members.default_config_dir(),
            "study": [p for family in study.FAMILIES for p in study.default_configs(family)],
        }))
        """,
        workdir,
        executable=venv / "bin" / "python",
    )
    found = console.last_json(done.stdout)
    assert found["file"].startswith(str(venv)), found
    assert not found["file"].startswith(console.REPO)
    shipped = venv / "share" / "het-ensembles" / "configs"
    assert found["configs"] == str(shipped)
    for name in ("noisy_digits/heteroscedastic.py", "imagenet/heteroscedastic.py"):
        assert (shipped / name).is_file()
    # The demo and the study find the wheel's configs by themselves (README).
    assert found["demo"] == str(shipped)
    assert len(found["study"]) == 4
    assert all(path.startswith(str(shipped)) and os.path.isfile(path) for path in found["study"])
    (wheel,) = (venv.parent / "wheels").glob("het_ensembles-*.whl")
    version = console.run(["--version"], workdir, script=_script(venv))
    assert wheel.name.startswith(f"het_ensembles-{version.stdout.strip()}-")


@pytest.fixture(scope="module")
def member(venv, workdir):
    """The README's train line, from the wheel, with smoke flags appended."""
    console.run(
        [
            "train",
            "--config=configs/noisy_digits/heteroscedastic.py",
            "--config.train_epochs=1",
            "--config.train_mc_samples=16",
            "--config.test_mc_samples=64",
            "--output_dir=runs/het/0",
        ],
        workdir,
        script=_script(venv),
    )
    return workdir / "runs" / "het" / "0"


def test_train_finds_the_shipped_config(member):
    with open(member / "config.json") as f:
        config = json.load(f)
    assert config["head_class"] == "MCSoftmaxDenseFA" and config["num_factors"] == 3
    assert config["dataset"] == "noisy_digits" and config["train_epochs"] == 1
    with open(member / "metrics.json") as f:
        results = json.load(f)
    assert results["train/epochs"] == 1 and results["test/num_examples"] == 539
    assert math.isfinite(results["test/nll"])


def test_evaluate_and_covariance_of_the_member(venv, workdir, member):
    console.run(
        [
            "evaluate",
            "--members",
            "runs/het/*",
            "--dataset",
            "noisy_digits",
            "--output_dir",
            "runs/eval_het",
        ],
        workdir,
        script=_script(venv),
    )
    with open(workdir / "runs" / "eval_het" / "metrics.json") as f:
        results = json.load(f)
    ensemble = results["noisy_digits"]["ensemble"]
    assert ensemble["num_examples"] == 539 and 0 <= ensemble["accuracy"] <= 1
    assert (workdir / "runs" / "eval_het" / "leaderboard.md").is_file()
    done = console.run(["covariance", "--member", "runs/het/0"], workdir, script=_script(venv))
    assert "top 5 pairs" in done.stdout
    assert (member / "covariance" / "covariance_pairs.json").is_file()


def test_a_missing_config_exits_2_naming_it_and_the_shipped_configs(venv, workdir):
    done = console.run(
        ["train", "--config=configs/nope.py", "--output_dir=x"],
        workdir,
        script=_script(venv),
        check=False,
    )
    assert done.returncode == 2, done.stderr[-4000:]
    assert "configs/nope.py" in done.stderr
    assert str(venv / "share" / "het-ensembles" / "configs") in done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / "x").exists()
