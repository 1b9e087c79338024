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
a new option is one new field. Fields without a ``help`` in their metadata are not flags. Worker
code, which must not import this driver package, declares its flags with plain
``field(default=..., metadata={"help": ...})``: the same metadata.
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
    return field(default=default, metadata=meta)


def flag(name: str) -> str:
    """The flag of a field: ``max_epochs`` -> ``--max-epochs``."""
    return "--" + name.replace("_", "-")


def flag_fields(config_type: type) -> list:
    """The fields of ``config_type`` that are flags: those whose metadata has a ``help``."""
    return [f for f in fields(config_type) if f.metadata.get("help")]


def _value_type(annotation) -> type:
    """``int | None`` -> ``int``: what a flag's text is converted to."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return inner
    return annotation


def add_options(parser: argparse.ArgumentParser, config_type: type, groups: Iterable[str] = (),
                group: str | None = None, unset: bool = False) -> dict[str, argparse._ArgumentGroup]:
    """Add a flag for every field of ``config_type`` whose metadata has a ``help``.

    Argument groups are made in the order of ``groups``, then of first use; ``group`` puts every
    flag of a config without its own group in that section. With ``unset`` every flag defaults
    to ``None``, so :func:`given` can tell the flags a user gave (overrides of values chosen
    elsewhere, such as a recipe's). Returns the groups by title."""
    hints = typing.get_type_hints(config_type)
    made = {title: parser.add_argument_group(title) for title in groups}
    for f in flag_fields(config_type):
        meta = f.metadata
        target = parser
        title = meta.get("group") or group
        if title:
            if title not in made:
                made[title] = parser.add_argument_group(title)
            target = made[title]
        kwargs: dict[str, Any] = {"help": meta["help"], "dest": f.name}
        value_type = _value_type(hints[f.name])
        if value_type is bool:
            kwargs.update(action="store_true", default=None if unset else False)
        else:
            kwargs["type"] = value_type
            kwargs["default"] = None if unset or f.default is MISSING else f.default
            choices = meta.get("choices")
            if choices is not None:
                kwargs["choices"] = list(choices() if callable(choices) else choices)
            for key in ("metavar", "required"):
                if meta.get(key):
                    kwargs[key] = meta[key]
        target.add_argument(flag(f.name), **kwargs)
    return made


def given(config_type: type, args: argparse.Namespace) -> dict:
    """The flags of ``config_type`` (added with ``unset``) that were given, by field name."""
    return {f.name: getattr(args, f.name) for f in fields(config_type)
            if getattr(args, f.name, None) is not None}


def from_args(config_type: type, args: argparse.Namespace, **overrides):
    """An instance of ``config_type`` from parsed flags (fields without a flag keep their default)."""
    given = {f.name: getattr(args, f.name) for f in fields(config_type) if hasattr(args, f.name)}
    return config_type(**{**given, **overrides})
