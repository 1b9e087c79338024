"""SoundSweep's own result pages: one renderer, two outputs.

:mod:`~soundsweep.report.views` reads the results store into summaries,
:mod:`~soundsweep.report.plots` draws PNG figures (matplotlib Agg) and
:mod:`~soundsweep.report.pages` writes server-rendered HTML. The dashboard serves those pages
live (:mod:`soundsweep.dashboard`); :func:`write_report` writes one experiment as a static folder.

>>> from soundsweep.report import write_report
>>> write_report("sqlite:///results/soundsweep.db", "augmentation-20260101-120000", "report/")
"""
from soundsweep.report.static import write_report

__all__ = ["write_report"]
