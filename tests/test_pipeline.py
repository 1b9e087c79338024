"""The data pipeline: input policies, decode-once cache, shards, augmentation records."""
import json
import os
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import ray
import soundfile
import torch

import trainables.data
import trainables.loop
from soundsweep.catalog import load_manifest
from soundsweep.cli import main
from soundsweep.experiment import ExperimentConfig
from soundsweep.prepare import cache_key, prepare
from trainables.audio import DecodeSpec, decode, decode_segments
from trainables.augment import AugmentConfig, Augmenter, AugmentingCollate, batch_waveform, record_path, replay
from trainables.config import TrialConfig
from trainables.data import EpochBatches, device_cache_budget, epoch_data_line
from trainables.loop import TuneSession, run
from trainables.segments import SegmentWriter, dequantize, read_segment_files, segment_files
from trainables.shards import iter_shard

RATE = 8000
SPEC = DecodeSpec(sample_rate=RATE, segment_s=0.5, overlap=0.0)


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


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """Nine 1.3 s clips (FLAC, MP3, WAV; 16 and 22.05 kHz; one stereo) and their manifest CSV."""
    root = tmp_path_factory.mktemp("corpus")
    splits = ["train"] * 5 + ["val"] * 2 + ["test"] * 2
    rows = [{"path": tone(root / f"clip{i}.{('flac', 'mp3', 'wav')[i % 3]}", 1.3, rate=(22050, 16000)[i % 2],
                          channels=2 if i == 1 else 1, freq=200.0 + 60 * i),
             "label": "ab"[i % 2], "split": split} for i, split in enumerate(splits)]
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return str(root / "manifest.csv")


@pytest.fixture(scope="module")
def prepared(ray_session, corpus, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("segments"))
    return prepare(load_manifest(corpus), SPEC, cache), cache


def stored_segments(data_dir: str, splits: tuple[str, ...] = ("train", "val", "test")) -> dict:
    """``{(split, clip_id, segment): float32 waveform}`` of a segment store's ``splits``, read without Ray."""
    out = {}
    for split in splits:
        table = pa.concat_tables(read_segment_files({"path": segment_files(data_dir, split)}))
        waveforms = dequantize(table.column("waveform").combine_chunks().to_numpy(), table.column("scale").to_numpy())
        for clip_id, seg, waveform in zip(table.column("clip_id").to_pylist(), table.column("segment").to_pylist(),
                                          waveforms):
            out[(split, clip_id, seg)] = waveform
    return out


def test_second_prepare_is_a_cache_hit_that_reads_nothing(corpus, prepared, monkeypatch):
    first, cache = prepared
    assert not first.cache_hit and first.failures == []
    assert first.clips == {"train": 5, "val": 2, "test": 2} and first.segments == {"train": 10, "val": 4, "test": 4}
    assert all(w.shape == (1, 4000) for w in stored_segments(first.path).values())

    def no_reading(*args, **kwargs):
        raise AssertionError("a cache hit must not start any Ray Data work")
    monkeypatch.setattr(ray.data, "from_items", no_reading)
    monkeypatch.setattr(soundfile, "read", no_reading)
    again = prepare(load_manifest(corpus), SPEC, cache)
    assert again.cache_hit and again.path == first.path and again.segments == first.segments


def test_changed_decode_parameter_or_touched_file_is_a_miss(corpus, prepared):
    manifest, key = load_manifest(corpus), os.path.basename(os.path.dirname(prepared[0].path))  # <key>/<attempt>
    assert cache_key(manifest, SPEC) == key
    for changed in (replace(SPEC, sample_rate=16000), replace(SPEC, channels=2), replace(SPEC, full_clip=True),
                    replace(SPEC, pad_seed=1), replace(SPEC, overlap=0.5)):
        assert cache_key(manifest, changed) != key
    path = manifest.loc[3, "path"]
    stat = os.stat(path)
    try:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert cache_key(manifest, SPEC) != key
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("fmt", ["parquet", "tar"])
def test_shards_round_trip_and_decode_the_same_segments_as_loose_files(corpus, prepared, fmt, tmp_path):
    manifest = load_manifest(corpus)
    out = tmp_path / "shards"
    location = f"file://{out}" if fmt == "tar" else str(out)  # a URI goes through pyarrow.fs too
    assert main(["shard", "--data", corpus, "--out", location, "--shard-size-mb", "0.05", "--format", fmt]) == 0
    summary = json.loads((out / "shards.json").read_text())
    assert summary["format"] == fmt and summary["clips"] == 9 and len(summary["shards"]) > 1

    sharded = load_manifest(location)
    columns = ["clip_id", "label", "split", "label_index"]
    pd.testing.assert_frame_equal(sharded[columns], manifest[columns])
    packed = {clip_id: audio for shard in sharded["path"].unique() for clip_id, audio in iter_shard(shard, fmt)}
    assert packed == {c: open(p, "rb").read() for c, p in zip(manifest["clip_id"], manifest["path"])}

    loose, cache = prepared
    from_shards = prepare(sharded, SPEC, cache)
    assert not from_shards.cache_hit and from_shards.segments == loose.segments and from_shards.failures == []
    expected, got = stored_segments(loose.path), stored_segments(from_shards.path)
    assert got.keys() == expected.keys()
    assert all(np.array_equal(got[k], expected[k]) for k in expected)  # bit-identical waveforms


@pytest.mark.parametrize("argv, words", [
    (["--shard-size-mb", "0"], ["--shard-size-mb 0.0: must be > 0"]),
    (["--format", "zip"], ["--format", "invalid choice: 'zip'"]),
])
def test_bad_shard_flags_are_one_line_errors(corpus, tmp_path, capsys, argv, words):
    assert main(["shard", "--data", corpus, "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(word in err for word in words)


class LocalSession(TuneSession):
    """The loop's Tune session without Tune: no checkpoint to resume, reports collected."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.reports = []

    def checkpoint(self):
        return None

    def report(self, metrics, checkpoint):
        self.reports.append(metrics)


def test_recorded_augmentation_replays_the_exact_model_input(prepared, tmp_path, monkeypatch):
    data, _ = prepared
    seen = []  # (frontend input, model input) of every call, training batches first

    def capturing_build(cfg):
        model, frontend = build(cfg)
        frontend.register_forward_pre_hook(lambda module, args: seen.append([args[0].clone()]))
        model.register_forward_pre_hook(lambda module, args: seen[-1].append(args[0].clone()))
        return model, frontend
    build = trainables.loop.build
    monkeypatch.setattr(trainables.loop, "build", capturing_build)
    cfg = TrialConfig.from_dict({
        "arch": "resnet2d", "width": 16, "batch_size": 4, "noise_std": 0.02, "gain_db": 12.0, "specaug_p": 1.0,
        "runtime": {"data_dir": data.path, "num_classes": 2, "in_channels": 1, "sample_rate": RATE, "max_epochs": 1,
                    "record_augmentation": True, "trial_dir": str(tmp_path)},
    })
    session = LocalSession(cfg)
    run(cfg, session)
    assert session.reports[0]["train_segments"] == 10

    lines = [json.loads(line) for line in open(record_path(str(tmp_path), 0, 0))]
    assert len(lines) == 10 and {line["batch"] for line in lines} == {0, 1, 2}
    source = {f"{c}#{s}": torch.from_numpy(w) for (_, c, s), w in stored_segments(data.path).items()}
    model, frontend = build(cfg)
    for batch in range(3):
        records = [line for line in lines if line["batch"] == batch]
        waveforms = torch.stack([replay(source[r["key"]], r["waveform"]) for r in records])
        spectrograms = torch.stack([replay(s, r["spectrogram"]) for s, r in zip(frontend(waveforms), records)])
        assert all(r["waveform"].keys() == {"gain", "gaussian_noise"} and r["spectrogram"] for r in records)
        assert torch.equal(waveforms, seen[batch][0]) and torch.equal(spectrograms, seen[batch][1])


def train_segments(data_dir: str) -> dict:
    """``{(clip_id, segment): float32 waveform}`` of the store's train split."""
    return {(c, s): w for (_, c, s), w in stored_segments(data_dir, ("train",)).items()}


def epoch_batches(batches: EpochBatches, seed: int | None, train: dict, batch_size: int = 4) -> list[list[str]]:
    """The keys of each batch of one epoch, checking every batch against the stored segments."""
    keys = []
    for batch in batches(batch_size, None, seed):
        assert batch["waveform"].shape[0] == len(batch["keys"]) <= batch_size
        assert batch["waveform"].dtype == torch.int16  # no augmenter: stored int16 until the device
        for key, waveform in zip(batch["keys"], batch_waveform(batch, "cpu")):
            clip_id, segment = key.rsplit("#", 1)
            assert np.array_equal(waveform.numpy(), train[(clip_id, int(segment))])  # the stored segment
        keys.append(batch["keys"])
    return keys


def epoch(batches: EpochBatches, seed: int | None, train: dict) -> list[str]:
    """The keys of one epoch, in order."""
    return [key for keys in epoch_batches(batches, seed, train) for key in keys]


def test_a_small_split_is_read_once_and_reshuffled_each_epoch(prepared, monkeypatch):
    data, _ = prepared
    train = train_segments(data.path)
    kept = EpochBatches(data.path, "train")
    assert kept.in_memory and kept.bytes_per_worker > 0

    first = epoch(kept, 1, train)
    assert sorted(first) == sorted(f"{c}#{s}" for c, s in train) and len(set(first)) == len(first)

    def no_reading(piece):
        raise AssertionError("a kept split is read once")
    monkeypatch.setattr(trainables.data, "read_piece", no_reading)
    assert epoch(kept, 1, train) == first and epoch(kept, 2, train) != first  # an epoch's order is its seed's alone
    assert epoch(kept, None, train) == [f"{c}#{s}" for c, s in train]  # no seed: the stored order


@pytest.fixture
def grouped_store(tmp_path) -> str:
    """A store whose train split is 3 files of 3 row groups of 2, 5 and 3 segments (30 in all),
    written without Ray."""
    rng = np.random.default_rng(0)
    data_dir = str(tmp_path / "store")
    for part in range(3):
        with SegmentWriter(data_dir, part) as writer:
            for group, rows in enumerate((2, 5, 3)):
                pcm = rng.integers(-2**15, 2**15, (rows, 1, 400))  # on the 16-bit grid: stored exactly
                writer.write({"waveform": (pcm / 2**15).astype(np.float32), "split": np.array(["train"] * rows),
                              "clip_id": np.array([f"p{part}g{group}c{i}" for i in range(rows)]),
                              "segment": np.zeros(rows, np.int64), "label": np.arange(rows)})
    return data_dir


def test_a_streamed_split_is_read_in_its_seeds_order_without_ray_data(grouped_store, monkeypatch):
    """Every epoch reads the store again, in the trial's process: each segment once, in an order
    that its seed alone decides (a resumed trial's epoch is the same), another order each epoch."""
    train = train_segments(grouped_store)
    monkeypatch.setattr(trainables.data, "SHUFFLE_BYTES", 5000)  # windows of about 6 segments: several per epoch

    def no_ray_data(*args, **kwargs):
        raise AssertionError("a streamed epoch is read without Ray Data")
    monkeypatch.setattr(ray.data, "from_items", no_ray_data)
    streamed = EpochBatches(grouped_store, "train", host_budget=0)  # too large to keep
    assert streamed.where == "stream" and not streamed.in_memory and len(streamed.pieces) == 9
    first = epoch_batches(streamed, 1, train)
    keys = [key for batch in first for key in batch]
    assert sorted(keys) == sorted(f"{c}#{s}" for c, s in train) and len(set(keys)) == len(keys) == 30
    assert [len(batch) for batch in first] == [4] * 7 + [2]  # whole batches across windows, the rest last
    assert epoch_batches(EpochBatches(grouped_store, "train", host_budget=0), 1, train) == first  # resumed: the same
    again = epoch(streamed, 2, train)
    assert again != keys and sorted(again) == sorted(keys)
    assert epoch(streamed, None, train) == [f"{c}#{s}" for c, s in train]  # no seed: the stored order
    assert next(iter(streamed(4, None, 1)))["keys"] == first[0]  # stopping early leaves nothing behind


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_workers_read_disjoint_shares_of_equal_size(grouped_store, workers):
    """A DDP trial's workers step as many batches (none waits in an all-reduce for another that ran
    out), read disjoint rows, and each reads the same rows streamed or kept."""
    train = train_segments(grouped_store)
    shares = []
    for rank in range(workers):
        streamed = EpochBatches(grouped_store, "train", rank, workers, host_budget=0)
        kept = EpochBatches(grouped_store, "train", rank, workers)
        assert streamed.segments_per_worker == kept.segments_per_worker == len(train) // workers
        batches = epoch_batches(streamed, rank, train)
        shares.append(sorted(key for batch in batches for key in batch))
        assert len(batches) == -(-(len(train) // workers) // 4)
        assert sorted(epoch(kept, rank, train)) == shares[-1]
    everything = [key for share in shares for key in share]
    assert len(set(everything)) == len(everything) == workers * (len(train) // workers)


def test_workers_shares_mix_the_stored_order(grouped_store):
    """A store written class by class (here: each file one "class") does not give each worker its
    own classes: the shares run through the row groups in a drawn order. One worker keeps the
    stored order."""
    train = train_segments(grouped_store)
    files_seen = []
    for rank in range(3):  # consecutive stored rows would give each worker exactly one file
        keys = epoch(EpochBatches(grouped_store, "train", rank, 3), None, train)
        files_seen.append({key.split("g")[0] for key in keys})
    assert all(len(files) >= 2 for files in files_seen), files_seen
    assert epoch(EpochBatches(grouped_store, "train", 0, 1), None, train) == [f"{c}#{s}" for c, s in train]


def test_the_device_cache_gives_the_in_memory_batches(prepared):
    """The device path, here on a CPU "device", keeps the split as tensors and gives exactly the
    host-memory path's batches: the same order for the same seed, the same augmentation."""
    data, _ = prepared
    cpu = torch.device("cpu")
    memory = EpochBatches(data.path, "train", device=cpu, device_budget=0)
    cached = EpochBatches(data.path, "train", device=cpu, device_budget=2**40)
    assert (memory.where, cached.where) == ("memory", "device") and memory.in_memory and cached.in_memory
    assert device_cache_budget(cpu, 1.0) == 0  # a CPU trial never takes the device path by itself
    augmenter = Augmenter(AugmentConfig(noise_std=0.02, gain_db=12.0, eq_db=6.0, reverb_p=0.5, mix_same_class_p=0.5),
                          seed=3, sample_rate=RATE, channels=1)
    for epoch, seed in enumerate((1, 2, None)):
        collate = AugmentingCollate(augmenter, epoch)
        pairs = list(zip(memory(4, collate, seed), cached(4, collate, seed), strict=True))
        assert len(pairs) == 3
        for expected, got in pairs:
            assert got["keys"] == expected["keys"] and got["applied"] == expected["applied"]
            assert torch.equal(got["waveform"], expected["waveform"]) and torch.equal(got["label"], expected["label"])
    assert set(cached.tensors) == {"waveform", "scale", "label"} and set(cached.rows) == {"clip_id", "segment"}
    assert cached.tensors["waveform"].dtype == torch.int16  # the store's 16 bits: half the device memory of float32
    assert cached.tensors["waveform"].shape[0] == cached.segments_per_worker == 10
    line = epoch_data_line([cached, memory], cpu, 0.5, 0)
    assert line.startswith("epoch data: train ") and "MB per worker on cpu" in line and "in host memory" in line
    assert line.endswith("no device cache on cpu")
    too_small = EpochBatches(data.path, "train", device=torch.device("cuda"), device_budget=1)  # no GPU needed
    assert too_small.where == "memory" and too_small.device_bytes == 0
    assert "too large for it: train" in epoch_data_line([too_small], torch.device("cuda"), 0.5, 1)
