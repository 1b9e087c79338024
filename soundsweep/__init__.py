"""SoundSweep, driver side: CLI, dataset catalog, data preparation, resource plan, Tuner setup
and the results store. Worker-side code lives in ``trainables``; spaces in ``search_spaces``.
"""
__version__ = "0.1.0"
