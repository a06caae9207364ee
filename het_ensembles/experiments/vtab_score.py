"""The VTAB-1k score of fine-tuned members (Collier et al. CVPR 2021 Table 6), per group.

Where it sits: fine-tuned member directories (`configs/vtab/finetune.py`, one per task and
seed) -> **vtab_score** -> the report's table form (`experiments.report`: mean +- std over
seeds, best in bold, t-test daggers). Unlike `het-ensembles report` nothing is evaluated
again: each member's metrics.json already holds its test accuracy on its task, the figure
VTAB reports. Columns are the tasks (from each member's config.json `dataset`, via
`training.vtab`) and "mean", the VTAB-1k score: for each seed, the mean accuracy over the
tasks; its mean over seeds equals the mean over tasks of the per-task means.
"""

import collections
import os

from het_ensembles import member_dir
from het_ensembles.data import spec_options
from het_ensembles.experiments import report as paper_report
from het_ensembles.training import vtab

MEAN_COLUMN = "mean"
METRIC = "accuracy"
SCORE_FILES = ("vtab.md", "vtab.tex", "vtab.json")


def task_of(member):
    """The VTAB task of a fine-tuned member, from its config.json (None if not a VTAB task).

    A task is recognised by its TFDS name and its own options (label_key, ...), so a run with
    another image size or other overrides still counts.
    """
    dataset = member.config.get("dataset", "")
    if not spec_options.is_streaming_name(dataset):
        return None
    spec = spec_options.parse(dataset)
    for task, definition in vtab.TASKS.items():
        wanted = spec_options.parse(f"tfds:{definition.tfds_name}?{definition.options}")
        if spec.location == wanted.location and all(
            spec.options.get(k) == v for k, v in wanted.options.items()
        ):
            return task
    return None


def accuracies(members):
    """`{task: {seed: test accuracy}}` of finished members.

    Raises:
      ValueError: a member that is no VTAB task, has no test/accuracy, or repeats a (task,
        seed), naming it.
    """
    table = collections.defaultdict(dict)
    for member in members:
        task = task_of(member)
        if task is None:
            raise ValueError(
                f"Member {member.path} is not fine-tuned on a VTAB-1k task. Received: "
                f"dataset={member.config.get('dataset')!r}; allowed: {sorted(vtab.TASKS)}"
            )
        value = (member.metrics or {}).get(f"test/{METRIC}")
        if value is None:
            raise ValueError(f"Member {member.path} has no test/{METRIC} in its metrics.json.")
        seed = member.config.get("seed")
        if seed in table[task]:
            raise ValueError(f"Two members of task {task} with seed {seed}: {member.path}.")
        table[task][seed] = float(value)
    return table


def vtab_report(groups, output_dir=None, *, alpha=paper_report.ALPHA):
    """Per task and the mean over tasks, for each group; writes vtab.md / .tex / .json.

    Args:
      groups: `{name: member patterns}` in table order (e.g. Hom and Het pre-training).
      output_dir: where the three files go (None: written nowhere).
      alpha: the t-test level of the daggers.

    Returns:
      The report dict (`experiments.report`'s layout: `datasets` are the tasks and "mean").

    Raises:
      ValueError: bad groups, or groups whose tasks or seeds differ (the mean over tasks
        needs every task of every seed).
    """
    paper_report._check_arguments(groups, None, alpha)
    by_group = {name: accuracies(member_dir.find_members(p)) for name, p in groups.items()}
    tasks = [t for t in vtab.TASKS if any(t in table for table in by_group.values())]
    for name, table in by_group.items():
        seeds = {tuple(sorted(table.get(task, {}))) for task in tasks}
        if len(seeds) != 1 or not next(iter(seeds)):
            raise ValueError(
                f"Group {name} must have the same seeds for every task of {tasks}. Received: "
                + ", ".join(f"{t}: {sorted(table.get(t, {}))}" for t in tasks)
            )
    report = {"alpha": alpha, "groups": list(groups), "datasets": {}}
    columns = {task: {n: list(by_group[n][task].values()) for n in groups} for task in tasks}
    columns[MEAN_COLUMN] = {
        name: [
            sum(by_group[name][task][seed] for task in tasks) / len(tasks)
            for seed in sorted(by_group[name][tasks[0]])
        ]
        for name in groups
    }
    for column, values in columns.items():
        best, stats = paper_report.group_statistics(values, METRIC, alpha=alpha)
        report["datasets"][column] = {"best": {METRIC: best}, "metrics": {METRIC: stats}}
    if output_dir is not None:
        member_dir.check_writable_dir(output_dir)
        write = {
            "vtab.md": paper_report.markdown_table(report),
            "vtab.tex": paper_report.latex_table(report),
        }
        for name, text in write.items():
            member_dir.write_text(os.path.join(output_dir, name), text)
        member_dir.write_json(os.path.join(output_dir, "vtab.json"), report, sort_keys=False)
    return report
