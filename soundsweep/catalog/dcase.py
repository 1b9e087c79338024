"""DCASE2020 Task 1 (TAU Urban Acoustic Scenes 2020 Mobile / 3Class), development set.

Layout under the root (all tables tab-separated, with a header row)::

    meta.csv                             filename, scene_label, identifier[, source_label]
    evaluation_setup/fold1_train.csv     filename, scene_label
    evaluation_setup/fold1_evaluate.csv  filename, scene_label
    audio/airport-barcelona-0-0-a.wav    <scene>-<city>-<location>-<segment>-<device>.wav

The label is ``scene_label`` (10 scenes for 1a, indoor/outdoor/transportation for 1b);
``coarse_label`` maps the scene named in the file name onto the 3 classes (see
:func:`scene_hierarchy`), and ``device`` (a, b, c, s1..s6) comes from the file name. ``group``
is the recording location (``identifier``, e.g. ``barcelona-0``): devices recorded the same
location at the same time, so one location must stay in one split. The official setup is
test (``fold1_evaluate``) and train (``fold1_train``); files in neither are left out. Val is
carved from train by whole locations: per scene, ``val_fraction`` of its locations, evenly
spaced in sorted order so cities spread over both sides; no draw, so val is the same in every
experiment.
"""
import os
import re

import pandas as pd

from soundsweep.catalog._reader import Reader, register_reader
from soundsweep.errors import UsageError

SCENES = {
    "airport": "indoor", "metro_station": "indoor", "shopping_mall": "indoor",
    "park": "outdoor", "public_square": "outdoor", "street_pedestrian": "outdoor", "street_traffic": "outdoor",
    "bus": "transportation", "metro": "transportation", "tram": "transportation",
}
SETUP = {"train": "evaluation_setup/fold1_train.csv", "test": "evaluation_setup/fold1_evaluate.csv"}


def scene_hierarchy() -> dict[str, str]:
    """The 10 DCASE2020 scenes mapped onto Task 1b's 3 classes (indoor, outdoor, transportation)."""
    return dict(SCENES)


def _evenly_spaced(items: list, fraction: float) -> list:
    """About ``fraction`` of ``items`` (at least one when there are two or more), evenly spaced."""
    count = 0 if len(items) < 2 else max(1, round(len(items) * fraction))
    return [items[(2 * j + 1) * len(items) // (2 * count)] for j in range(count)]


class Dcase2020(Reader):
    name = "dcase2020"
    title = "DCASE2020 Task 1"
    layout = "the development-set folder that holds meta.csv, evaluation_setup/ and audio/"
    markers = ("evaluation_setup",)
    audio_name = re.compile(r"^[a-z_]+-[a-z]+-\d+-\d+-[a-z0-9]+\.wav$")

    def read(self, root: str, val_fraction: float = 0.2) -> pd.DataFrame:
        """The official fold-1 setup with val carved from train (``val_fraction`` of locations)."""
        meta = self.read_table(root, "meta.csv", ("filename", "scene_label", "identifier"), sep="\t")
        split_of = {}
        for split, relpath in SETUP.items():
            listed = self.read_table(root, relpath, ("filename",), sep="\t")
            split_of.update(dict.fromkeys(listed["filename"], split))
        self.require(root, "audio", folder=True)
        meta = meta[meta["filename"].isin(split_of.keys())]
        stems = [os.path.splitext(os.path.basename(f))[0] for f in meta["filename"]]
        scenes = [stem.split("-", 1)[0] for stem in stems]
        unknown = sorted(set(scenes) - set(SCENES))
        if unknown:
            raise UsageError(f"DCASE2020 Task 1 root {root}: file names start with unknown scene(s) {unknown}; "
                             f"expected one of {', '.join(SCENES)}")
        manifest = pd.DataFrame({
            "clip_id": stems,
            "path": [os.path.join(root, f) for f in meta["filename"]],
            "label": meta["scene_label"].to_numpy(dtype=object),
            "split": meta["filename"].map(split_of).to_numpy(dtype=object),
            "group": meta["identifier"].to_numpy(dtype=object),
            "device": [stem.rsplit("-", 1)[1] for stem in stems],
            "coarse_label": [SCENES[scene] for scene in scenes],
        })
        train = manifest[manifest["split"] == "train"]
        val_groups = [g for _, scene in train.groupby("label")
                      for g in _evenly_spaced(sorted(scene["group"].unique()), val_fraction)]
        manifest.loc[manifest["group"].isin(val_groups), "split"] = "val"
        return manifest


register_reader(Dcase2020())
