"""The results store: experiments, trials, per-epoch metrics and best models in SQL.

>>> from soundsweep.results import ResultsStore
>>> store = ResultsStore("sqlite:///results/soundsweep.db")
"""
from soundsweep.results.store import SCHEMA_VERSION, ResultsStore

__all__ = ["SCHEMA_VERSION", "ResultsStore"]
