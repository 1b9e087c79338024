"""FMA (Free Music Archive) small and medium: genre labels and the official split.

Layout under the root::

    fma_metadata/tracks.csv      two header rows (e.g. ``set,split``), then a ``track_id`` row
    fma_small/000/000002.mp3     track id zero-padded to 6 digits, folder = its first 3 digits
    fma_medium/...               the same for the medium subset (it contains the small one)

The label is ``track/genre_top``, the split ``set/split`` (training/validation/test). The
official split keeps each artist in one set, so ``group`` is the artist id (``artist/id``),
or the track id where a track has none. Audio is listed from the metadata, not from the disk:
a missing or undecodable mp3 (fma_small ships a few) stays in the manifest and the decode step
skips and lists it.
"""
import os

import pandas as pd

from soundsweep.catalog._reader import Reader, register_reader
from soundsweep.errors import UsageError

TRACKS = "fma_metadata/tracks.csv"
SUBSETS = {"small": ("small",), "medium": ("small", "medium")}  # which set/subset values each holds


class Fma(Reader):
    name = "fma"
    title = "FMA"
    layout = "the folder that holds fma_metadata/ and fma_small/ (or fma_medium/)"
    markers = ("fma_metadata", *(f"fma_{subset}" for subset in SUBSETS))

    def read(self, root: str, subset: str | None = None) -> pd.DataFrame:
        """Tracks of ``subset`` ("small" or "medium"; default: small if ``fma_small/`` exists)."""
        if subset is None:
            subset = next((s for s in SUBSETS if os.path.isdir(os.path.join(root, f"fma_{s}"))), "small")
        if subset not in SUBSETS:
            raise UsageError(f"FMA subset {subset!r} is not supported; pick one of {', '.join(SUBSETS)}")
        columns = (("set", "subset"), ("set", "split"), ("track", "genre_top"))
        tracks = self.read_table(root, TRACKS, columns, header=[0, 1], index_col=0)
        audio = self.require(root, f"fma_{subset}", folder=True)
        tracks = tracks[tracks["set", "subset"].isin(SUBSETS[subset]) & tracks["track", "genre_top"].notna()]
        ids = [f"{int(track_id):06d}" for track_id in tracks.index]
        artists = tracks["artist", "id"] if ("artist", "id") in tracks.columns else pd.Series(pd.NA, tracks.index)
        return pd.DataFrame({
            "clip_id": ids,
            "path": [os.path.join(audio, i[:3], f"{i}.mp3") for i in ids],
            "label": tracks["track", "genre_top"].to_numpy(dtype=object),
            "split": tracks["set", "split"].to_numpy(dtype=object),
            "group": [f"artist{int(a)}" if pd.notna(a) else f"track{i}" for a, i in zip(artists, ids)],
        })


register_reader(Fma())
