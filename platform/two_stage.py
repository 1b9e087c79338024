"""``python -m platform.two_stage ...``: the same as ``soundsweep two-stage ...``."""
from soundsweep.cli import run_command

if __name__ == "__main__":
    run_command("two-stage")
