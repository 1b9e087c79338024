"""``python -m soundsweep <command> ...``: the ``soundsweep`` command without the installed script."""
from soundsweep.cli import console_main

if __name__ == "__main__":
    console_main()
