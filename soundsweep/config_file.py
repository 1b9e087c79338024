"""``--config FILE``: a command's settings as YAML, one ``key: value`` per flag.

A key is the flag's name with ``_`` for ``-`` (its argparse ``dest``: ``max_epochs: 20`` for
``--max-epochs 20``), so the keys are exactly the command's flags and no list of them is kept
here. :func:`read` checks a file against the parser's own options (their types and choices)
and names the file, the key and the fix in a one-line :class:`~soundsweep.errors.UsageError`;
the command line then makes the values its defaults, so a flag given beside ``--config``
overrides the file. :func:`write` is the inverse (``--print-config``): its output read back
gives the same values.

    # exp.yaml
    space: augmentation
    max_epochs: 20
    lr: 0.001
"""
import argparse
import difflib

import yaml

from soundsweep.errors import UsageError

HEADER = "# soundsweep tune settings: run them with `soundsweep tune --config FILE`; flags given there override them\n"
KINDS = {int: ("a whole number", "10"), float: ("a number", "0.5"), str: ("text", "name")}
"""A flag's value type -> how an error names it and an example value."""


def settings(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ("config", "print_config")) -> dict:
    """The options of ``parser`` a file may set, by key (``dest``): every flag but ``--help`` and
    those in ``exclude`` (the flags about the file itself)."""
    return {a.dest: a for a in parser._actions
            if a.option_strings and a.dest not in (argparse.SUPPRESS, "help", *exclude)}


def read(path: str, parser: argparse.ArgumentParser) -> dict:
    """The settings in the YAML file ``path`` (key -> value converted as the flag converts it),
    checked against ``parser``'s options; a one-line ``UsageError`` for a missing or unreadable
    file, text that is not YAML or not ``key: value`` lines, an unknown key (naming the nearest
    known one) or a value of the wrong type or outside the flag's choices."""
    try:
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f)
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file; give the path of a YAML settings file "
                         "(soundsweep tune --print-config writes one)") from None
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot read it ({exc.strerror}); give a readable YAML file") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--config {path} is not valid YAML ({_describe(exc)}): write one 'key: value' per line, "
                         "e.g. max_epochs: 20") from None
    if loaded is None:  # an empty file (or only comments) sets nothing
        return {}
    if not isinstance(loaded, dict):
        raise UsageError(f"--config {path}: expected 'key: value' lines (a YAML mapping), found a "
                         f"{type(loaded).__name__}; write one setting per line, e.g. max_epochs: 20")
    known = settings(parser)
    unknown = [str(key) for key in loaded if key not in known]
    if unknown:
        raise UsageError(f"--config {path}: unknown key{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(_suggest(known), unknown))}; the keys are the flags' names with _ for - "
                         f"(see '{parser.prog} --help')")
    return {key: _convert(path, key, value, known[key]) for key, value in loaded.items()}


def write(values: dict) -> str:
    """``values`` (key -> value) as a settings file :func:`read` reads back to the same values."""
    return HEADER + yaml.safe_dump(values, sort_keys=False, default_flow_style=False)


def _describe(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    what = " ".join(str(getattr(exc, "problem", None) or exc).split())
    return f"{what} at line {mark.line + 1}, column {mark.column + 1}" if mark else what


def _suggest(known: dict):
    """``'max_epoch' (did you mean 'max_epochs'?)``: an unknown key with the nearest known one."""
    def name(key: str) -> str:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        return f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")

    return name


def _convert(path: str, key: str, raw, action: argparse.Action):
    """``raw`` (as YAML typed it) checked and converted as ``action`` converts a flag's text."""
    where = f"--config {path}: {key}"
    if raw is None:
        if action.default is None:  # an optional setting left unset
            return None
        raise UsageError(f"{where} is empty; give it a value (its default is {action.default}) or delete the line")
    if action.nargs == 0:  # a switch
        if isinstance(raw, bool):
            return raw
        raise UsageError(f"{where}: {raw!r} is not true or false; write {key}: true or {key}: false")
    kind, example = KINDS.get(action.type, ("a value", "..."))
    try:
        if isinstance(raw, (bool, list, dict)):  # YAML reads yes/no/on/off as booleans
            raise TypeError
        value = action.type(str(raw)) if action.type else str(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: {raw!r} is not {kind}; give {kind}, e.g. {key}: {example}"
                         + (" (quote text that YAML reads otherwise)" if action.type is str else "")) from None
    if action.choices is not None and value not in action.choices:
        raise UsageError(f"{where}: {value!r} is not one of {', '.join(map(str, action.choices))}; pick one of them")
    return value
