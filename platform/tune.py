"""``python -m platform.tune --space augmentation``: run a search (same as ``soundsweep tune``)."""
from soundsweep.cli import run_command

if __name__ == "__main__":
    run_command("tune")
