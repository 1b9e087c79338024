"""The data pipeline: input policies, decode-once cache, shards, augmentation records."""
import numpy as np
import soundfile

from soundsweep.tuner import ExperimentConfig
from trainables.audio import DecodeSpec, decode, decode_segments

RATE = 8000


def tone(path, seconds, rate=RATE, channels=1, freq=440.0):
    """A clip with no zero sample (so padding is recognisable), written with soundfile."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 + 0.25 * np.sin(2 * np.pi * freq * t)
    soundfile.write(str(path), np.stack([x] * channels, axis=1) if channels > 1 else x, rate)
    return str(path)


def rows(paths, split="train"):
    return {"path": paths, "clip_id": [f"c{i}" for i in range(len(paths))], "label_index": list(range(len(paths))),
            "split": [split] * len(paths)}


def zero_block(waveform):
    """(start, length) of the zeros in a mono segment, checking they are one contiguous block."""
    (zeros,) = np.nonzero(waveform[0] == 0)
    assert len(zeros) == 0 or np.all(np.diff(zeros) == 1)
    return (int(zeros[0]) if len(zeros) else None), len(zeros)


def test_full_clip_mode_gives_one_cut_or_padded_segment_per_clip(tmp_path):
    paths = [tone(tmp_path / f"{i}.flac", s) for i, s in enumerate((0.5, 1.0, 2.5))]
    out = decode_segments(rows(paths, "val"), DecodeSpec(sample_rate=RATE, segment_s=1.0, full_clip=True))
    assert out["waveform"].shape == (3, 1, RATE)
    assert list(out["clip_id"]) == ["c0", "c1", "c2"] and list(out["segment"]) == [0, 0, 0]
    assert zero_block(out["waveform"][0]) == (RATE // 2, RATE // 2)  # evaluation: padded at the end
    assert np.array_equal(out["waveform"][2], decode(paths[2])[0][:, :RATE])  # cut: the clip's start
    stereo = decode_segments(rows(paths[:1], "val"), DecodeSpec(sample_rate=16000, channels=2, segment_s=1.0,
                                                                 full_clip=True))
    assert stereo["waveform"].shape == (1, 2, 16000)


def test_training_padding_is_one_block_at_a_seeded_random_position(tmp_path):
    paths = [tone(tmp_path / f"{i}.wav", 0.5) for i in range(6)]
    spec = DecodeSpec(sample_rate=RATE, segment_s=1.0, full_clip=True, pad_seed=3)
    first, again = decode_segments(rows(paths), spec), decode_segments(rows(paths), spec)
    other = decode_segments(rows(paths), DecodeSpec(sample_rate=RATE, segment_s=1.0, full_clip=True, pad_seed=4))
    starts = [zero_block(w)[0] for w in first["waveform"]]
    assert all(zero_block(w)[1] == RATE // 2 for w in first["waveform"])
    assert np.array_equal(first["waveform"], again["waveform"])  # same seed, same placement
    assert starts != [zero_block(w)[0] for w in other["waveform"]]
    assert len(set(starts)) > 1  # drawn per clip, not one position for all
    clip = decode(paths[0])[0][0]
    assert np.array_equal(first["waveform"][0][0][first["waveform"][0][0] != 0], clip)  # samples keep their order
    val = decode_segments(rows(paths, "val"), spec)
    assert all(zero_block(w) == (RATE // 2, RATE // 2) for w in val["waveform"])


def test_segment_mode_flag_sets_the_decode_spec():
    full = ExperimentConfig(segment_mode="full", segment_seconds=30.0, seed=5).decode_spec()
    assert full.full_clip and full.pad_seed == 5 and full.segment_samples == 30 * 22050
    window = ExperimentConfig(seed=5).decode_spec()
    assert not window.full_clip and window.pad_seed is None
