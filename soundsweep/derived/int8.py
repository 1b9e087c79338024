"""``soundsweep quantize --model ID``: int8 weights for a stored model, size and accuracy before/after.

The weight-only per-channel int8 scheme is :mod:`trainables.quantize` (DCASE2020 Task 1b). The
command evaluates the float and the quantized model on the test split, counts the clips on which
they agree, saves the int8 state next to the experiment's checkpoints
(``<storage>/quantized/model-<ID>.pt``, a path or a URI: :mod:`soundsweep.storage`) and stores the
quantized model as a model of its own (kind ``quantized``, ``size_kb`` its int8 size), which
``ensemble --models`` can combine.
"""
import numpy as np

from soundsweep import storage
from soundsweep.derived.stored import find_model
from soundsweep.errors import UsageError
from soundsweep.experiment.evaluation import evaluation_fields
from soundsweep.results import ResultsStore
from trainables.model_io import predict_split
from trainables.quantize import quantize, size_kb


def quantize_model(store: ResultsStore, model_id: int) -> dict:
    """Quantize stored model ``model_id``; returns the stored row of the quantized model."""
    source = find_model(store, model_id)
    if source.row.kind != "single":
        raise UsageError(f"--model {model_id} is already quantized; give the id of a trained model")
    model, frontend = source.load()
    small = quantize(model)
    data = source.data
    before = predict_split(model, frontend, data.path, "test")
    after = predict_split(small, frontend, data.path, "test")
    val = predict_split(small, frontend, data.path, "val")
    float_kb, int8_kb = size_kb(model), size_kb(small)
    agreement = {
        "segment_agreement": float((before.probs.argmax(1) == after.probs.argmax(1)).mean()),
        "clip_agreement": float(np.mean(before.clips()[2] == after.clips()[2])),
    }
    path = storage.join(source.experiment.row.storage_path, "quantized", f"model-{model_id}.pt")
    storage.save_torch(path, small.state_dict())
    row = {
        "trial_id": f"int8-{source.row.trial_id}", "epoch": source.row.epoch, "checkpoint_uri": path,
        "kind": "quantized", "sources": [model_id], "params": source.row.params,
        "num_params": source.row.num_params, "val_clip_acc": val.clip_accuracy(), "size_kb": int8_kb,
        **evaluation_fields(after, data.classes, **val.metrics("val"), float_kb=float_kb, int8_kb=int8_kb,
                            size_ratio=float_kb / int8_kb, **agreement,
                            float=before.metrics("test"), fold=source.row.metrics.get("fold")),
    }
    row["model_id"] = store.add_model(source.row.experiment_id, **row)
    return row
