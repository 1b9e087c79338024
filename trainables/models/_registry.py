"""The model registry's machinery: ``register_model``, ``create_model``, ``list_models``."""
import fnmatch
from dataclasses import dataclass
from typing import Callable

from torch import nn


class ModelConfigError(ValueError):
    """An unknown model name or an option the model does not accept; the message says the fix."""


@dataclass(frozen=True)
class ModelInfo:
    """What the platform needs to know about a registered model before building it.

    Attributes:
        name: registry name, used by ``--arch`` and search spaces.
        builder: ``builder(num_classes=..., in_channels=..., **options) -> nn.Module``.
        input: front-end kind the model consumes (``waveform`` or ``logmel``).
        family: architecture family (for tables and the architecture space).
        paper: where it comes from.
        widths: allowed ``width`` values, or ``None`` when the model has no width option.
    """

    name: str
    builder: Callable[..., nn.Module]
    input: str
    family: str
    paper: str
    widths: tuple[int, ...] | None = None


_MODELS: dict[str, ModelInfo] = {}


def register_model(name: str, *, input: str, family: str, paper: str, widths: tuple[int, ...] | None = None):
    """Decorator: register a builder function under ``name`` (one short function per variant)."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelInfo(name, builder, input, family, paper, widths)
        return builder

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; an unknown name raises :class:`ModelConfigError`."""
    if name not in _MODELS:
        raise ModelConfigError(f"unknown model {name!r}: choose one of {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, num_classes: int, in_channels: int = 1, **options) -> nn.Module:
    """Build a registered model with the paper's defaults, overridden by ``options``.

    Example:
        >>> from trainables.models import create_model
        >>> model = create_model("resnet2d", num_classes=8, in_channels=2, width=32)
    """
    info = model_info(name)
    width = options.get("width")
    if width is not None and info.widths is None:
        raise ModelConfigError(f"model {name!r} has no width option: drop width")
    if width is not None and info.widths and int(width) not in info.widths:
        allowed = ", ".join(map(str, info.widths))
        raise ModelConfigError(f"width {width} is not allowed for {name!r}: choose one of {allowed}")
    return info.builder(num_classes=num_classes, in_channels=in_channels, **options)


def num_parameters(model: nn.Module) -> int:
    """Trainable and non-trainable ``nn.Parameter`` count (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())
