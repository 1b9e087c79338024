"""Decode, channel policy, resample, segment and the Ray Data batch function, on real files."""
import numpy as np
import pytest
import soundfile

from trainables.audio import AudioError, DecodeSpec, decode_segments, load_segments, segment, set_channels


def write(path, seconds, rate=16000, channels=1, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    soundfile.write(str(path), np.stack([x] * channels, axis=1) if channels > 1 else x, rate)
    return str(path)


def test_segments_follow_window_and_overlap(tmp_path):
    spec = DecodeSpec(sample_rate=8000, segment_s=1.0, overlap=0.25)
    pieces = load_segments(write(tmp_path / "a.flac", 3.0, rate=16000), spec)
    # 3 s at hop 0.75 s: windows start at 0, 0.75, 1.5 (2.25 + 1 > 3 is dropped)
    assert len(pieces) == 3
    assert all(p.shape == (1, 8000) for p in pieces)
    assert pieces[1][0, 0] == pytest.approx(pieces[0][0, 6000], abs=1e-6)


def test_short_clip_is_padded_and_tiny_clip_rejected(tmp_path):
    spec = DecodeSpec(sample_rate=8000, segment_s=1.0)
    (piece,) = load_segments(write(tmp_path / "short.wav", 0.5, rate=8000), spec)
    assert piece.shape == (1, 8000) and np.all(piece[0, 4000:] == 0) and np.any(piece[0, :4000] != 0)
    with pytest.raises(AudioError, match="too short"):
        load_segments(write(tmp_path / "tiny.wav", 0.01, rate=8000), spec)


def test_channel_policy():
    stereo = np.stack([np.ones(10), -np.ones(10)]).astype(np.float32)
    assert np.allclose(set_channels(stereo, 1), 0)
    assert set_channels(np.ones((1, 10), np.float32), 2).shape == (2, 10)
    assert set_channels(np.ones((6, 10), np.float32), 2).shape == (2, 10)


def test_segment_exact_fit():
    spec = DecodeSpec(sample_rate=10, segment_s=1.0, overlap=0.5)
    assert len(segment(np.zeros((1, 20), np.float32), spec)) == 3


def test_decode_batch_lists_broken_files_instead_of_failing(tmp_path):
    good = write(tmp_path / "good.wav", 2.0, rate=8000)
    broken = tmp_path / "broken.wav"
    broken.write_text("this is not audio")
    spec = DecodeSpec(sample_rate=8000, segment_s=1.0, overlap=0.0)
    out = decode_segments({"path": [good, str(broken)], "clip_id": ["g", "b"], "label_index": [0, 1],
                           "split": ["train", "val"]}, spec)
    assert list(out["clip_id"]) == ["g", "g", "b"]
    assert list(out["split"]) == ["train", "train", "failed"]
    assert out["error"][2].startswith("cannot decode") and out["error"][0] == ""
    assert out["waveform"].shape == (3, 1, 8000) and out["waveform"].dtype == np.float32
