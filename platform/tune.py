"""``python -m platform.tune --space augmentation``: run a search (same as ``soundsweep tune``)."""
import sys

from soundsweep.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["tune", *sys.argv[1:]]))
