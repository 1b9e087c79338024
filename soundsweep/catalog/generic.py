"""Generic layouts, tried after every named dataset: a folder per class and a manifest CSV.

Neither states splits by itself (a manifest CSV may): ``complete_manifest`` assigns them with
a stratified group split when the table has no ``split`` column.
"""
import os

import pandas as pd

from soundsweep.catalog._reader import Reader, class_folder_clips, register_reader
from soundsweep.errors import UsageError


class FolderPerClass(Reader):
    """``<root>/<label>/<clip>.wav``: the sub-folder name is the label; no metadata."""

    name = "folder"
    title = "folder-per-class"
    layout = "a folder that holds one sub-folder of audio files per class"

    def detect(self, root: str) -> bool:
        """Some sub-folder of ``root`` directly holds an audio file."""
        return bool(os.path.isdir(root) and class_folder_clips(root, first_only=True))

    def read(self, root: str) -> pd.DataFrame:
        rows = class_folder_clips(root)
        if not rows:
            raise UsageError(
                f"--data {root}: no audio files in class sub-folders; expected {root}/<label>/<clip>.wav "
                "(or give a manifest CSV with path,label columns)"
            )
        return pd.DataFrame(rows)


class ManifestCsv(Reader):
    """A CSV file with ``path,label`` and optionally ``split,fold,group`` and any extras.

    Relative paths are taken relative to the CSV's folder, so a manifest travels with its data.
    """

    name = "csv"
    title = "manifest CSV"
    layout = "a CSV file with path,label columns"

    def detect(self, root: str) -> bool:
        return os.path.isfile(root)

    def read(self, root: str) -> pd.DataFrame:
        return read_manifest_csv(root)


def read_manifest_csv(root: str, required: tuple[str, ...] = ("path", "label"), flag: str = "--data") -> pd.DataFrame:
    """The CSV file ``root`` as a manifest table, with ``required`` columns and absolute paths
    (relative ones are taken relative to the CSV's folder); ``flag`` names the argument in errors."""
    try:
        manifest = pd.read_csv(root)
    except Exception as exc:
        raise UsageError(f"{flag} {root}: cannot read it as CSV ({exc}); give a manifest CSV or a folder") from exc
    missing = [c for c in required if c not in manifest.columns]
    if missing:
        raise UsageError(f"{flag} {root}: the manifest lacks column(s) {', '.join(missing)}: a manifest needs "
                         f"{','.join(required)} (and optionally split,fold,group)")
    base = os.path.dirname(os.path.abspath(root))
    manifest["path"] = [p if os.path.isabs(p) or "://" in p else os.path.join(base, p)
                        for p in manifest["path"].astype(str)]
    return manifest


register_reader(FolderPerClass())
register_reader(ManifestCsv())
