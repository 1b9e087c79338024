"""The command line's own behaviour, without a Ray run: a --help that loads none of the heavy
libraries, the registries' listing it shows, --version and ``python -m soundsweep``, and the
--config / --print-config settings files (read back, overridden by flags, recorded with the
experiment and shown in its report)."""
import importlib.metadata
import json
import subprocess
import sys

import soundsweep
from soundsweep import config_file
from soundsweep.cli import command_parser, experiment_config, main, parse_args
from soundsweep.experiment import ExperimentConfig
from soundsweep.experiment.run import recorded_config
from soundsweep.registries import REFRESH, current, stored
from soundsweep.results import ResultsStore
from tests.conftest import REPO

HEAVY = ("torch", "ray", "optuna", "pandas", "sqlalchemy", "sklearn")
"""Libraries that take seconds to import: building the parser and printing help loads none."""


def python(*args: str) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh process from the repo root (the checkout's packages first)."""
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def light_help(command: str) -> str:
    """``soundsweep COMMAND --help`` in a fresh process: asserts it exits 0 having imported none of
    :data:`HEAVY`, and returns the help text."""
    script = ("import json, sys\n"
              "from soundsweep.cli import main\n"
              f"code = main([{command!r}, '--help'])\n"
              f"loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
              "print(json.dumps({'code': code, 'loaded': loaded}), file=sys.stderr)\n")
    out = python("-c", script)
    assert json.loads(out.stderr.strip().splitlines()[-1]) == {"code": 0, "loaded": []}
    return out.stdout


def test_building_the_parser_and_help_import_no_heavy_library():
    # A fresh process: this one has Ray loaded by conftest.
    script = ("import json, sys\n"
              "from soundsweep.cli import build_parser, command_parser, main\n"
              "build_parser(); command_parser('tune')\n"
              "codes = [main(['--help']), main(['tune', '--help'])]\n"
              f"loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
              "print(json.dumps({'codes': codes, 'loaded': loaded}), file=sys.stderr)\n")
    out = python("-c", script)
    result = json.loads(out.stderr.strip().splitlines()[-1])
    assert result == {"codes": [0, 0], "loaded": []}
    # Both helps were printed in full: the command list, then tune's flags and the registries' list.
    assert "quantize" in out.stdout and "--max-epochs" in out.stdout and "--print-config" in out.stdout
    assert "search spaces (--space):" in out.stdout and "resnet2d" in out.stdout


def test_the_stored_registry_listing_is_what_the_registries_hold():
    assert stored() == current(), f"soundsweep/registries.json is out of date: run {REFRESH}"


def test_version_and_python_m_soundsweep():
    version = python("-m", "soundsweep", "--version")
    assert version.returncode == 0
    assert version.stdout == f"soundsweep {importlib.metadata.version('soundsweep')}\n"
    assert version.stdout.split()[1] == soundsweep.__version__  # pyproject.toml and the package agree
    printed = python("-m", "soundsweep", "tune", "--max-epochs", "3", "--print-config")
    assert printed.returncode == 0 and "max_epochs: 3\n" in printed.stdout


def test_print_config_reads_back_as_the_same_settings(tmp_path, capsys):
    assert main(["tune", "--recipe", "ecapa", "--lr", "0.05", "--max-epochs", "7", "--coarse", "--print-config"]) == 0
    printed = capsys.readouterr().out
    saved = tmp_path / "exp.yaml"
    saved.write_text(printed)
    assert main(["tune", "--config", str(saved), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    original = experiment_config(parse_args(["tune", "--recipe", "ecapa", "--lr", "0.05", "--max-epochs", "7", "--coarse"]))
    again = experiment_config(parse_args(["tune", "--config", str(saved)]))
    assert again.flag_values() == original.flag_values()
    assert again.training_settings() == original.training_settings()  # the run trains the same way
    values = original.flag_values()
    assert (values["recipe"], values["lr"], values["max_epochs"], values["coarse"]) == ("ecapa", 0.05, 7, True)
    assert values["weight_decay"] == 1e-5  # the recipe's own value, written out


def test_flags_override_the_file(tmp_path):
    settings = tmp_path / "exp.yaml"
    settings.write_text("space: width\nmax_epochs: 20\nnum_samples: 30\nlr: 1e-3\ncoarse: true\n")
    # --num-samples 12 is also the default: given on the command line it still wins over the file.
    cfg = experiment_config(parse_args(["tune", "--config", str(settings), "--max-epochs", "5", "--num-samples", "12"]))
    assert (cfg.space, cfg.max_epochs, cfg.num_samples, cfg.coarse) == ("width", 5, 12, True)
    assert cfg.overrides == {"lr": 0.001}  # a training-recipe key of the file overrides the recipe like --lr
    assert experiment_config(parse_args(["tune", "--config", str(settings)])).max_epochs == 20


def test_every_settings_key_is_a_tune_flag():
    keys = config_file.settings(command_parser("tune"))
    assert set(keys) == set(ExperimentConfig().flag_values())
    assert {"config", "print_config", "help"}.isdisjoint(keys)


def test_the_experiment_records_its_settings_and_the_report_shows_them(tmp_path, capsys):
    cfg = experiment_config(parse_args(["tune", "--recipe", "soundfusion", "--max-epochs", "7", "--name", "recorded"]))
    url = f"sqlite:///{tmp_path}/r.db"
    ResultsStore(url).start_experiment("recorded", cfg.space, "synthetic", recorded_config(cfg), str(tmp_path))
    config = ResultsStore(url, must_exist=True).experiment("recorded").config
    assert ExperimentConfig.from_record(config) == cfg  # the fields, as --resume and derived models read them
    text = config["config_yaml"]
    saved = tmp_path / "recorded.yaml"
    saved.write_text(text)
    assert config_file.read(str(saved), command_parser("tune")) == cfg.flag_values()
    assert main(["report", "--experiment", "recorded", "--out", str(tmp_path / "report"), "--results", url]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<h2>Settings</h2>" in page and "recipe: soundfusion" in page and "max_epochs: 7" in page
