"""Class hierarchies for two-stage classification: the super-class of every fine label.

A hierarchy comes from the dataset, as a ``coarse_label`` column of its manifest (DCASE2020:
10 scenes onto indoor, outdoor and transportation, :func:`~soundsweep.catalog.scene_hierarchy`),
or from a user CSV file with a header row and the columns ``fine,coarse``::

    fine,coarse
    ambient,calm
    folk,calm
    techno,beat

:func:`coarse_manifest` turns a manifest into the coarse task (each label replaced by its
super-class), which is how ``soundsweep tune --coarse`` trains the first stage.
"""
import pandas as pd

from soundsweep.catalog._manifest import index_labels
from soundsweep.errors import UsageError

COARSE_COLUMN = "coarse_label"


def read_hierarchy(path: str) -> dict[str, str]:
    """The ``fine -> coarse`` mapping of a CSV file with the columns ``fine,coarse``."""
    try:
        table = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UsageError(f"--hierarchy {path}: cannot read it ({exc}); give a CSV file with the header fine,coarse"
                         .splitlines()[0]) from exc
    if not {"fine", "coarse"} <= set(table.columns):
        raise UsageError(f"--hierarchy {path}: the header must name the columns fine,coarse "
                         f"(found {','.join(map(str, table.columns))})")
    table = table.dropna(subset=["fine", "coarse"])
    repeated = table.loc[table["fine"].duplicated(), "fine"]
    if len(repeated):
        raise UsageError(f"--hierarchy {path}: fine class {repeated.iloc[0]!r} is listed twice; give each one "
                         "super-class")
    return dict(zip(table["fine"].str.strip(), table["coarse"].str.strip()))


def dataset_hierarchy(manifest: pd.DataFrame) -> dict[str, str] | None:
    """The mapping stated by the manifest's ``coarse_label`` column, or ``None`` without one."""
    if COARSE_COLUMN not in manifest:
        return None
    pairs = manifest[["label", COARSE_COLUMN]].drop_duplicates()
    split = pairs.loc[pairs["label"].duplicated(), "label"]
    if len(split):
        raise UsageError(f"the dataset's {COARSE_COLUMN} gives class {split.iloc[0]!r} several super-classes; "
                         "give a --hierarchy file instead")
    return dict(zip(pairs["label"].astype(str), pairs[COARSE_COLUMN].astype(str)))


def hierarchy_for(manifest: pd.DataFrame, path: str | None) -> dict[str, str]:
    """The hierarchy of ``path`` if given, else the dataset's; checked to cover every label."""
    hierarchy = read_hierarchy(path) if path else dataset_hierarchy(manifest)
    if hierarchy is None:
        raise UsageError(f"this dataset states no super-classes (no {COARSE_COLUMN} column): give --hierarchy FILE, "
                         "a CSV with the columns fine,coarse")
    missing = sorted(set(manifest["label"].astype(str)) - set(hierarchy))
    if missing:
        raise UsageError(f"the hierarchy gives no super-class for {', '.join(missing)}: add them to the "
                         "--hierarchy file")
    return hierarchy


def coarse_manifest(manifest: pd.DataFrame, hierarchy: dict[str, str]) -> pd.DataFrame:
    """The manifest with each label replaced by its super-class (the fine one kept as ``fine_label``)."""
    coarse = manifest.copy()
    coarse["fine_label"] = coarse["label"]
    coarse["label"] = coarse["label"].astype(str).map(hierarchy)
    return index_labels(coarse)
