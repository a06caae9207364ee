"""Every fenced code block of README.md and docs/*.md, exercised as a reader would use it.

- Every block has a language tag: `python`, `bash` or `text`.
- `python` blocks run in a fresh interpreter in a fresh directory, nothing imported beforehand.
  A block may shrink itself with a comment `# tests: name=value`: the test replaces
  `name = <value>` (or `name=<value>`) in that block with `name=value`, and nothing else. Blocks
  that import edward2 (the `[reference]` extra) are skipped when it is not installed.
- `bash` blocks: each command (continuation lines joined, `for ... do ... done` expanded) runs
  as a subprocess of the installed `het-ensembles` console script (`tests/console.py`), in one
  fresh directory per page, so a page's train -> evaluate sequence works. A command that a
  later block of the page repeats runs only there. Where a documented
  command is too big for a CPU test, only the smoke flags of `SMOKE` are appended; TFDS-backed
  commands run under `tfds.testing.mock_data`. `pip install` lines are not run (they would
  change this environment): they must be one of `INSTALL_COMMANDS`. `NOT_RUN` lists the other
  commands that are not run, with the reason. A command repeated on a page runs once.
- `text` blocks show output: each must follow a `bash` or `python` block and is checked against
  what that block printed or wrote (`TEXT_CHECKS`), except the layout tree, whose paths must
  exist.

The sections of the pages (the blocks under one heading) run two at a time (2 CPU cores), the
costliest first; sections of one page share its directory, so a train -> evaluate sequence
belongs in one section. A test per block names the page, the block's line and the command.
"""

import concurrent.futures
import dataclasses
import glob
import importlib.util
import os
import re
import shlex
import sys
import tempfile
import textwrap
import threading

import console
import mock_sets
import pytest

REPO = console.REPO
PAGES = ["README.md"] + sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md"))
)
LANGUAGES = ("python", "bash", "text")

# The Quick start's two commands, character for character (.ci/run runs the second one).
QUICK_START = (
    "pip install -e . && het-ensembles demo",
    'pip install -e ".[test]" && python -m pytest -q',
)
INSTALL_COMMANDS = {
    "pip install -e .",
    "pip install .",
    'pip install -e ".[reference]"',
    'pip install -e ".[test]"',
}
NOT_RUN = {
    "python -m pytest -q": "the test suite itself, which CI runs (.ci/run)",
}

_MC = ["--config.train_mc_samples=16", "--config.test_mc_samples=16"]
_SMALL_IMAGES = [
    "--config.train_epochs=1",
    "--config.steps_per_epoch=2",
    "--config.per_core_batch_size=4",
    "--config.eval_steps=2",
    "--config.model=small_cnn",
    "--config.image_size=16",
    "--config.use_bfloat16=False",
]
MOCK = {"num_examples": 8}
SUBSET_MOCK = mock_sets.IMAGENET_SUBSET_MOCK  # labels in ImageNet-A's and -R's 200 classes

# (regular expression on the documented command, flags appended, TFDS mock or None)
SMOKE = [
    (r"^het-ensembles demo$", ["--config_dir", "{demo_configs}", "--no_progress"], None),
    (
        r"^het-ensembles demo --multilabel$",
        ["--config_dir", "{demo_configs}", "--no_progress"],
        None,
    ),
    # Table 1's ResNet-152 configs hold 50,000 / 1,281,167 of train out: >= 26 mock images.
    (
        r"^het-ensembles train --config=configs/imagenet/resnet152_",
        _SMALL_IMAGES + _MC,
        {"num_examples": 32},
    ),
    # The MIMO ResNet-50 itself (its model_kwargs are ResNet options), narrowed to R = 1; the
    # residual zero-init keeps 2 steps at 16 x 16 on random mock images finite.
    (
        r"^het-ensembles train --config=configs/imagenet/heteroscedastic_mimo",
        [x for x in _SMALL_IMAGES if not x.startswith("--config.model=")]
        + _MC
        + ["--config.num_factors=1", "--config.model_kwargs.zero_init_residual=True"],
        MOCK,
    ),
    # The rank-1 config's model_kwargs are rank-1 options: its small CNN is the rank-1 one.
    (
        r"^het-ensembles train --config=configs/imagenet/heteroscedastic_rank1",
        [x for x in _SMALL_IMAGES if not x.startswith("--config.model=")]
        + ["--config.model=small_cnn_rank1"]
        + _MC,
        MOCK,
    ),
    (r"^het-ensembles train --config=configs/imagenet/", _SMALL_IMAGES + _MC, MOCK),
    # VTAB-1k takes the first 1,000 train examples: the mock splits need as many.
    (r"^het-ensembles train --config=configs/vtab/", _SMALL_IMAGES, {"num_examples": 1000}),
    (
        r"^het-ensembles train --config=configs/cifar/",
        [
            *_SMALL_IMAGES,
            *_MC,
            "--config.model=wide_resnet",
            "--config.model_kwargs.depth=10",
            "--config.model_kwargs.width_multiplier=1",
        ],
        MOCK,
    ),
    (
        r"^het-ensembles train --config=configs/noisy_digits/",
        ["--config.train_epochs=1"] + _MC,
        None,
    ),
    (
        r"^het-ensembles evaluate .*--suite imagenet",
        ["--corruptions", "gaussian_noise", "--severities", "1", "--no_progress"],
        SUBSET_MOCK,
    ),
    # CIFAR-100-C is the user's download: a release-shaped folder stands in for it.
    (
        r"^het-ensembles evaluate .*--suite cifar100",
        ["--corruptions", "brightness", "--severities", "1"]
        + ["--cifar100_c_path", "{cifar100_c}", "--no_progress"],
        MOCK,
    ),
    (r"^het-ensembles evaluate ", ["--no_progress"], None),
    (r"^het-ensembles report .*--dataset imagenet2012", ["--no_progress"], MOCK),
    (r"^het-ensembles report ", ["--no_progress"], None),
    (r"^het-ensembles covariance ", ["--max_examples", "64"], None),
    (r"^het-ensembles [a-z]+ --help", [], None),
]

# The demo's smoke run: its own pipeline on the shipped noisy_digits configs, 2 epochs, 16 MC
# samples (its --quick takes 5 epochs and 100 samples: over a minute here).
_DEMO_CONFIG = """\
from het_ensembles import training


def get_config():
    config = training.load_config({shipped!r})
    config.train_epochs = 2
    config.warmup_epochs = 1
    config.checkpoint_interval = 2
    config.train_mc_samples = 16
    config.test_mc_samples = 16
    return config
"""


def demo_configs():
    path = os.path.join(tempfile.gettempdir(), f"het_ensembles_docs_demo_{os.getpid()}")
    for dataset, names in (
        ("noisy_digits", ("deterministic", "heteroscedastic")),
        ("multilabel_digits", ("deterministic", "heteroscedastic_diag", "heteroscedastic")),
    ):
        os.makedirs(os.path.join(path, dataset), exist_ok=True)
        for name in names:
            shipped = os.path.join(REPO, "configs", dataset, f"{name}.py")
            text = _DEMO_CONFIG.format(shipped=shipped)
            if dataset == "multilabel_digits":  # 9 members: a few steps each
                text = text.replace("    return", "    config.steps_per_epoch = 4\n    return")
            with open(os.path.join(path, dataset, f"{name}.py"), "w") as f:
                f.write(text)
    return path


def cifar100_c_release():
    """A folder shaped like the authors' CIFAR-100-C release (`brightness.npy`, `labels.npy`:
    5 x 10000 random images and labels), written once per process."""
    import numpy as np

    path = os.path.join(tempfile.gettempdir(), f"het_ensembles_docs_cifar100_c_{os.getpid()}")
    with _RELEASE_LOCK:  # sections run two at a time
        if os.path.exists(os.path.join(path, "labels.npy")):
            return path
        os.makedirs(path, exist_ok=True)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8)
        np.save(os.path.join(path, "brightness.npy"), images)
        np.save(os.path.join(path, "labels.npy"), rng.integers(0, 100, 50_000).astype(np.uint8))
    return path


_RELEASE_LOCK = threading.Lock()


# --- Collecting the blocks -----------------------------------------------------------------


@dataclasses.dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    section: str = ""  # the heading the block is under

    @property
    def id(self):
        return f"{self.page}:{self.line}-{self.language or 'untagged'}"


def blocks_of(page):
    with open(os.path.join(REPO, page)) as f:
        lines = f.read().splitlines()
    blocks, i, section = [], 0, ""
    while i < len(lines):
        fence = re.match(r"^(\s*)(```+)(.*)$", lines[i])
        if not fence:
            section = lines[i] if lines[i].startswith("#") else section
            i += 1
            continue
        start, indent, marker = i, len(fence.group(1)), fence.group(2)
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != marker:
            body.append(lines[i][indent:])
            i += 1
        text = "\n".join(body) + "\n"
        blocks.append(Block(page, start + 1, fence.group(3).strip(), text, section))
        i += 1
    return blocks


BLOCKS = [b for page in PAGES for b in blocks_of(page)]


def commands_of(block):
    """The commands of a bash block: [(command text, env additions)], loops expanded."""
    joined, current = [], ""
    for raw in block.text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        current += line.strip()
        joined.append(current)
        current = ""
    commands, i = [], 0
    while i < len(joined):
        line = _strip_comment(joined[i])
        loop = re.match(r"^for (\w+) in (.+); do$", line)
        if loop:
            end = joined.index("done", i)
            body = [_strip_comment(c) for c in joined[i + 1 : end]]
            for value in loop.group(2).split():
                commands += [(c, {loop.group(1): value}) for c in body if c]
            i = end + 1
            continue
        if line:
            commands.append((line, {}))
        i += 1
    return commands


def _strip_comment(line):
    """`line` without a trailing shell comment (a `#` starting a word, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip()
    return line.strip()


def substituted(code):
    """`code` with its declared `# tests: name=value` substitutions applied."""
    for name, value in re.findall(r"#\s*tests:\s*([\w.]+)=(\S+)", code):
        pattern = re.compile(rf"(?<![\w.]){re.escape(name)}\s*=\s*[^,)\s#]+")
        code, count = pattern.subn(f"{name}={value}", code, count=1)
        assert count == 1, f"declared substitution {name}={value} matches nothing"
    return code


# --- Running a page ------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    commands: list = dataclasses.field(default_factory=list)  # (command, CompletedProcess|str)
    error: str | None = None
    skipped: str | None = None
    cwd: str | None = None

    @property
    def stdout(self):
        return "".join(p.stdout for _, p in self.commands if not isinstance(p, str))


def _smoke(command):
    for pattern, flags, mock in SMOKE:
        if re.search(pattern, command):
            return flags, mock
    raise AssertionError(f"no SMOKE entry for {command!r}: add one (or [] to run it as is)")


def _last_runs():
    """{(page, command, loop variables): the last bash block of the page that has it}."""
    last = {}
    for block in [b for b in BLOCKS if b.language == "bash"]:
        for command, variables in commands_of(block):
            for part in command.split("&&"):
                if not part.strip().startswith("pip install"):
                    last[block.page, part.strip(), tuple(sorted(variables.items()))] = block
    return last


LAST_RUNS = _last_runs()


def run_bash(block, cwd):
    """Runs the block's commands in `cwd`. A command that a later block of the page repeats
    (the README's Quick start and its demo section) runs there, where its output is shown."""
    outcome = Outcome(cwd=cwd)
    for command, variables in commands_of(block):
        last = LAST_RUNS.get(
            (block.page, command.split("&&")[-1].strip(), tuple(sorted(variables.items())))
        )
        if last is not None and last.line != block.line:
            result = f"not run: the same command runs at {last.id}"
            if command.startswith("pip install"):
                _run_one(command.split("&&")[0], variables, cwd)  # checks the install command
        else:
            result = _run_one(command, variables, cwd)
        outcome.commands.append((command, result))
    return outcome


def _run_one(command, variables, cwd):
    parts = [p.strip() for p in command.split("&&")]
    if parts[0].startswith("pip install"):
        assert parts[0] in INSTALL_COMMANDS, f"undocumented install command {parts[0]!r}"
        if len(parts) > 1:
            return _run_one(" && ".join(parts[1:]), variables, cwd)
        return "not run: installs packages"
    assert len(parts) == 1, f"only `pip install ... && <command>` chains are supported: {command}"
    if command in NOT_RUN:
        return f"not run: {NOT_RUN[command]}"
    env = {"TFDS_DATA_DIR": os.path.join(cwd, "tensorflow_datasets"), **variables}
    expanded = re.sub(r"\$(\w+)", lambda m: env[m.group(1)], command)
    args = shlex.split(expanded)
    assert args[0] == "het-ensembles", f"only het-ensembles commands are run: {command}"
    flags, mock = _smoke(command)
    placeholders = {"demo_configs": demo_configs, "cifar100_c": cifar100_c_release}
    flags = [
        f.format(**{k: make() for k, make in placeholders.items() if "{" + k + "}" in f})
        for f in flags
    ]
    return console.run(args[1:] + flags, cwd, mock_tfds=mock)


def run_python(block, base):
    if "import edward2" in block.text and importlib.util.find_spec("edward2") is None:
        return Outcome(skipped='needs edward2 (pip install -e ".[reference]")')
    cwd = tempfile.mkdtemp(prefix=f"python_{block.line}_", dir=base)
    path = os.path.join(cwd, "block.py")
    with open(path, "w") as f:
        f.write(substituted(block.text))
    result = console.run_command([sys.executable, path], cwd)
    return Outcome(commands=[("python block.py", result)], cwd=cwd)


def page_dirs(base):
    """{page: (its directory for python blocks' directories, the bash blocks' directory)}."""
    dirs = {}
    for page in PAGES:
        root = tempfile.mkdtemp(prefix=page.replace("/", "_") + "_", dir=base)
        os.makedirs(os.path.join(root, "page"))
        dirs[page] = (root, os.path.join(root, "page"))
    return dirs


def run_section(blocks, dirs):
    """Runs the python and bash blocks of one section of a page, in order.

    Returns:
      {block line: Outcome}. Bash blocks run in the page's one directory (sections of a page
      run concurrently there: a train -> evaluate sequence belongs in one section); each python
      block in a fresh one.
    """
    root, cwd = dirs
    outcomes = {}
    for block in blocks:
        if block.language not in ("python", "bash"):
            continue
        try:
            if block.language == "python":
                outcomes[block.line] = run_python(block, root)
            else:
                outcomes[block.line] = run_bash(block, cwd)
        except Exception as error:  # noqa: BLE001  reported by the block's own test
            outcomes[block.line] = Outcome(error=f"{type(error).__name__}: {error}", cwd=cwd)
    return outcomes


def _cost(blocks):
    """A rough cost for scheduling: console-script starts, python blocks, loop iterations."""
    bash = [c for b in blocks if b.language == "bash" for c, _ in commands_of(b)]
    return sum(3 if "demo" in c else 1 for c in bash) + sum(b.language == "python" for b in blocks)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Every section of every page, two at a time (2 CPU cores), the costliest first.

    Returns:
      {(page, section): future of run_section's {block line: Outcome}}.
    """
    dirs = page_dirs(str(tmp_path_factory.mktemp("docs")))
    sections = {}
    for block in BLOCKS:
        sections.setdefault((block.page, block.section), []).append(block)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    futures = {
        key: pool.submit(run_section, sections[key], dirs[key[0]])
        for key in sorted(sections, key=lambda k: -_cost(sections[k]))
    }
    yield futures
    pool.shutdown(wait=True)


def outcome_of(pages, block):
    outcome = pages[block.page, block.section].result()[block.line]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.error is None, f"{block.id} failed:\n{outcome.error}"
    return outcome


# --- Checks of the output blocks -----------------------------------------------------------


def _check_demo_output(shown, outcome):
    # The README shows a real full run; the test runs --quick: the same report, other numbers.
    printed = outcome.stdout.splitlines()
    for line in shown.splitlines():
        if line.startswith(("==", "            |", "method")):
            assert line.rstrip() in [p.rstrip() for p in printed], line
        elif re.match(r"^(Hom|Het)( ens4)? +\|", line):
            assert any(p.startswith(line[:13]) for p in printed), line
        elif line.startswith("  [x] "):
            name = line[6:].split(":")[0]
            assert any(p[6:].startswith(name + ":") for p in printed if p.startswith("  [")), name
        elif line.startswith("Time: "):
            assert any(
                re.match(r"^Time: \d+ s \(\d+ s training the noisy_digits members\)$", p)
                for p in printed
            )


def _check_multilabel_demo_output(shown, outcome):
    # docs/multilabel.md shows a real full run; the test runs tiny configs: the same report.
    printed = [p.rstrip() for p in outcome.stdout.splitlines()]
    for line in shown.splitlines():
        if line.startswith(("==", "noisy test labels", "clean test labels", "---")):
            assert line.rstrip() in printed, line
        elif re.match(r"^(Hom|Het diag|Het)( ens3)? +\|", line):
            assert any(p.startswith(line[:21]) for p in printed), line
        elif line.startswith("  ["):
            name = line[6:].split(":")[0]
            assert any(p[6:].startswith(name + ":") for p in printed if p.startswith("  [")), name


def _check_lines_printed(shown, outcome):
    printed = {" ".join(p.split()) for p in outcome.stdout.splitlines()}
    for line in shown.splitlines():
        assert " ".join(line.split()) in printed, line


def _check_exact(shown, outcome):
    assert outcome.stdout == shown


def _check_layout(shown, outcome):
    del outcome
    parents = []
    for line in shown.splitlines():
        match = re.match(r"^((?:  )?)(\S+)(.*)$", line)
        if not match or line.startswith("   "):
            continue  # a description's continuation line
        depth = len(match.group(1)) // 2
        parents = parents[:depth] + [match.group(2).rstrip("/")]
        assert os.path.exists(os.path.join(REPO, *parents)), "/".join(parents)
        if match.group(2).endswith("/"):
            for name in re.findall(r"\b(\w+\.py)\b", match.group(3)):
                assert os.path.exists(os.path.join(REPO, *parents, name)), (parents, name)


IMAGENET_HEADER = (
    "| Method | ImageNet | ImageNet-C | ImageNet-A | ImageNetV2 | ImageNet-Vid-Robust | "
    "YTBB-Robust | ObjectNet | Train Runtime (hours) | Test Runtime (ms / example)| "
    "# Parameters |"
)
# (page, first line of the text block) -> check(shown text, outcome of the block before it)
TEXT_CHECKS = {
    ("README.md", "== Table 7 shape: noisy_digits, 4 members per method =="): _check_demo_output,
    (
        "docs/multilabel.md",
        "== Table 3 shape: multilabel_digits (sigmoid heads), 3 seeds per method ==",
    ): _check_multilabel_demo_output,
    ("docs/training.md", "  --config.checkpoint_interval=25"): _check_lines_printed,
    ("docs/studies.md", "  --family {noisy_digits,synthetic}"): _check_lines_printed,
    ("docs/evaluation.md", IMAGENET_HEADER): _check_exact,
    ("docs/evaluation.md", "0.52"): _check_lines_printed,  # the multi-label metrics example
}
STANDALONE_TEXT = {("docs/layout.md", "het_ensembles/"): _check_layout}


# --- The tests -----------------------------------------------------------------------------


def _files_for(block):
    """FILES_WRITTEN's list for a bash block whose first line starts with a key, else None."""
    first = block.text.splitlines()[0].rstrip(" \\")
    for (page, start), files in FILES_WRITTEN.items():
        if page == block.page and first.startswith(start):
            return files
    return None


def test_pages_are_found():
    assert "docs/index.md" in PAGES and len(PAGES) >= 8
    for page in PAGES:
        with open(os.path.join(REPO, page)) as f:
            text = f.read()
        assert text.count("```") % 2 == 0, f"{page}: unbalanced code fences"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_block_has_a_known_language(block):
    assert block.language in LANGUAGES, (
        f"{block.id}: fenced block without a known language tag ({block.language!r}); "
        f"use one of {LANGUAGES}"
    )


def test_quick_start_commands_are_exact():
    readme = [b for b in BLOCKS if b.page == "README.md"]
    quick = [b for b in readme if QUICK_START[0] in b.text]
    assert len(quick) == 1 and quick[0].text.splitlines() == list(QUICK_START)


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.language in ("python", "bash")], ids=lambda b: b.id
)
def test_code_block_runs(pages, block):
    outcome = outcome_of(pages, block)
    for command, result in outcome.commands:
        if isinstance(result, str):
            assert result.startswith("not run: "), (block.id, command)
        else:
            assert result.returncode == 0, f"{block.id}: {command}"


# (page, start of a bash block's first line) -> files the page says it writes, relative to its directory
_NOISY_DIGITS_SEED_0 = (
    "het-ensembles train --config=configs/noisy_digits/heteroscedastic.py --config.seed=0"
)
FILES_WRITTEN = {
    ("docs/multilabel.md", "het-ensembles demo --multilabel"): [
        "runs/demo_multilabel/leaderboard.md",
        "runs/demo_multilabel/metrics.json",
        "runs/demo_multilabel/multilabel_bars.png",
        "runs/demo_multilabel/members/het_diag/2/model.keras",
        "runs/demo_multilabel/eval",
    ],
    ("README.md", "het-ensembles demo"): [
        "runs/demo/leaderboard.md",
        "runs/demo/metrics.json",
        "runs/demo/reliability_diagram.png",
        "runs/demo/correlation_heatmap.png",
        "runs/demo/members/hom/0/model.keras",
        "runs/demo/members/het/3/model.keras",
        "runs/demo/eval",
    ],
    ("README.md", "for seed in 0 1 2 3; do"): [
        "runs/imagenet/het/0/model.keras",
        "runs/imagenet/het/3/model.keras",
        "reports/imagenet/het/leaderboard.md",
    ],
    ("docs/sngp.md", "for seed in 0 1 2; do"): [
        "runs/digits_ood/hetsngp/2/model.keras",
        "runs/digits_ood/report/report.md",
        "runs/digits_ood/report/report.json",
        "runs/digits_ood/report/eval/HetSNGP/metrics.json",
    ],
    ("docs/studies.md", "for seed in 0 1; do"): [
        "runs/groups/report/report.md",
        "runs/groups/report/report.tex",
        "runs/groups/report/report.json",
        "runs/groups/report/eval/Hom/metrics.json",
    ],
    ("docs/evaluation.md", _NOISY_DIGITS_SEED_0): [
        "runs/noisy_digits/eval_het/metrics.json",
        "runs/noisy_digits/eval_het/leaderboard.md",
        "runs/noisy_digits/eval_het/reliability_diagram.png",
        "runs/noisy_digits/het/0/covariance",
    ],
    (
        "docs/evaluation.md",
        (
            "het-ensembles train --config=configs/noisy_digits/heteroscedastic.py "
            "--output_dir=runs/appendix_d/het/0"
        ),
    ): [
        "runs/appendix_d/eval/metrics.json",
        "runs/appendix_d/eval/mc_samples.png",
        "runs/appendix_d/eval/predictions/mc_samples=5000/noisy_digits/0.npy",
    ],
    ("docs/training.md", _NOISY_DIGITS_SEED_0): [
        "runs/noisy_digits/het_tuning/temperature_choice.json",
    ],
    (
        "docs/evaluation.md",
        "het-ensembles train --config=configs/noisy_digits/deterministic.py --config.seed=0",
    ): [
        "runs/table5/het/0/covariance/where_het_helps.json",
        "runs/table5/het/0/covariance/rank_histogram.png",
    ],
}


@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.language == "bash" and _files_for(b)],
    ids=lambda b: b.id,
)
def test_block_writes_the_documented_files(pages, block):
    outcome = outcome_of(pages, block)
    for path in _files_for(block):
        assert os.path.exists(os.path.join(outcome.cwd, path)), f"{block.id}: no {path}"
    if block.page == "README.md" and block.text.startswith("for seed"):
        with open(os.path.join(outcome.cwd, "reports/imagenet/het/leaderboard.md")) as f:
            assert IMAGENET_HEADER in f.read().splitlines()


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language == "text"], ids=lambda b: b.id)
def test_output_block_matches(pages, block):
    first = block.text.splitlines()[0]
    if (block.page, first) in STANDALONE_TEXT:
        STANDALONE_TEXT[block.page, first](block.text, None)
        return
    check = TEXT_CHECKS.get((block.page, first))
    assert check, f"{block.id}: no TEXT_CHECKS entry for this output block ({first!r})"
    page_blocks = [b for b in BLOCKS if b.page == block.page]
    before = page_blocks[page_blocks.index(block) - 1]
    assert before.language in ("python", "bash"), f"{block.id} must follow the command it shows"
    check(block.text, outcome_of(pages, before))


def test_bash_commands_have_smoke_entries():
    for block in [b for b in BLOCKS if b.language == "bash"]:
        for command, _ in commands_of(block):
            for part in command.split("&&"):
                part = part.strip()
                if part.startswith("het-ensembles"):
                    _smoke(part)


def test_commands_of_expands_loops_and_continuations():
    block = Block(
        "x",
        1,
        "bash",
        textwrap.dedent("""\
        for seed in 0 1; do
          het-ensembles train --a=$seed \\
            --b=1   # comment
        done
        het-ensembles evaluate --members 'runs/*'
        """),
    )
    assert commands_of(block) == [
        ("het-ensembles train --a=$seed --b=1", {"seed": "0"}),
        ("het-ensembles train --a=$seed --b=1", {"seed": "1"}),
        ("het-ensembles evaluate --members 'runs/*'", {}),
    ]
    assert substituted("x = 20  # tests: x=1\n").startswith("x=1")


def test_one_canonical_imagenet_evaluate_command():
    # The README's leaderboard command is the one docs/evaluation.md quotes, word for word.
    readme = [b for b in BLOCKS if b.page == "README.md" and b.language == "bash"]
    commands = [c for b in readme for c, _ in commands_of(b) if "--suite imagenet" in c]
    assert len(commands) == 1
    with open(os.path.join(REPO, "docs", "evaluation.md")) as f:
        evaluation_page = " ".join(f.read().replace("`", " ").split())
    assert " ".join(commands[0].split()) in evaluation_page


def _anchors(path):
    """GitHub's anchors of the headings of a markdown file."""
    with open(path) as f:
        headings = [line.lstrip("#").strip() for line in f if line.startswith("#")]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES)
def test_links_resolve(page):
    # Relative links point at files of this repository, and their anchors at real headings.
    with open(os.path.join(REPO, page)) as f:
        text = f.read()
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # code is not a link
    text = re.sub(r"`[^`]*`", "", text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        full = os.path.normpath(
            os.path.join(REPO, os.path.dirname(page), path) if path else os.path.join(REPO, page)
        )
        assert full.startswith(REPO + os.sep) and os.path.exists(full), f"{page}: {target}"
        if anchor:
            assert anchor in _anchors(full), f"{page}: no heading for #{anchor}"


def test_readme_and_migration_page_name_every_layer_class():
    import ast

    with open(os.path.join(REPO, "het_ensembles", "layers", "__init__.py")) as f:
        tree = ast.parse(f.read())
    exported = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "__all__"
    )
    classes = [name for name in exported if name[0].isupper() and not name.isupper()]
    assert len(classes) >= 9, classes
    for page in ("README.md", "docs/migrating_from_edward2.md", "docs/api.md"):
        with open(os.path.join(REPO, page)) as f:
            text = f.read()
        missing = [name for name in classes if f"`{name}`" not in text]
        assert not missing, f"{page} does not name {missing}"
