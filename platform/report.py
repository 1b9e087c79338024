"""``python -m platform.report --experiment NAME --out DIR``: static report (same as ``soundsweep report``)."""
import sys

from soundsweep.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["report", *sys.argv[1:]]))
