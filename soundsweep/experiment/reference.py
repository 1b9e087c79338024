"""The reference baseline of a run: MFCC+SVM on the experiment's own split, fitted once per
prepared dataset (:mod:`trainables.reference`) and cached beside its segments."""
import ray

from soundsweep.prepare import PreparedData
from soundsweep.storage import join, read_json, write_json
from trainables.reference import VERSION, fit_reference

REFERENCE_FILE = "reference.json"


def reference(data: PreparedData, sample_rate: int) -> dict:
    """The reference's figures on ``data`` (``method``, ``val_clip_acc``, ``test_clip_acc``, ...):
    read from the cache beside the segments, else fitted in a Ray task (one CPU) and cached, like
    the decode, so every later run on the same prepared data reuses it (``cached``)."""
    location = join(data.path, REFERENCE_FILE)
    cached = read_json(location)
    if cached is not None and cached.get("version") == VERSION:
        return {**cached, "cached": True}
    print("reference: fitting MFCC+SVM on the train split (C chosen on val) ...", flush=True)
    fitted = ray.get(ray.remote(num_cpus=1)(fit_reference).remote(data.path, sample_rate))
    write_json(location, fitted)
    return {**fitted, "cached": False}


def describe_reference(figures: dict) -> str:
    """One line: the reference's method, its chosen C and its clip accuracies."""
    return (f"reference: {figures['method']} (C={figures['C']:g}{', cached' if figures.get('cached') else ''}): "
            f"val clip acc {figures['val_clip_acc']:.3f}, test clip acc {figures['test_clip_acc']:.3f}")
