"""The drum-kit benchmark builder (benchmarks/drumkits.py) on a tiny fake Hydrogen kit tree:
class rules, duplicates and thin classes left out, whole kits per split, a manifest the
project's reader loads, and identical output on every run. Needs no Debian package."""
import os

import numpy as np
import pandas as pd
import pytest
import soundfile

from benchmarks.drumkits import baseline, build, instrument_class, main
from soundsweep.catalog import load_manifest

NAMESPACE = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://www.hydrogen-music.org/drumkit"'
# kit -> (namespaced, old format without <layer>, [(instrument name, [sample files])])
KITS = {
    "Alpha Kit 1.0": (True, False, [("Kick", ["kick-soft.wav", "kick-hard.wav"]), ("Snare Rimshot", ["rim.wav"]),
                                    ("Closed HH", ["hh.wav"]), ("Cowbell", ["cowbell.wav"]), ("Zap 1", ["zap.wav"]),
                                    ("", [])]),
    "Beta": (False, True, [("c3 - bass drum 1", ["bd.flac"]), ("e3 - snare 2", ["sn.flac"]),
                           ("a#3 - hi-hat open", ["oh.flac"]), ("Whistle", ["whistle.flac"])]),
    "Gamma": (True, False, [("VariBreaks Kick 1", ["k1.wav", "k1-copy.wav"]), ("Snare", ["s1.wav"]),
                            ("Sabian Hat Closed", ["h1.wav"])]),
}
COPIES = {"k1-copy.wav": "k1.wav"}  # a velocity layer that only changes the gain


def instrument_xml(index: int, name: str, files: list[str], old_format: bool) -> str:
    """One <instrument> as Hydrogen writes it (a subset of its fields)."""
    if old_format:
        samples = "".join(f"<filename>{f}</filename>" for f in files)
    else:
        samples = "".join(f"<layer><filename>{f}</filename><min>0</min><max>1</max><gain>1</gain><pitch>0</pitch>"
                          "</layer>" for f in files)
    return (f"<instrument><id>{index}</id><name>{name}</name><volume>1</volume><isMuted>false</isMuted>"
            f"<pan_L>1</pan_L><pan_R>1</pan_R>{samples}</instrument>")


def write_kits(root: str) -> None:
    """Each kit of ``KITS``: a drumkit.xml and its samples (decaying noise, 0.2 s, stereo WAV or
    mono FLAC at 22.05 kHz), every sample different except the ``COPIES``."""
    for k, (kit, (namespaced, old_format, instruments)) in enumerate(KITS.items()):
        kit_dir = os.path.join(root, kit)
        os.makedirs(kit_dir)
        body = "".join(instrument_xml(i, name, files, old_format) for i, (name, files) in enumerate(instruments))
        with open(os.path.join(kit_dir, "drumkit.xml"), "w") as f:
            f.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<drumkit_info{" " + NAMESPACE if namespaced else ""}>'
                    f"<name>{kit}</name><author>tests</author><license>CC0</license>"
                    f"<instrumentList>{body}</instrumentList></drumkit_info>\n")
        sounds = {}
        for i, (_, files) in enumerate(instruments):
            for j, file in enumerate(files):
                channels = 2 if file.endswith(".wav") else 1
                noise = np.random.default_rng(100 * k + 10 * i + j).standard_normal((4410, channels))
                noise *= np.exp(-np.arange(4410) / 800)[:, None]
                sounds[file] = 0.4 * noise if file not in COPIES else 0.5 * sounds[COPIES[file]]
                soundfile.write(os.path.join(kit_dir, file), sounds[file].astype(np.float32), 22050)


@pytest.fixture
def kits(tmp_path) -> str:
    root = str(tmp_path / "drumkits")
    write_kits(root)
    return root


@pytest.mark.parametrize("name, label", [
    ("Kick (Tama Superstar 22\")", "kick"), ("BassDrum", "kick"), ("c3 - bass drum 1", "kick"),
    ("Snare Rimshot (Pearl Free Floating Maple 14x3.5)", "snare"), ("Snare Roll", "snare"),
    ("Hi Hat Closed", "hihat"), ("Hi-Hat Pedal (Paiste Alpha Metal edge 14\")", "hihat"), ("Closed HH 1", "hihat"),
    ("Side OHH", "hihat"), ("Sabian Hat Swish", "hihat"), ("Floor Tom", "tom"), ("tomhi2", "tom"),
    ("Crash/Ride Bell (Paiste Rude Crash/Ride 18\")", "cymbal"), ("ride-cup", "cymbal"),
    ("China (Paiste Alpha 18\")", "cymbal"), ("Zildjian Splash Choke", "cymbal"), ("Hand Clap", "clap"),
    ("Pearl Side Stick", "rim"), ("Rim Click", "rim"),
    ("Agogo Low (Pearl ECB-23)", "cowbell"), ("Djembe1 Bass", None), ("Whistle", None), ("Zap 1", None), ("17", None),
])
def test_instrument_names_map_to_classes(name, label):
    assert instrument_class(name) == label


def test_build_splits_whole_kits_and_the_project_reader_loads_it(kits, tmp_path):
    out = str(tmp_path / "set")
    summary = build(kits, out, clip_seconds=0.5, min_clips=1)
    manifest = pd.read_csv(os.path.join(out, "manifest.csv"))
    assert list(manifest.columns) == ["path", "label", "split", "group"]
    assert set(manifest["label"]) == {"kick", "snare", "hihat"}
    assert (manifest.groupby("group")["split"].nunique() == 1).all()
    assert sorted(manifest.groupby("group")["split"].first()) == ["test", "train", "val"]
    assert summary["thin_classes_dropped"] == {"cowbell": 1}
    assert summary["unmatched_instruments"] == {"Alpha Kit 1.0": ["Zap 1"], "Beta": ["Whistle"]}
    assert summary["duplicate_samples"] == ["Gamma/k1-copy.wav"]
    assert len(manifest) == summary["clips"] == 10
    loaded = load_manifest(os.path.join(out, "manifest.csv"))
    assert set(loaded["split"]) == {"train", "val", "test"}
    assert all(os.path.isfile(p) for p in loaded["path"])
    assert (loaded["sample_rate"] == 16000).all() and np.allclose(loaded["duration_s"], 0.5)
    assert soundfile.info(loaded["path"][0]).subtype == "PCM_16"
    result = baseline(os.path.join(out, "manifest.csv"))
    assert result["classes"] == 3
    per_c = {float(c): accuracy for c, accuracy in result["val_accuracy_per_C"].items()}
    best = max(per_c.values())  # C chosen on val: the best accuracy, the smallest C among ties
    assert result["C"] == min(c for c, accuracy in per_c.items() if accuracy == best) and result["val_accuracy"] == best
    test_clips = int((manifest["split"] == "test").sum())  # accuracies count whole test clips
    for name in ("test_accuracy", "test_majority_share"):
        assert result[name] * test_clips == pytest.approx(round(result[name] * test_clips)), name


def test_every_build_writes_the_same_bytes(kits, tmp_path):
    first = build(kits, str(tmp_path / "a"), clip_seconds=0.5, min_clips=1)
    again = build(kits, str(tmp_path / "b"), clip_seconds=0.5, min_clips=1)
    rebuilt = build(kits, str(tmp_path / "a"), clip_seconds=0.5, min_clips=1)
    assert first == again == rebuilt
    with open(tmp_path / "a" / "manifest.csv", "rb") as a, open(tmp_path / "b" / "manifest.csv", "rb") as b:
        assert a.read() == b.read()


def test_without_kits_it_exits_2_naming_the_package(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--out", str(tmp_path / "set"), "--root", str(tmp_path / "absent")])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "apt-get install hydrogen-drumkits" in error
