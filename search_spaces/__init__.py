"""Declarative search spaces, one module per ``--space`` name.

A space is data: categorical choices per parameter (the paper's grid) plus constants. It is
handed to Optuna as a define-by-run function, so conditional spaces (a sub-space per model
family) fit the same shape. Adding a module that calls :func:`register_space` adds a CLI choice.

>>> from search_spaces import get_space
>>> get_space("augmentation").grid_size()
972
"""
from dataclasses import dataclass, field
from typing import Callable

import optuna


@dataclass(frozen=True)
class SearchSpace:
    """A named space.

    Attributes:
        name: the ``--space`` value.
        description: one line for ``--help``.
        choices: parameter -> allowed values; Optuna samples each categorically.
        constants: values every trial of this space gets.
        conditional: optional define-by-run hook for parameters that depend on earlier ones;
            it receives the Optuna trial and the values sampled so far and returns more values.
    """

    name: str
    description: str
    choices: dict[str, tuple] = field(default_factory=dict)
    constants: dict = field(default_factory=dict)
    conditional: Callable[[optuna.Trial, dict], dict] | None = None

    def define(self, trial: optuna.Trial) -> dict:
        """Optuna define-by-run function: sample every choice, return the constants."""
        sampled = {name: trial.suggest_categorical(name, list(values)) for name, values in self.choices.items()}
        extra = dict(self.constants)
        if self.conditional is not None:
            extra.update(self.conditional(trial, sampled))
        return extra

    def grid_size(self) -> int:
        size = 1
        for values in self.choices.values():
            size *= len(values)
        return size


SPACES: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace) -> SearchSpace:
    if space.name in SPACES:
        raise ValueError(f"search space {space.name!r} is registered twice")
    SPACES[space.name] = space
    return space


def list_spaces() -> list[str]:
    return sorted(SPACES)


def get_space(name: str) -> SearchSpace:
    """The registered space ``name``; an unknown name raises ``KeyError`` naming the choices."""
    if name not in SPACES:
        raise KeyError(f"unknown search space {name!r}: choose one of {', '.join(list_spaces())}")
    return SPACES[name]


from search_spaces import augmentation  # noqa: E402,F401  (registers its space)
