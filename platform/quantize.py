"""``python -m platform.quantize ...``: the same as ``soundsweep quantize ...``."""
from soundsweep.cli import run_command

if __name__ == "__main__":
    run_command("quantize")
