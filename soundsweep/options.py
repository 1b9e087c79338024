"""Config fields that are also command-line flags: each option is written once, on its dataclass.

>>> @dataclass
... class Config:
...     lr: float = option(1e-3, "learning rate (default %(default)s)", group="training")
>>> parser = argparse.ArgumentParser()
>>> add_options(parser, Config)
>>> parser.parse_args(["--lr", "0.1"]).lr
0.1

A field made with :func:`option` carries its help text, its argument group, its choices and its
metavar; :func:`add_options` turns every such field of a config dataclass into ``--field-name``
with the type of the field's annotation (``X | None`` takes an ``X``; ``bool`` is a switch), so
a new option is one new field. Fields made with plain ``field`` or a bare default are not flags.
"""
import argparse
import types
import typing
from dataclasses import MISSING, field, fields
from typing import Any, Callable, Iterable


def option(default: Any = MISSING, help: str = "", *, group: str | None = None,
           choices: Iterable | Callable[[], Iterable] | None = None, metavar: str | None = None,
           required: bool = False) -> Any:
    """A dataclass field that is also a flag. ``choices`` may be a function, called when the
    parser is built (registries fill up on import); ``group`` names the ``--help`` section."""
    meta = {"help": help, "group": group, "choices": choices, "metavar": metavar, "required": required}
    return field(default=default, metadata={"option": meta})


def flag(name: str) -> str:
    """The flag of a field: ``max_epochs`` -> ``--max-epochs``."""
    return "--" + name.replace("_", "-")


def _value_type(annotation) -> type:
    """``int | None`` -> ``int``: what a flag's text is converted to."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return inner
    return annotation


def add_options(parser: argparse.ArgumentParser, config_type: type, groups: Iterable[str] = (),
                exclude: Iterable[str] = ()) -> dict[str, argparse._ArgumentGroup]:
    """Add a flag for every :func:`option` field of ``config_type`` (but those in ``exclude``).

    Argument groups are made in the order of ``groups``, then of first use; returns them by title
    so a caller can add more flags to a section."""
    hints = typing.get_type_hints(config_type)
    made = {title: parser.add_argument_group(title) for title in groups}
    for f in fields(config_type):
        meta = f.metadata.get("option")
        if meta is None or f.name in exclude:
            continue
        target = parser
        if meta["group"]:
            if meta["group"] not in made:
                made[meta["group"]] = parser.add_argument_group(meta["group"])
            target = made[meta["group"]]
        kwargs: dict[str, Any] = {"help": meta["help"], "dest": f.name}
        value_type = _value_type(hints[f.name])
        if value_type is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = value_type
            kwargs["default"] = None if f.default is MISSING else f.default
            choices = meta["choices"]
            if choices is not None:
                kwargs["choices"] = list(choices() if callable(choices) else choices)
            if meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
            if meta["required"]:
                kwargs["required"] = True
        target.add_argument(flag(f.name), **kwargs)
    return made


def from_args(config_type: type, args: argparse.Namespace, **overrides):
    """An instance of ``config_type`` from parsed flags (fields without a flag keep their default)."""
    given = {f.name: getattr(args, f.name) for f in fields(config_type) if hasattr(args, f.name)}
    return config_type(**{**given, **overrides})
