"""What the command line shows of the registries that need torch, Optuna or pandas to fill.

``soundsweep tune --help`` lists every search space (with its grid size) and every model, and
``--dataset`` offers every dataset reader. Those registries fill up as their modules import,
and those modules import torch (the model zoo, which the spaces read too) or pandas (the
readers): seconds of start-up for a help text. So the facts the help shows are kept in
``registries.json`` beside this module, read with the standard library alone (:func:`stored`),
and :func:`current` computes the same facts from the registries themselves. A test checks that
the two are equal; after adding or changing a model, space or reader, refresh the file::

    python -m soundsweep.registries

Recipes need no listing: :mod:`trainables.recipes` is plain data and is read directly.
"""
import functools
import json
import os
import sys

LISTING = os.path.join(os.path.dirname(__file__), "registries.json")
REFRESH = "python -m soundsweep.registries"


@functools.cache
def stored() -> dict:
    """The listing kept in :data:`LISTING`: ``spaces`` (name -> description and number of
    configurations), ``models`` (name -> input kind, paper and widths) and ``datasets`` (reader
    names in the order detection tries them)."""
    with open(LISTING, encoding="utf-8") as f:
        return json.load(f)


def dataset_names() -> list[str]:
    """The ``--dataset`` choices: every reader's name, in detection order (from :func:`stored`)."""
    return stored()["datasets"]


def current() -> dict:
    """The listing as the registries give it now (imports the model zoo, the spaces and the readers)."""
    from search_spaces import SPACES, list_spaces
    from soundsweep.catalog import list_datasets
    from trainables.models import list_models, model_info

    spaces = {n: {"description": SPACES[n].description, "configurations": SPACES[n].grid_size()} for n in list_spaces()}
    models = {n: {"input": model_info(n).input, "paper": model_info(n).paper,
                  "widths": list(model_info(n).widths) if model_info(n).widths else None} for n in list_models()}
    return {"spaces": spaces, "models": models, "datasets": list_datasets()}


def main() -> None:
    """Rewrite :data:`LISTING` from the registries."""
    with open(LISTING, "w", encoding="utf-8") as f:
        json.dump(current(), f, indent=1)
        f.write("\n")
    print(f"wrote {LISTING}", file=sys.stderr)


if __name__ == "__main__":
    main()
