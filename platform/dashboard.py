"""``python -m platform.dashboard [--results URL]``: serve the live view (same as ``soundsweep dashboard``)."""
from soundsweep.cli import run_command

if __name__ == "__main__":
    run_command("dashboard")
