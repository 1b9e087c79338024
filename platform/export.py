"""``python -m platform.export ...``: the same as ``soundsweep export ...``."""
from soundsweep.cli import run_command

if __name__ == "__main__":
    run_command("export")
