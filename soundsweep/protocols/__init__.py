"""Evaluation protocols over stored models (issue 5): two-stage fusion, ensembles, int8 quantization.

Each takes models from the results store, evaluates them on the validation and test splits of
the data they were trained on, and stores what it builds as a model of its own (``ss_models``
``kind``: ``two_stage``, ``ensemble``, ``quantized``; ``sources``: the ids it was built from).
Segment- and clip-level aggregation and test-time augmentation are in
:mod:`trainables.evaluate`; the int8 scheme in :mod:`trainables.quantize`.

>>> from soundsweep.protocols import ensemble, quantize_model, two_stage
>>> ensemble(store, "stack", experiment="fine", top_k=3)
"""
from soundsweep.protocols.ensemble import ensemble
from soundsweep.protocols.quantization import quantize_model
from soundsweep.protocols.two_stage import two_stage

__all__ = ["ensemble", "quantize_model", "two_stage"]
