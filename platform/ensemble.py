"""``python -m platform.ensemble ...``: the same as ``soundsweep ensemble ...``."""
from soundsweep.cli import run_command

if __name__ == "__main__":
    run_command("ensemble")
