"""``soundsweep report``: one experiment as a static page, ``index.html`` plus its PNG figures.

The page is the dashboard's experiment page with every trial's section appended, rendered by
the same :mod:`soundsweep.report.pages` functions; only the links differ (:class:`FileLinks`).
"""
import os

from soundsweep.report.pages import experiment_page
from soundsweep.report.plots import Plot, render
from soundsweep.report.views import ExperimentView, load_experiment
from soundsweep.results import ResultsStore


class FileLinks:
    """Links of a self-contained folder: figures are written into ``out`` as they are linked,
    trials are sections of the one page."""

    live = False

    def __init__(self, out: str):
        self.out = out

    def nav(self) -> list[tuple[str, str]]:
        return []

    def experiment(self, name: str) -> str:
        return "index.html"

    def trial(self, experiment: str, trial_id: str) -> str:
        return f"#trial-{trial_id}"

    def plot(self, experiment: ExperimentView, plot: Plot) -> str:
        with open(os.path.join(self.out, plot.filename()), "wb") as f:
            f.write(render(experiment, plot))
        return plot.filename()


def write_report(results_url: str, experiment: str, out: str) -> str:
    """Write the report of ``experiment`` into the folder ``out``; return the path of index.html."""
    view = load_experiment(ResultsStore(results_url, must_exist=True), experiment)
    os.makedirs(out, exist_ok=True)
    page = experiment_page(view, FileLinks(out), trial_sections=True)
    path = os.path.join(out, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path
