"""``python -m platform.dashboard [--results URL]``: serve the live view (same as ``soundsweep dashboard``)."""
import sys

from soundsweep.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["dashboard", *sys.argv[1:]]))
