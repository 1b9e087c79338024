"""The dataset catalog: every reader on a tiny copy of its dataset's real layout, the shared
manifest contract (columns, three splits, no group in two splits), detection, and the one-line
errors for wrong or partial layouts."""
import functools
import os

import pandas as pd
import pytest

from catalog_fixtures import (
    WRITERS, write_tone,
)
from soundsweep.catalog import MANIFEST_COLUMNS, detect_dataset, list_datasets, load_manifest, synthetic
from soundsweep.errors import UsageError


def check_contract(manifest: pd.DataFrame) -> None:
    """What every reader's manifest promises the pipeline."""
    assert list(manifest.columns[: len(MANIFEST_COLUMNS)]) == MANIFEST_COLUMNS
    assert set(manifest["split"]) == {"train", "val", "test"}
    assert manifest["clip_id"].is_unique
    assert (manifest.groupby("group")["split"].nunique() == 1).all(), "a group straddles splits"
    assert all(os.path.isabs(p) for p in manifest["path"])


def usage_error(call) -> str:
    """The message of the UsageError ``call`` raises, checked to be one line."""
    with pytest.raises(UsageError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("dataset", list(WRITERS))
def test_every_reader_detects_its_layout_and_keeps_the_contract(tmp_path, dataset):
    WRITERS[dataset](str(tmp_path))
    assert detect_dataset(str(tmp_path)) == dataset
    manifest = load_manifest(str(tmp_path))
    check_contract(manifest)
    readable = manifest[manifest["sample_rate"].notna()]
    assert (readable["sample_rate"] == 8000).all() and (readable["channels"] == 1).all()


def test_registry_tries_named_datasets_before_generic_layouts():
    assert list_datasets() == ["folder", "csv"]


def test_manifest_csv_and_forced_folder_reader(tmp_path):
    WRITERS["folder"](str(tmp_path / "data"))
    rows = [{"path": f"data/cat/cat{n}.flac", "label": "cat", "split": s, "group": f"g{n // 2}"}
            for n, s in enumerate(["train", "train", "val", "val", "test"])]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    manifest = load_manifest(str(tmp_path / "manifest.csv"))
    assert manifest["path"].iloc[0] == str(tmp_path / "data" / "cat" / "cat0.flac")
    check_contract(manifest)
    straddling = pd.DataFrame(rows).assign(group="same")
    straddling.to_csv(tmp_path / "bad.csv", index=False)
    assert "group 'same' (and 0 more) spans several splits" in usage_error(
        lambda: load_manifest(str(tmp_path / "bad.csv")))


def test_synthetic_default_still_comes_with_no_data(tmp_path, monkeypatch):
    short = functools.partial(synthetic.generate, clip_seconds=0.5, sample_rate=8000)  # full clips take seconds
    monkeypatch.setattr(synthetic, "generate", short)
    monkeypatch.setenv("SOUNDSWEEP_CACHE", str(tmp_path))
    manifest = load_manifest(None, synthetic_clips=10)
    check_contract(manifest)
    assert len(manifest) == 60 and "device" in manifest


BAD_LAYOUTS = [  # writer, how it is broken, forced dataset, expected message
    (lambda root: None, None, None, "--data {root}: not a known dataset layout ("),
    (lambda root: None, None, "folder", "--data {root}: no audio files in class sub-folders"),
]


@pytest.mark.parametrize("write, mutate, dataset, expected", BAD_LAYOUTS,
                         ids=[e.split(":")[0].replace(" {root}", "") for *_, e in BAD_LAYOUTS])
def test_wrong_or_partial_layouts_give_one_line_errors(tmp_path, write, mutate, dataset, expected):
    write(str(tmp_path))
    if mutate:
        mutate(str(tmp_path))
    message = usage_error(lambda: load_manifest(str(tmp_path), dataset=dataset))
    assert message.startswith(expected.format(root=tmp_path))


def test_a_stray_file_does_not_make_a_folder_a_dataset(tmp_path):
    write_tone(str(tmp_path / "loose.wav"))
    assert "not a known dataset layout" in usage_error(lambda: load_manifest(str(tmp_path)))
