"""The `het-ensembles` entry point: dispatch, and TensorFlow's start-up noise kept off stderr."""

import subprocess
import sys
import textwrap

from het_ensembles import cli


def _run(*args, code=None):
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "het_ensembles.cli"]
    return subprocess.run(
        [*command, *args], check=False, capture_output=True, text=True, timeout=300
    )


def test_startup_noise_is_dropped_and_real_errors_kept(tmp_path):
    missing = str(tmp_path / "no_members")
    done = _run(
        "evaluate",
        "--members",
        missing,
        "--dataset",
        "noisy_digits",
        "--output_dir",
        str(tmp_path / "out"),
    )
    assert done.returncode == 2
    assert f"No member directory matches the pattern. Received: members={missing!r}" in done.stderr
    noise = [line for line in done.stderr.splitlines() if any(n in line for n in cli.STARTUP_NOISE)]
    assert noise == []


def test_the_filter_passes_every_other_line_on():
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:17 1 port.cc:153] oneDNN custom operations are on. You may see ...\n"
        "I0000 00:00:17 1 cudart_stub.cc:31] Could not find cuda drivers on your machine\n"
        "E0000 00:00:17 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
        "E0000 00:00:17 1 some_op.cc:1] a real error\n"
        "Traceback (most recent call last):\n"
    )
    assert cli.drop_startup_noise(text) == (
        "E0000 00:00:17 1 some_op.cc:1] a real error\nTraceback (most recent call last):\n"
    )


def test_help_starts_no_tensorflow():
    code = textwrap.dedent(
        """
        import sys
        from het_ensembles import cli
        try:
            cli.main(["train", "--help"])
        except SystemExit:
            pass
        print("TF", "tensorflow" in sys.modules)
        """
    )
    done = _run(code=code)
    assert done.returncode == 0, done.stderr
    assert "--config." in done.stdout and done.stdout.strip().splitlines()[-1] == "TF False"


def test_help_of_a_subcommand_that_imports_tensorflow_prints_no_startup_noise(tmp_path):
    import console

    done = console.run(["evaluate", "--help"], tmp_path)
    assert "--members" in done.stdout
    assert [line for line in done.stderr.splitlines() if line.strip()] == []
