"""``soundsweep report``: one experiment as a static page, ``index.html`` plus its PNG figures.

The page is the dashboard's experiment page with every trial's section appended, rendered by
the same :mod:`soundsweep.report.pages` functions; only the links differ (:class:`FileLinks`).
The folder may be a local path or a URI (:mod:`soundsweep.storage`): every finished tune run
writes its report beside its checkpoints.
"""
from soundsweep import storage
from soundsweep.progress import Progress
from soundsweep.report.pages import experiment_page
from soundsweep.report.plots import Plot, render
from soundsweep.report.views import ExperimentView, load_experiment
from soundsweep.results import ResultsStore


class FileLinks:
    """Links of a self-contained folder: trials are sections of the one page, and each figure
    linked is listed in :attr:`figures`, drawn into ``out`` by :func:`write_report` once the page
    knows them all (so its progress has a total)."""

    live = False

    def __init__(self, out: str):
        self.out = out
        self.fs, self.folder = storage.open_fs(out)
        self.written: list[str] = []
        self.figures: list[tuple[ExperimentView, Plot]] = []

    def nav(self) -> list[tuple[str, str]]:
        return []

    def experiment(self, name: str) -> str:
        return "index.html"

    def trial(self, experiment: str, trial_id: str) -> str:
        return f"#trial-{trial_id}"

    def write(self, name: str, content: bytes) -> str:
        with self.fs.open_output_stream(storage.join(self.folder, name)) as f:
            f.write(content)
        self.written.append(storage.join(self.out, name))
        return self.written[-1]

    def plot(self, experiment: ExperimentView, plot: Plot) -> str:
        self.figures.append((experiment, plot))
        return plot.filename()


def write_report(results_url: str, experiment: str, out: str) -> list[str]:
    """Write the report of ``experiment`` into the folder ``out`` (a path or URI); return what it
    wrote, ``index.html`` first, then the figures (confusion matrices, accuracy against parameters
    and time per epoch, learning curves, the search grid)."""
    view = load_experiment(ResultsStore(results_url, must_exist=True), experiment)
    links = FileLinks(storage.resolve(out))
    links.fs.create_dir(links.folder, recursive=True)
    page = experiment_page(view, links, trial_sections=True)
    with Progress(len(links.figures) + 1, "writing the report", "files") as bar:
        for experiment_view, plot in links.figures:
            links.write(plot.filename(), render(experiment_view, plot))
            bar.update()
        figures = list(links.written)
        index = links.write("index.html", page.encode("utf-8"))
        bar.update()
    return [index, *figures]
