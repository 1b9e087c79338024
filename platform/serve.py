"""``python -m platform.serve ...``: the same as ``soundsweep serve ...``."""
from soundsweep.cli import run_command

if __name__ == "__main__":
    run_command("serve")
