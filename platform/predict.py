"""``python -m platform.predict ...``: the same as ``soundsweep predict ...``."""
from soundsweep.cli import run_command

if __name__ == "__main__":
    run_command("predict")
