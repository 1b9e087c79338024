"""The dataset catalog: every reader on a tiny copy of its dataset's real layout, the shared
manifest contract (columns, three splits, no group in two splits), detection, and the one-line
errors for wrong or partial layouts."""
import functools
import os
import shutil

import pandas as pd
import pytest

from soundsweep.catalog import MANIFEST_COLUMNS, detect_dataset, list_datasets, load_manifest, scene_hierarchy, synthetic
from soundsweep.errors import UsageError
from tests.helpers.catalog_fixtures import (
    DCASE_DEVICES,
    ESC50_CATEGORIES,
    FMA_GARBAGE,
    GTZAN_GENRES,
    WRITERS,
    write_dcase2020,
    write_esc50,
    write_fma,
    write_gtzan,
    write_gtzan_split,
    write_tone,
    write_urbansound8k,
)
from trainables.audio import AudioError, DecodeSpec, load_segments


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
    assert list_datasets() == ["fma", "gtzan", "esc50", "urbansound8k", "dcase2020", "shards", "folder", "csv"]


def test_fma_reads_the_two_row_header_subsets_splits_and_artist_groups(tmp_path):
    write_fma(str(tmp_path))
    small = load_manifest(str(tmp_path)).set_index("clip_id")
    assert sorted(small.index) == ["000002", "000003", "000005", "000010", "000134", "098565"]
    assert small.loc["000002", "path"] == str(tmp_path / "fma_small" / "000" / "000002.mp3")
    assert small.loc["000005", ["label", "split", "group"]].tolist() == ["Rock", "val", "artist2"]
    assert small.loc["000134", "group"] == "track000134"  # no artist id: the track is its own group
    assert small.loc["000002", "group"] == small.loc["000003", "group"] == "artist1"
    medium = load_manifest(str(tmp_path), subset="medium")
    assert set(medium["clip_id"]) == set(small.index) | {"001001", "001002"}  # medium holds small
    assert all("fma_medium" in p for p in medium["path"])
    check_contract(medium)


def test_fma_keeps_an_undecodable_mp3_that_decoding_then_rejects(tmp_path):
    write_fma(str(tmp_path))
    manifest = load_manifest(str(tmp_path)).set_index("clip_id")
    garbage = manifest.loc[f"{FMA_GARBAGE:06d}"]
    assert pd.isna(garbage["sample_rate"])
    spec = DecodeSpec(sample_rate=8000, segment_s=0.25)
    assert len(load_segments(manifest.loc["000002", "path"], spec)) >= 1  # a real mp3 decodes
    with pytest.raises(AudioError):
        load_segments(garbage["path"], spec)


def test_gtzan_stratified_contiguous_folds_and_test_fold_choice(tmp_path):
    write_gtzan(str(tmp_path))
    manifest = load_manifest(str(tmp_path))
    assert sorted(manifest["label"].unique()) == sorted(GTZAN_GENRES)
    assert (manifest.groupby(["fold", "label"]).size() == 1).all()  # 10 clips a genre: one per fold
    first = manifest.set_index("clip_id")
    assert first.loc["blues.00000", ["fold", "split"]].tolist() == [1, "test"]
    assert first.loc["blues.00001", ["fold", "split"]].tolist() == [2, "val"]
    moved = load_manifest(str(tmp_path), test_fold=10).set_index("clip_id")
    assert moved.loc["rock.00009", "split"] == "test" and moved.loc["rock.00000", "split"] == "val"


def test_gtzan_accepts_genres_original_au_files_and_the_genre_folder_itself(tmp_path):
    write_gtzan(str(tmp_path), folder="genres_original", extension="au")
    assert len(load_manifest(str(tmp_path))) == 30
    assert detect_dataset(str(tmp_path / "genres_original")) == "gtzan"
    check_contract(load_manifest(str(tmp_path / "genres_original"), folds=5))


def test_gtzan_split_files_replace_the_folds_and_drop_unlisted_clips(tmp_path):
    write_gtzan(str(tmp_path / "data"), extension="au")
    lists = {split: [f"{g}/{g}.{n:05d}.wav" for g in GTZAN_GENRES for n in numbers]
             for split, numbers in (("train", range(0, 5)), ("valid", (5, 6)), ("test", (7, 8)))}
    write_gtzan_split(str(tmp_path / "splits"), lists)
    manifest = load_manifest(str(tmp_path / "data"), split_dir=str(tmp_path / "splits")).set_index("clip_id")
    assert len(manifest) == 27 and "jazz.00009" not in manifest.index  # listed in no file: left out
    assert manifest.loc["jazz.00005", "split"] == "val" and manifest.loc["rock.00008", "split"] == "test"
    check_contract(manifest.reset_index())


def test_gtzan_split_files_naming_absent_clips_or_missing_a_split_are_errors(tmp_path):
    write_gtzan(str(tmp_path / "data"))
    write_gtzan_split(str(tmp_path / "s1"), {"train": ["blues/blues.00000.wav"], "valid": ["pop/pop.00003.wav"],
                                            "test": ["rock/rock.00001.wav"]})
    message = usage_error(lambda: load_manifest(str(tmp_path / "data"), split_dir=str(tmp_path / "s1")))
    assert "lists 1 clip(s) not found" in message and "pop/pop.00003" in message
    write_gtzan_split(str(tmp_path / "s2"), {"train": ["blues/blues.00000.wav"]})
    message = usage_error(lambda: load_manifest(str(tmp_path / "data"), split_dir=str(tmp_path / "s2")))
    assert "lacks a list for val, test" in message


def test_esc50_official_folds_and_source_file_groups(tmp_path):
    table = write_esc50(str(tmp_path))
    manifest = load_manifest(str(tmp_path))
    assert len(manifest) == len(table) == 30
    assert set(manifest.loc[manifest["fold"] == 1, "split"]) == {"test"}
    assert set(manifest.loc[manifest["fold"] == 2, "split"]) == {"val"}
    assert set(manifest.loc[manifest["fold"] > 2, "split"]) == {"train"}
    assert manifest.groupby("group").size().eq(2).all()  # takes A and B of one source file
    assert set(manifest["label"]) == {c for _, c, _ in ESC50_CATEGORIES}
    assert manifest.loc[manifest["label"] == "clock_alarm", "esc10"].eq(False).all()
    last = load_manifest(str(tmp_path), test_fold=5)
    assert set(last.loc[last["fold"] == 1, "split"]) == {"val"}  # val wraps around to fold 1


def test_urbansound8k_fold_folders_fsid_groups_and_default_test_fold(tmp_path):
    write_urbansound8k(str(tmp_path))
    manifest = load_manifest(str(tmp_path)).set_index("clip_id")
    assert manifest.loc["7101-1-0-0", "path"] == str(tmp_path / "audio" / "fold10" / "7101-1-0-0.wav")
    assert manifest.loc["7101-1-0-0", "split"] == "test" and manifest.loc["7011-1-0-0", "split"] == "val"
    assert manifest.loc["7031-1-1-0", ["group", "salience"]].tolist() == ["7031", 2]
    assert manifest.groupby("group").size().max() == 2
    check_contract(load_manifest(str(tmp_path), dataset="urbansound8k", test_fold=3))


def test_dcase2020_1a_devices_locations_and_val_by_whole_locations(tmp_path):
    table = write_dcase2020(str(tmp_path))
    manifest = load_manifest(str(tmp_path)).set_index("clip_id")
    assert "airport-lyon-99-0-s7" not in manifest.index  # in meta.csv, in no setup list
    assert len(manifest) == len(table) - 1
    assert set(manifest["device"]) == set(DCASE_DEVICES)
    assert manifest.loc["park-lyon-13-30-s1", ["device", "group", "label", "coarse_label"]].tolist() == [
        "s1", "lyon-13", "park", "outdoor"]
    assert set(manifest.loc[manifest["group"].str.endswith("5"), "split"]) == {"test"}
    val = manifest[manifest["split"] == "val"]
    assert val.groupby("label")["group"].nunique().eq(1).all()  # one of 5 train locations per scene
    assert val.groupby("group").size().eq(len(DCASE_DEVICES)).all()  # with every device's copy
    check_contract(manifest.reset_index())


def test_dcase2020_1b_three_classes_and_the_scene_hierarchy(tmp_path):
    write_dcase2020(str(tmp_path), task="1b")
    manifest = load_manifest(str(tmp_path), val_fraction=0.4)
    assert set(manifest["label"]) == {"indoor", "outdoor", "transportation"}
    assert (manifest["label"] == manifest["coarse_label"]).all()
    assert manifest[manifest["split"] == "val"].groupby("label")["group"].nunique().eq(2).all()
    hierarchy = scene_hierarchy()
    assert len(hierarchy) == 10 and set(hierarchy.values()) == {"indoor", "outdoor", "transportation"}
    assert hierarchy["metro_station"] == "indoor" and hierarchy["metro"] == "transportation"


def test_manifest_csv_and_forced_folder_reader(tmp_path):
    WRITERS["folder"](str(tmp_path / "data"))
    rows = [{"path": f"data/cat/cat{n}.flac", "label": "cat", "split": s, "group": f"g{n // 2}"}
            for n, s in enumerate(["train", "train", "val", "val", "test"])]
    rows.append({"path": "data/dog/dog0.flac", "label": "dog", "split": "train", "group": None})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    manifest = load_manifest(str(tmp_path / "manifest.csv"))
    assert manifest["path"].iloc[0] == str(tmp_path / "data" / "cat" / "cat0.flac")
    assert manifest["group"].tolist() == ["g0", "g0", "g1", "g1", "g2", "dog0"]  # a blank group: the clip
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


def drop(*relpaths):
    def mutate(root):
        for relpath in relpaths:
            path = os.path.join(root, relpath)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return mutate


def empty(relpath):
    def mutate(root):
        shutil.rmtree(os.path.join(root, relpath))
        os.makedirs(os.path.join(root, relpath))
    return mutate


def drop_column(relpath, column):
    def mutate(root):
        path = os.path.join(root, relpath)
        pd.read_csv(path).drop(columns=column).to_csv(path, index=False)
    return mutate


BAD_LAYOUTS = [  # writer, how it is broken, forced dataset, expected message
    (write_esc50, drop("meta"), None,
     "ESC-50 root {root} lacks meta/esc50.csv: point --data at the folder that holds meta/ and audio/"),
    (write_esc50, drop("audio"), None, "ESC-50 root {root} lacks audio/: point --data at the folder"),
    (write_esc50, empty("audio"), "esc50", "ESC-50 root {root} has an empty audio/: put the dataset's files there"),
    (write_esc50, drop_column("meta/esc50.csv", "src_file"), None,
     "ESC-50 table {root}/meta/esc50.csv lacks column(s) src_file: restore it from the dataset archive"),
    (write_urbansound8k, drop("metadata"), None, "UrbanSound8K root {root} lacks metadata/UrbanSound8K.csv:"),
    (write_urbansound8k, drop("audio/fold3"), None,
     "UrbanSound8K root {root} lacks audio/fold3/: point --data at the folder that holds metadata/ and audio/"),
    (write_fma, drop("fma_metadata"), None, "FMA root {root} lacks fma_metadata/tracks.csv: point --data at"),
    (write_fma, drop("fma_small", "fma_medium"), "fma", "FMA root {root} lacks fma_small/: point --data at"),
    (write_dcase2020, drop("meta.csv"), None, "DCASE2020 Task 1 root {root} lacks meta.csv: point --data at"),
    (write_dcase2020, drop("evaluation_setup/fold1_evaluate.csv"), None,
     "DCASE2020 Task 1 root {root} lacks evaluation_setup/fold1_evaluate.csv"),
    (write_dcase2020, drop("audio"), None, "DCASE2020 Task 1 root {root} lacks audio/"),
    (lambda root: None, None, "gtzan", "GTZAN root {root} lacks genres/ (or genres_original/): point --data at"),
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


def test_bad_dataset_names_options_and_paths(tmp_path):
    write_esc50(str(tmp_path))
    assert "unknown dataset 'esc-50'; pick one of fma" in usage_error(
        lambda: load_manifest(str(tmp_path), dataset="esc-50"))
    assert "dataset esc50 has no option(s) subset; its options: test_fold" in usage_error(
        lambda: load_manifest(str(tmp_path), subset="small"))
    assert "test fold 7 is not one of its folds 1..5" in usage_error(lambda: load_manifest(str(tmp_path), test_fold=7))
    assert "no such file or folder" in usage_error(lambda: load_manifest(str(tmp_path / "nope")))
    assert "dataset esc50 without --data" in usage_error(lambda: load_manifest(None, dataset="esc50"))
    assert "option(s) test_fold without --data" in usage_error(lambda: load_manifest(None, test_fold=2))


def test_a_stray_file_does_not_make_a_folder_a_dataset(tmp_path):
    write_tone(str(tmp_path / "loose.wav"))
    assert "not a known dataset layout" in usage_error(lambda: load_manifest(str(tmp_path)))
