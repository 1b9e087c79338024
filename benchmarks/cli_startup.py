"""How long ``soundsweep --help`` and ``soundsweep tune --help`` take, and what they import.

    python -m benchmarks.cli_startup --out benchmarks/results/cli_startup.json [--repeats 9] [--before COMMIT]

Run it from the repository root. Every command runs in a fresh process, started the way the
``soundsweep`` console script starts (import :mod:`soundsweep.cli`, call ``main`` with the
arguments), with the checkout's folder first on ``sys.path``, so its packages are the ones
imported. ``python -c pass`` is timed in the same run, interleaved with the commands, as the
baseline: the interpreter's own start, under whatever load the machine has at that moment.

``--before COMMIT`` times the same commands at an earlier commit of this repository too (its
files unpacked with ``git archive`` into a temporary folder), interleaved with this checkout's.

Figures written (JSON), per checkout and command:

``median_s``, ``min_s``, ``max_s``, ``runs_s``
    Wall-clock seconds from starting the process to its exit, over ``--repeats`` runs.
``ratio_to_baseline``
    ``median_s`` / the baseline's ``median_s``.
``imported``
    For each of torch, Ray, Optuna, pandas, SQLAlchemy, scikit-learn and pyarrow: whether the
    command left it in ``sys.modules`` (one extra run that reports its modules after ``main``
    returns); ``modules`` is how many modules were loaded in all.

``target_s`` is the goal (2 s on the development machine) and ``under_target`` whether every
median of this checkout meets it; ``load_average`` is the machine's 1/5/15-minute load at start.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = {"soundsweep --help": ["--help"], "soundsweep tune --help": ["tune", "--help"]}
HEAVY = ("torch", "ray", "optuna", "pandas", "sqlalchemy", "sklearn", "pyarrow")
TARGET_S = 2.0
# What the console script does: soundsweep.cli.main with the process's arguments.
RUN = "import sys; from soundsweep.cli import main; sys.exit(main(sys.argv[1:]))"
# The same, then which heavy libraries are loaded (on stderr, after the help text on stdout).
REPORT = ("import json, sys; from soundsweep.cli import main; main(sys.argv[1:]); "
          f"print(json.dumps({{'imported': {{m: m in sys.modules for m in {HEAVY!r}}}, 'modules': len(sys.modules)}}), "
          "file=sys.stderr)")


def timed(args: list[str], cwd: str) -> float:
    """Seconds from starting ``python ARGS`` in ``cwd`` to its exit (its output discarded)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} in {cwd} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed


def imports(argv: list[str], cwd: str) -> dict:
    """Which heavy libraries ``soundsweep ARGV`` loads, and how many modules in all."""
    done = subprocess.run([sys.executable, "-c", REPORT, *argv], cwd=cwd, capture_output=True, text=True, check=True)
    return json.loads(done.stderr.strip().splitlines()[-1])


def commit(revision: str) -> str:
    """The short hash of ``revision`` in this repository."""
    return subprocess.run(["git", "rev-parse", "--short", revision], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def unpack(revision: str, folder: str) -> str:
    """The files of ``revision`` unpacked into ``folder`` (``git archive``); returns ``folder``."""
    archive = subprocess.run(["git", "archive", revision], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def summary(runs: list[float], baseline: float) -> dict:
    """Median, extremes and every run of one command, and its median against the baseline's."""
    median = statistics.median(runs)
    return {"median_s": round(median, 3), "min_s": round(min(runs), 3), "max_s": round(max(runs), 3),
            "runs_s": [round(r, 3) for r in runs], "ratio_to_baseline": round(median / baseline, 2)}


def measure(checkouts: dict[str, tuple[str, str]], repeats: int) -> dict:
    """The figures of every command in every checkout (label -> (folder, commit)) and the baseline."""
    load = os.getloadavg()
    runs: dict = {"baseline": []}
    for _ in range(repeats):  # interleaved, so a change in the machine's load hits every figure alike
        runs["baseline"].append(timed(["-c", "pass"], REPO))
        for label, (folder, _) in checkouts.items():
            for command, argv in COMMANDS.items():
                runs.setdefault((label, command), []).append(timed(["-c", RUN, *argv], folder))
    baseline = statistics.median(runs["baseline"])
    out = {
        "machine": f"{os.uname().machine}, {os.cpu_count()} cores",
        "python": sys.version.split()[0],
        "load_average": [round(x, 2) for x in load],
        "repeats": repeats,
        "target_s": TARGET_S,
        "baseline": {"command": "python -c pass", **summary(runs["baseline"], baseline)},
        "checkouts": {
            label: {"commit": revision,
                    "commands": {command: {**summary(runs[(label, command)], baseline), **imports(argv, folder)}
                                 for command, argv in COMMANDS.items()}}
            for label, (folder, revision) in checkouts.items()
        },
    }
    out["under_target"] = all(c["median_s"] < TARGET_S for c in out["checkouts"]["this"]["commands"].values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--repeats", type=int, default=9, help="runs of each command (default %(default)s)")
    parser.add_argument("--before", metavar="COMMIT", help="an earlier commit to time the same commands at")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        checkouts = {"this": (REPO, commit("HEAD")),
                     **({"before": (unpack(args.before, scratch), commit(args.before))} if args.before else {})}
        out = measure(checkouts, args.repeats)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({label: {command: (c["median_s"], c["ratio_to_baseline"], [m for m, on in c["imported"].items() if on])
                              for command, c in checkout["commands"].items()}
                      for label, checkout in out["checkouts"].items()}, indent=2))
    print(f"baseline python -c pass: {out['baseline']['median_s']:.3f} s; under {TARGET_S} s: {out['under_target']}")


if __name__ == "__main__":
    main()
