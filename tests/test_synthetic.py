"""The embedded default: deterministic, real FLAC files, learnable but not trivial."""
import hashlib

import numpy as np
import soundfile

from benchmarks.synthetic_baseline import baseline
from soundsweep.catalog import synthetic


def test_same_seed_same_bytes_other_seed_other_audio(tmp_path):
    a = synthetic.generate(str(tmp_path / "a"), seed=5, clips_per_class=2, num_classes=3)
    b = synthetic.generate(str(tmp_path / "b"), seed=5, clips_per_class=2, num_classes=3)
    c = synthetic.generate(str(tmp_path / "c"), seed=6, clips_per_class=2, num_classes=3)
    digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()  # noqa: E731
    assert [digest(p) for p in a["path"]] == [digest(p) for p in b["path"]]
    assert [digest(p) for p in a["path"]] != [digest(p) for p in c["path"]]
    info = soundfile.info(a["path"][0])
    assert info.format == "FLAC" and info.samplerate == 22050 and info.duration == 13.0


def test_groups_never_straddle_splits(tmp_path):
    manifest = synthetic.generate(str(tmp_path), seed=0, clips_per_class=10, num_classes=2)
    assert (manifest.groupby("group")["split"].nunique() == 1).all()
    assert set(manifest["split"]) == {"train", "val", "test"}


def test_mfcc_svm_baseline_is_above_chance_and_well_under_perfect():
    result = baseline(clips_per_class=20, seed=1)
    assert result["chance"] + 0.2 < result["mfcc_svm_accuracy"] < 0.95
    assert np.isfinite(result["fold_accuracies"]).all()
