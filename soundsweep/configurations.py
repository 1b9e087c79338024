"""An experiment's configurations and their repeated scores (``--folds`` / ``--repeats``).

A configuration is the set of an experiment's trials that share their parameters. Each run of
it, on one fold and seed, has one score, by default the test clip accuracy (reported by
screening trials, measured after the search for repeated training trials, by the trial itself
for ``--fidelity runs``). A trial is one run (the ``fold`` and ``repeat`` in its metrics), or
with ``--fidelity runs`` all the runs it finished (its metrics' ``runs``).
:func:`configuration_table` summarizes every configuration;
:func:`compare` runs the paired tests between two configurations on the folds and seeds they
share and records them in the results store.

A configuration is named ``EXPERIMENT/TRIAL`` after its first trial; ``EXPERIMENT`` alone
names the experiment's configuration with the best mean validation accuracy (chosen without
looking at the scores compared).
"""
import json
from dataclasses import dataclass, field

import numpy as np

from search_spaces import flatten
from soundsweep.errors import UsageError
from soundsweep.results import ResultsStore
from soundsweep.stats import paired_tests, summarize

DEFAULT_METRIC = "test_clip_acc"


@dataclass
class Configuration:
    """One configuration: its name, parameters, trial ids, scores by ``(fold, repeat)`` and the
    validation clip accuracy of each trial."""

    name: str
    params: dict
    trials: list[str] = field(default_factory=list)
    scores: dict[tuple, float] = field(default_factory=dict)
    val: list[float] = field(default_factory=list)


def configurations(store: ResultsStore, experiment: str, metric: str = DEFAULT_METRIC) -> list[Configuration]:
    """The configurations of ``experiment`` whose trials have ``metric``, in trial order."""
    row = store.experiment(experiment)
    if row is None:
        raise UsageError(f"no experiment named {experiment!r} in {store.url}: check the name and --results")
    groups: dict[str, Configuration] = {}
    for trial in store.trials(row.id):
        runs = [run for run in trial_runs(trial) if run.get(metric) is not None]
        if not runs:
            continue
        key = json.dumps(trial.params, sort_keys=True)
        config = groups.setdefault(key, Configuration(f"{experiment}/{trial.trial_id}", trial.params))
        config.trials.append(trial.trial_id)
        for run in runs:
            config.scores[(run.get("fold"), run.get("repeat", 0))] = float(run[metric])
            if run.get("val_clip_acc") is not None:
                config.val.append(run["val_clip_acc"])
    return list(groups.values())


def trial_runs(trial) -> list[dict]:
    """The runs a stored trial holds, each a dict of its fold, repeat, validation clip accuracy
    and scores: the ``runs`` of a ``--fidelity runs`` trial, else the trial itself (its metrics
    and best validation clip accuracy)."""
    metrics = trial.metrics or {}
    if "runs" in metrics:
        return metrics["runs"]
    return [{**metrics, "val_clip_acc": trial.best_val_clip_acc}]


def configuration_table(configs: list[Configuration]) -> list[dict]:
    """One row per configuration, best mean score first: its name, the settings that differ
    between configurations, the mean validation accuracy and the score summary (n, mean, std,
    95% interval)."""
    flats = [flatten(c.params) for c in configs]
    varying = [k for k in dict.fromkeys(k for f in flats for k in f) if len({json.dumps(f.get(k)) for f in flats}) > 1]
    rows = [{
        "configuration": c.name,
        "setting": " ".join(f"{k.rsplit('/', 1)[-1]}={f[k]}" for k in varying if k in f),
        "val_mean": float(np.mean(c.val)) if c.val else None,
        "score": summarize(list(c.scores.values())).as_dict(),
    } for c, f in zip(configs, flats)]
    return sorted(rows, key=lambda r: -r["score"]["mean"])


def format_table(rows: list[dict], metric: str = DEFAULT_METRIC) -> str:
    """The configuration table as text (what ``soundsweep tune`` prints at the end)."""

    def number(x) -> str:
        return "-" if x is None or x != x else f"{x:.3f}"

    lines = [f"configurations ({metric} over folds x seeds: mean, std, 95% CI):",
             f"  {'configuration':<24} {'runs':>4} {'val':>6} {'mean':>6} {'std':>6}  {'95% CI':<15}  setting"]
    for r in rows:
        s = r["score"]
        interval = f"[{number(s['ci_low'])}, {number(s['ci_high'])}]"
        lines.append(f"  {r['configuration']:<24} {s['n']:>4} {number(r['val_mean']):>6} {number(s['mean']):>6} "
                     f"{number(s['std']):>6}  {interval:<15}  {r['setting']}")
    return "\n".join(lines)


def resolve(store: ResultsStore, name: str, metric: str = DEFAULT_METRIC) -> Configuration:
    """The configuration ``EXPERIMENT/TRIAL`` (the one that trial belongs to), or ``EXPERIMENT``'s
    best by mean validation clip accuracy."""
    experiment, _, trial_id = name.partition("/")
    configs = configurations(store, experiment, metric)
    if not configs:
        raise UsageError(f"{name}: experiment {experiment!r} has no trial with {metric}; "
                         "compare screening runs or runs with --folds/--repeats")
    if not trial_id:
        return max(configs, key=lambda c: np.mean(c.val) if c.val else -np.inf)
    for config in configs:
        if trial_id in config.trials:
            return config
    raise UsageError(f"{name}: no trial {trial_id!r} with {metric} in experiment {experiment!r}")


def compare(store: ResultsStore, a: str, b: str, metric: str = DEFAULT_METRIC) -> dict:
    """Paired t-test and Wilcoxon signed-rank test of configurations ``a`` and ``b`` on the
    (fold, seed) pairs both have; the result is recorded in the store and returned."""
    first, second = resolve(store, a, metric), resolve(store, b, metric)
    shared = sorted(set(first.scores) & set(second.scores), key=str)
    if len(shared) < 2:
        raise UsageError(f"{first.name} and {second.name} share {len(shared)} fold/seed score(s); a paired test "
                         "needs 2 or more: run both with the same --folds/--repeats")
    x, y = [first.scores[k] for k in shared], [second.scores[k] for k in shared]
    result = {
        "a": first.name, "b": second.name, "metric": metric, "pairs": [list(k) for k in shared],
        "a_scores": x, "b_scores": y, "a_summary": summarize(x).as_dict(), "b_summary": summarize(y).as_dict(),
        **paired_tests(x, y).as_dict(),
    }
    result["comparison_id"] = store.add_comparison(first.name, second.name, metric, result)
    return result
