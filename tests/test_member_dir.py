"""The member directory module: atomic writes (permissions, no debris), reading members back."""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from het_ensembles import member_dir


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_gives_the_permissions_open_would(tmp_path, umask_022):
    # mkstemp alone makes 0600 files, which a team sharing a results directory cannot read.
    reference = tmp_path / "by_open.txt"
    with open(reference, "w") as f:
        f.write("x")
    path = tmp_path / "sub" / "leaderboard.md"
    member_dir.write_text(str(path), "| row |\n")
    assert path.read_text() == "| row |\n"
    assert _mode(path) == _mode(reference) == 0o644


def test_atomic_write_respects_a_stricter_umask(tmp_path):
    script = (
        "import os; os.umask(0o077);"
        "from het_ensembles import member_dir;"
        f"member_dir.write_json({str(tmp_path / 'm.json')!r}, {{'a': 1}})"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert _mode(tmp_path / "m.json") == 0o600
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}


def test_atomic_write_leaves_the_old_file_and_no_debris_on_error(tmp_path):
    path = tmp_path / "metrics.json"
    member_dir.write_json(str(path), {"old": True})

    def fail(f):
        f.write("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        member_dir.atomic_write(str(path), fail, binary=False)
    assert json.loads(path.read_text()) == {"old": True}
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"]


def test_atomic_path_keeps_the_suffix(tmp_path):
    # Keras picks the format from the suffix of the path it saves to.
    with member_dir.atomic_path(str(tmp_path / "model.keras")) as tmp:
        assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(tmp_path)
        np.save(tmp[: -len(".keras")] + ".npy", np.zeros(1))  # anything beside it is untouched
        with open(tmp, "wb") as f:
            f.write(b"zip")
    assert (tmp_path / "model.keras").read_bytes() == b"zip"


def _member(root, name, *, finished=True, config=None, metrics=None):
    directory = root / name
    directory.mkdir(parents=True)
    if config is not None:
        (directory / "config.json").write_text(json.dumps(config))
    if metrics is not None:
        (directory / "metrics.json").write_text(json.dumps(metrics))
    if finished:
        (directory / "model.keras").write_bytes(b"")
    return directory


def test_read_member_finished_or_not(tmp_path):
    done = _member(tmp_path, "done", config={"num_classes": 3}, metrics={"test/nll": 0.5})
    running = _member(tmp_path, "running", finished=False, config={"num_classes": 3})
    member = member_dir.read_member(done)
    assert member.finished and member.name == "done" and member.num_classes == 3
    assert member.metrics == {"test/nll": 0.5}
    unfinished = member_dir.read_member(running)
    assert not unfinished.finished and unfinished.metrics is None
    with pytest.raises(ValueError, match=r"Not a finished member directory \(no model.keras"):
        unfinished.load_model()


@pytest.mark.parametrize(
    "content, message",
    [("{not json", r"Cannot read the member config .*config.json"), ("[1, 2]", "JSON object")],
)
def test_read_member_names_a_bad_config(tmp_path, content, message):
    directory = _member(tmp_path, "m")
    (directory / "config.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        member_dir.read_member(directory)


def test_read_member_of_a_missing_directory(tmp_path):
    with pytest.raises(ValueError, match=r"no such directory.*member="):
        member_dir.read_member(tmp_path / "nope")


def test_find_members_names_and_skips_unfinished(tmp_path):
    _member(tmp_path, "het/0")
    _member(tmp_path, "het/1")
    _member(tmp_path, "het/0/checkpoints/nested")  # below a member: not a member
    members = member_dir.find_members(str(tmp_path / "het" / "*"))
    assert [m.name for m in members] == ["0", "1"]
    assert all(m.finished for m in members)
    both = member_dir.find_members([str(tmp_path / "het" / "0"), str(tmp_path / "het" / "1")])
    assert [m.path for m in both] == [m.path for m in members]
    _member(tmp_path, "het/2", finished=False)
    with pytest.raises(ValueError, match=r"het/2 is not a member directory.*unfinished training"):
        member_dir.find_members(str(tmp_path / "het" / "*"))
