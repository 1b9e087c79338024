"""Declarative search spaces, one module per ``--space`` name.

A space is data: categorical choices per parameter (the paper's grid) plus constants. It is
handed to Optuna as a define-by-run function, so conditional spaces (a sub-space per model
family) fit the same shape. Adding a module that calls :func:`register_space` adds a CLI choice.

>>> from search_spaces import get_space
>>> get_space("augmentation").grid_size()
972
"""
import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterator

import optuna

from trainables.registry import Registry


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
        max_warmup_epochs: the longest learning-rate warm-up a configuration may sample (early
            stopping puts no rung inside it).
    """

    name: str
    description: str
    choices: dict[str, tuple] = field(default_factory=dict)
    constants: dict = field(default_factory=dict)
    conditional: Callable[[optuna.Trial, dict], dict] | None = None
    max_warmup_epochs: float = 0.0

    def define(self, trial: optuna.Trial) -> dict:
        """Optuna define-by-run function: sample every choice, return the constants."""
        sampled = {name: trial.suggest_categorical(name, list(values)) for name, values in self.choices.items()}
        extra = dict(self.constants)
        if self.conditional is not None:
            extra.update(self.conditional(trial, sampled))
        return extra

    def sample(self, trial: optuna.Trial) -> dict:
        """The config a Tune trial gets from this space: what :meth:`define` sampled and returned,
        with ``/``-separated names nested (``model_options/a/b`` -> ``{"model_options": {"a":
        {"b": ...}}}``), as Ray's ``OptunaSearch`` does. ``trial`` must be fresh (``study.ask()``)."""
        returned = self.define(trial)
        flat = {**trial.params, **returned}
        config: dict = {}
        for key, value in flat.items():
            *parents, leaf = key.split("/")
            node = config
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
        return config

    def grid(self) -> list[dict]:
        """Every distinct configuration, conditional branches included, as the Optuna parameters
        that select it; in order, the first choice varying slowest (walks every path of
        categorical decisions)."""
        return list(self._walk())

    def _walk(self) -> Iterator[dict]:
        pending = [()]
        while pending:
            path = pending.pop()
            replay = _Replay(path)
            self.define(replay)
            if len(replay.fanouts) == len(path):
                yield replay.params
            else:
                pending.extend(path + (i,) for i in reversed(range(replay.fanouts[len(path)])))

    def grid_size(self, limit: int | None = None) -> int:
        """Number of distinct configurations (:meth:`grid`), counted up to ``limit`` at most (a
        composed space such as ``augmentation+recipe`` holds millions: ask whether it has at
        least N without walking them all)."""
        return sum(1 for _ in itertools.islice(self._walk(), limit))

    def point_for(self, values: dict) -> dict | None:
        """The Optuna parameters that select ``values`` (``{parameter: value}``, e.g. a recipe's
        settings), conditional ones included; ``None`` when the space samples a parameter that
        ``values`` lacks or cannot hold its value."""
        trial = _Fixed(values)
        try:
            self.define(trial)
        except KeyError:
            return None
        return trial.params


class _Replay:
    """A stand-in Optuna trial for :meth:`SearchSpace.grid`: takes the choices named by ``path``
    (then the first ones), records how many choices each decision had and what it took."""

    def __init__(self, path: tuple[int, ...]):
        self.path, self.fanouts, self.params = path, [], {}

    def suggest_categorical(self, name: str, choices: list):
        depth = len(self.fanouts)
        self.fanouts.append(len(choices))
        self.params[name] = choices[self.path[depth] if depth < len(self.path) else 0]
        return self.params[name]


class _Fixed:
    """A stand-in Optuna trial for :meth:`SearchSpace.point_for`: each suggestion is the given
    value, or ``KeyError`` when there is none among the choices."""

    def __init__(self, values: dict):
        self.values, self.params = values, {}

    def suggest_categorical(self, name: str, choices: list):
        if name not in self.values or self.values[name] not in choices:
            raise KeyError(name)
        self.params[name] = self.values[name]
        return self.params[name]


def option_key(arch: str, option: str) -> str:
    """The Optuna parameter name of one ``create_model`` option of ``arch``:
    ``model_options/<arch>/<option>`` (:class:`~trainables.config.TrialConfig` ``model_options``;
    each architecture has its own name, since an Optuna parameter keeps one set of choices)."""
    return f"model_options/{arch}/{option}"


def flatten(config: dict, prefix: str = "") -> dict:
    """The inverse of :meth:`SearchSpace.sample`'s nesting: ``{"a": {"b": 1}}`` -> ``{"a/b": 1}``,
    the Optuna parameter names a config came from."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


SPACES: Registry[SearchSpace] = Registry("search space")


@dataclass(frozen=True)
class DefineByName:
    """The define-by-run function of a registered space, pickled as its name only.

    Tune pickles its searcher into the experiment state (for ``--resume``); a space whose
    ``conditional`` is a closure cannot be pickled, its name can.
    """

    name: str

    def __call__(self, trial: optuna.Trial) -> dict:
        return get_space(self.name).define(trial)


register_space, list_spaces = SPACES.register, SPACES.names


def get_space(name: str) -> SearchSpace:
    """The registered space ``name``, or the composition of several joined by ``+``
    (:func:`compose`); an unknown name raises ``KeyError`` naming the choices."""
    parts = [SPACES.lookup(part) for part in name.split("+")]
    return parts[0] if len(parts) == 1 else compose(parts)


def compose(spaces: list[SearchSpace]) -> SearchSpace:
    """One space that samples every part's parameters (``augmentation+recipe``): choices and
    constants side by side, conditional hooks called in turn. Parts may not share a parameter."""
    choices, constants, hooks = {}, {}, [s.conditional for s in spaces if s.conditional is not None]
    for space in spaces:
        for key in (*space.choices, *space.constants):
            if key in choices or key in constants:
                raise KeyError(f"spaces {'+'.join(s.name for s in spaces)} both set {key!r}: combine spaces "
                               "that search different parameters")
        choices.update(space.choices)
        constants.update(space.constants)

    def conditional(trial: optuna.Trial, sampled: dict) -> dict:
        extra: dict = {}
        for hook in hooks:
            extra.update(hook(trial, sampled))
        return extra

    return SearchSpace(name="+".join(s.name for s in spaces), description=" + ".join(s.description for s in spaces),
                       choices=choices, constants=constants, conditional=conditional if hooks else None,
                       max_warmup_epochs=max(s.max_warmup_epochs for s in spaces))


from search_spaces import architecture, augmentation, ccs, random_cnn, recipe, width  # noqa: E402,F401  (register their spaces)
