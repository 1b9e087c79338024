"""Datasets that ship a metadata CSV with official cross-validation folds: ESC-50, UrbanSound8K.

Both are one :class:`FoldTable` configured by data: where the table is, which columns hold the
file, label and group, and where a row's audio lives. The chosen ``test_fold`` is test, the
next fold (wrapping around) val, the rest train; ``fold`` stays in the manifest so a
cross-validation run only changes ``test_fold``. The official folds already keep each group
(ESC-50: source recording ``src_file``; UrbanSound8K: Freesound id ``fsID``) in one fold.

ESC-50 (``meta/esc50.csv``: filename,fold,target,category,esc10,src_file,take; ``audio/``):
5 folds, test fold 1 by default as is common practice; ``esc10`` is kept as an extra column.
UrbanSound8K (``metadata/UrbanSound8K.csv``: slice_file_name,fsID,start,end,salience,fold,
classID,class; ``audio/fold1..10``): 10 folds, test fold 10 by default (val then wraps to fold
1); ``salience`` (1 foreground, 2 background) is kept as an extra column.
"""
import os
import re
from dataclasses import dataclass

import pandas as pd

from soundsweep.catalog._manifest import splits_from_folds
from soundsweep.catalog._reader import Reader, register_reader


@dataclass(frozen=True)
class FoldTable(Reader):
    """A metadata table with one row per clip and an official ``fold`` column.

    Attributes (beyond :class:`Reader`'s):
        table: the metadata CSV, relative to the root.
        file_column, label_column, group_column: the table's columns for each role.
        audio_path: a row's audio, relative to the root; ``{file}`` and ``{fold}`` are filled in.
        default_test_fold: the test fold when none is given.
        extras: further table columns copied into the manifest.
    """

    name: str
    title: str
    layout: str
    table: str
    file_column: str
    label_column: str
    group_column: str
    audio_path: str
    default_test_fold: int
    extras: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    audio_name: re.Pattern | None = None

    def read(self, root: str, test_fold: int | None = None) -> pd.DataFrame:
        """Every row of the table, split by its folds (``test_fold`` test, the next one val)."""
        columns = (self.file_column, self.label_column, self.group_column, "fold", *self.extras)
        table = self.read_table(root, self.table, columns)
        paths = [self.audio_path.format(file=f, fold=k) for f, k in zip(table[self.file_column], table["fold"])]
        for folder in sorted({os.path.dirname(p) for p in paths}):
            self.require(root, folder, folder=True)
        manifest = pd.DataFrame({
            "clip_id": [os.path.splitext(str(f))[0] for f in table[self.file_column]],
            "path": [os.path.join(root, p) for p in paths],
            "label": table[self.label_column].astype(str),
            "fold": table["fold"].astype(int),
            "group": table[self.group_column].astype(str),
        })
        test_fold = self.default_test_fold if test_fold is None else test_fold
        manifest["split"] = splits_from_folds(manifest["fold"], test_fold, f"{self.title} {root}")
        for column in self.extras:
            manifest[column] = table[column]
        return manifest


register_reader(FoldTable(
    name="esc50", title="ESC-50", layout="the folder that holds meta/ and audio/",
    table="meta/esc50.csv", file_column="filename", label_column="category", group_column="src_file",
    audio_path="audio/{file}", default_test_fold=1, extras=("esc10",),
    markers=("meta/esc50.csv",), audio_name=re.compile(r"^\d-\d+-[A-Z]-\d+\.wav$"),
))
register_reader(FoldTable(
    name="urbansound8k", title="UrbanSound8K", layout="the folder that holds metadata/ and audio/fold1..10",
    table="metadata/UrbanSound8K.csv", file_column="slice_file_name", label_column="class", group_column="fsID",
    audio_path="audio/fold{fold}/{file}", default_test_fold=10, extras=("salience",),
    markers=("metadata/UrbanSound8K.csv", "audio/fold1"),
))
