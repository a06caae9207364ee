"""Run the product the way users do: the installed `het-ensembles` console script, in a fresh shell.

`run(args, cwd)` starts the console script of the Python running the tests (or another one, e.g.
from a wheel installed in a fresh venv) as a subprocess in `cwd`, with nothing imported
beforehand, and returns the finished process. `mock_tfds=dict(num_examples=8)` runs it under
`tfds.testing.mock_data(**mock_tfds)`, entered at interpreter start-up by a `sitecustomize`
module this file writes, so even TFDS-backed commands (`--suite imagenet`, the baselines
scripts) run as typed, without the network. An `as_dataset_fn` in `mock_tfds` is given as
`"path/to/file.py:function"` (the subprocess loads it from that file).
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

BIN = os.path.dirname(sys.executable)
SCRIPT = os.path.join(BIN, "het-ensembles")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SITECUSTOMIZE = """\
import json, os
_mock = os.environ.get("HET_ENSEMBLES_TEST_MOCK_TFDS")
if _mock:
    import tensorflow_datasets as tfds
    _kwargs = json.loads(_mock)
    if isinstance(_kwargs.get("as_dataset_fn"), str):  # "path/to/file.py:function"
        import importlib.util
        _path, _, _name = _kwargs["as_dataset_fn"].rpartition(":")
        _spec = importlib.util.spec_from_file_location("het_ensembles_test_mock_fn", _path)
        _module = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_module)
        _kwargs["as_dataset_fn"] = getattr(_module, _name)
    MOCK = tfds.testing.mock_data(**_kwargs)  # kept: collecting it undoes the mock
    MOCK.__enter__()
"""


def _mock_dir():
    path = os.path.join(tempfile.gettempdir(), f"het_ensembles_mock_tfds_{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    target = os.path.join(path, "sitecustomize.py")
    # Atomically: commands started concurrently never read a half-written file.
    with tempfile.NamedTemporaryFile("w", dir=path, suffix=".tmp", delete=False) as f:
        f.write(_SITECUSTOMIZE)
    os.replace(f.name, target)
    return path


def environment(*, mock_tfds=None, extra=None):
    """The environment of a fresh shell: this one, with the mock TFDS start-up where asked."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    if mock_tfds is not None:
        env["PYTHONPATH"] = _mock_dir()
        env["HET_ENSEMBLES_TEST_MOCK_TFDS"] = json.dumps(mock_tfds)
    env.update(extra or {})
    return env


def run(args, cwd, *, mock_tfds=None, script=SCRIPT, timeout=900, env=None, check=True):
    """Runs `het-ensembles *args` in `cwd`; with `check`, fails the test on a non-zero exit.

    Returns:
      the `subprocess.CompletedProcess`, with text `stdout` and `stderr`.
    """
    return run_command(
        [script, *map(str, args)],
        cwd,
        mock_tfds=mock_tfds,
        timeout=timeout,
        env=env,
        check=check,
    )


def run_command(command, cwd, *, mock_tfds=None, timeout=900, env=None, check=True):
    """Runs any command (`python script.py ...`, `bash -c ...`) as `run` runs the console script."""
    done = subprocess.run(
        command,
        cwd=cwd,
        env=environment(mock_tfds=mock_tfds, extra=env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, command))} exited {done.returncode} in {cwd}\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-8000:]}"
        )
    return done


def python(code, cwd, *, args=(), executable=sys.executable, **kwargs):
    """Runs `python -c code *args` (code dedented) in a fresh interpreter, as `run_command` does."""
    return run_command([executable, "-c", textwrap.dedent(code), *map(str, args)], cwd, **kwargs)


def last_json(stdout):
    """The JSON object printed on the last line of `stdout` that parses as one."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise AssertionError(f"No JSON line in the output:\n{stdout[-4000:]}")
