"""Progress of the driver's long steps (the decode, the final evaluation, the report) on stderr.

On a terminal it is a tqdm bar with counts, rate and time left, gone when the step ends (the
step's result line follows on stdout). Elsewhere (a pipe, a log file, CI) a bar would write a
carriage-return frame per update, so it is a plain line instead, at most every
:data:`EVERY_S` seconds and once at the end::

    decoding: 64/144 clips (44%), 4 s so far, about 5 s left
    decoding: 144/144 clips in 9 s

>>> with Progress(3, "scoring", "trials") as bar:
...     for _ in range(3):
...         bar.update()
"""
import sys
import time

from tqdm import tqdm

EVERY_S = 10.0


class Progress:
    """``total`` steps of ``unit`` (the total may grow: :meth:`add_total`), described as ``what``."""

    def __init__(self, total: float, what: str, unit: str, stream=None, every_s: float = EVERY_S):
        self.total, self.what, self.unit, self.every_s = total, what, unit, every_s
        self.stream = stream or sys.stderr
        self.done = 0.0
        self.started = self.last = time.monotonic()
        isatty = getattr(self.stream, "isatty", None)
        self.bar = tqdm(total=total, desc=what, unit=f" {unit}", file=self.stream, leave=False,
                        dynamic_ncols=True) if isatty and isatty() else None

    def update(self, n: float = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.last >= self.every_s and self.done < self.total:
            self.last = time.monotonic()
            elapsed = self.last - self.started
            left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
            self._line(f"{self._count()} ({self.done / self.total:.0%}), {elapsed:.0f} s so far, about {left:.0f} s left")

    def add_total(self, n: float) -> None:
        self.total += n
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def close(self, finished: bool = True) -> None:
        """End the bar; without a terminal, say how long the step took (if it ``finished``)."""
        if self.bar is not None:
            self.bar.close()
        elif finished:
            self._line(f"{self._count()} in {time.monotonic() - self.started:.0f} s")

    def _count(self) -> str:
        return f"{self.done:g}/{self.total:g} {self.unit}"

    def _line(self, text: str) -> None:
        print(f"{self.what}: {text}", file=self.stream, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(finished=exc_type is None)
