"""Transfer learning: start a model from another run's weights (``--init-from CHECKPOINT``)."""
from collections.abc import Mapping

import torch
from torch import nn

from trainables.models._registry import ModelConfigError

CLASSIFIER = "classifier."
"""Every zoo model keeps its class-dependent layers under a ``classifier`` submodule."""


def load_compatible(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Load ``state_dict`` into ``model``, re-initialising the classifier head where it differs.

    Every entry outside ``model.classifier`` must exist in both with the same shape; classifier
    entries that are missing, extra or shaped differently (another class count) are ignored and
    the model's fresh initialisation is kept. Returns the model's entries that were not loaded.

    Raises:
        ModelConfigError: one line naming the first incompatible entry.

    Example:
        >>> state = torch.load("checkpoint.pt", map_location="cpu", weights_only=True)["model"]
        >>> skipped = load_compatible(create_model("resnet2d", num_classes=10), state)
    """
    own = model.state_dict()
    extra = sorted(n for n in set(state_dict) - set(own) if not n.startswith(CLASSIFIER))
    if extra:
        raise ModelConfigError(f"checkpoint entry {extra[0]!r} does not exist in this model "
                               f"({len(extra)} such entries): it was saved from another architecture")
    loaded, skipped = {}, []
    for name, tensor in own.items():
        theirs = state_dict.get(name)
        if theirs is not None and theirs.shape == tensor.shape:
            loaded[name] = theirs
        elif name.startswith(CLASSIFIER):
            skipped.append(name)
        elif theirs is None:
            raise ModelConfigError(f"checkpoint has no entry {name!r}: it was saved from another architecture")
        else:
            raise ModelConfigError(f"checkpoint entry {name!r} has shape {tuple(theirs.shape)}, the model "
                                   f"{tuple(tensor.shape)}: same architecture, width and options are needed")
    model.load_state_dict(loaded, strict=False)
    return skipped
