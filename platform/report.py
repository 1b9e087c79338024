"""``python -m platform.report --experiment NAME --out DIR``: write a static report (same as ``soundsweep report``)."""
from soundsweep.cli import run_command

if __name__ == "__main__":
    run_command("report")
