"""The model registry's machinery: ``register_model``, ``create_model``, ``list_models``."""
import fnmatch
import inspect
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


class ModelConfigError(ValueError):
    """An unknown model name or an option the model does not accept; the message says the fix."""


@dataclass(frozen=True)
class ModelInfo:
    """What the platform needs to know about a registered model before building it.

    Attributes:
        name: registry name, used by ``--arch`` and search spaces.
        builder: ``builder(num_classes=..., in_channels=..., **options) -> nn.Module``; its
            keyword parameters (and their defaults, the paper's configuration) are the options.
        input: front-end kind the model consumes (a key of ``trainables.features.FRONTENDS``).
        family: architecture family (for tables and the architecture space).
        paper: where it comes from.
        widths: allowed ``width`` values, or ``None`` when the model has no width option.
        sample_rate: the sample rate (Hz) the paper feeds the front-end with.
        seconds: the paper's input length in seconds (what benchmarks time).
        classes: the paper's class count (the reference configuration's ``num_classes``).
        min_seconds: shortest input the model accepts (pooling that needs a long input).
    """

    name: str
    builder: Callable[..., nn.Module]
    input: str
    family: str
    paper: str
    sample_rate: int
    seconds: float
    classes: int
    widths: tuple[int, ...] | None = None
    min_seconds: float = 0.0

    @property
    def options(self) -> dict:
        """Option name -> paper default (``in_channels`` included, ``num_classes`` not)."""
        params = inspect.signature(self.builder).parameters
        return {n: p.default for n, p in params.items() if n != "num_classes"}


_MODELS: dict[str, ModelInfo] = {}


def register_model(name: str, *, input: str, family: str, paper: str, sample_rate: int, seconds: float,
                   classes: int, widths: tuple[int, ...] | None = None, min_seconds: float = 0.0):
    """Decorator: register a builder function under ``name`` (one short function per variant)."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelInfo(name, builder, input, family, paper, sample_rate, seconds, classes,
                                  widths, min_seconds)
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


def create_model(name: str, num_classes: int, in_channels: int | None = None, **options) -> nn.Module:
    """Build a registered model with the paper's defaults, overridden by ``options``.

    ``in_channels`` is the number of audio channels the front-end receives (``None``: the
    paper's). Unknown options and widths the model does not allow raise
    :class:`ModelConfigError`.

    Example:
        >>> from trainables.models import create_model
        >>> model = create_model("resnet2d", num_classes=8, in_channels=2, width=32)
    """
    info = model_info(name)
    if "width" in options and options["width"] is None:
        del options["width"]
    unknown = sorted(set(options) - set(info.options))
    if unknown == ["width"]:
        raise ModelConfigError(f"model {name!r} has no width option: drop width")
    if unknown:
        raise ModelConfigError(f"model {name!r} has no option {', '.join(unknown)}: "
                               f"its options are {', '.join(sorted(info.options))}")
    width = options.get("width")
    if width is not None and int(width) not in info.widths:
        allowed = ", ".join(map(str, info.widths))
        raise ModelConfigError(f"width {width} is not allowed for {name!r}: choose one of {allowed}")
    if in_channels is not None:
        options["in_channels"] = in_channels
    return info.builder(num_classes=num_classes, **options)


def num_parameters(model: nn.Module) -> int:
    """Trainable and non-trainable ``nn.Parameter`` count (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def shape_only(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` on the meta device: shapes and dtypes without weights (instant, even for 134 M
    parameters); a model whose constructor computes on tensors (a torchaudio filterbank inside)
    is built on the CPU instead."""
    try:
        with torch.device("meta"):
            return build()
    except (RuntimeError, NotImplementedError):
        return build()


def parameter_count(name: str, num_classes: int, in_channels: int | None = None, **options) -> int:
    """:func:`num_parameters` of a configuration without allocating its weights (:func:`shape_only`)."""
    return num_parameters(shape_only(lambda: create_model(name, num_classes, in_channels, **options)))
