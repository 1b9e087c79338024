"""Models derived from stored models: two-stage fusion, ensembles, int8 quantization.

("Protocol" elsewhere names what one trial does, train or screening: ``trainables.trial``.)

Each takes models from the results store, evaluates them on the validation and test splits of
the data they were trained on, and stores what it builds as a model of its own (``ss_models``
``kind``: ``two_stage``, ``ensemble``, ``quantized``; ``sources``: the ids it was built from).
Segment- and clip-level aggregation and test-time augmentation are in
:mod:`trainables.evaluate`; the int8 scheme in :mod:`trainables.quantize`.

>>> from soundsweep.derived import ensemble, quantize_model, two_stage
>>> ensemble(store, "stack", experiment="fine", top_k=3)
"""
from soundsweep.derived.ensemble import ensemble
from soundsweep.derived.int8 import quantize_model
from soundsweep.derived.two_stage import two_stage

__all__ = ["ensemble", "quantize_model", "two_stage"]
