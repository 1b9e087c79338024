"""The segment store's bytes: int16 with a per-segment scale, lossless for 16-bit PCM, bounded
error for other audio, float32 again on the device side; older stores are decoded again."""
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
import torch
from ray.data.extensions import ArrowTensorArray

import trainables.data
from soundsweep.prepare import SUMMARY_FILE, prepare
from trainables.audio import DecodeSpec, decode, load_clip
from trainables.augment import AugmentConfig, Augmenter, AugmentingCollate, batch_waveform
from trainables.data import read_tasks
from trainables.segments import (
    PCM16_STEP,
    STORE_VERSION,
    decode_part,
    dequantize,
    footers,
    quantize,
    read_segment_files,
    segment_files,
    split_path,
)

RATE = 8000


def store_and_read(tmp_path, paths: list[str], spec: DecodeSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode ``paths`` into a store under ``tmp_path`` as ``prepare``'s tasks do (no Ray), read it
    back with pyarrow: ``(int16 samples, scales, float32 waveforms)`` in stored order."""
    part = {"part": 0, "shard": "", "shard_format": "", "path": paths, "clip_id": [f"c{i}" for i in range(len(paths))],
            "label_index": [0] * len(paths), "split": ["train"] * len(paths)}
    summary = decode_part(part, spec, str(tmp_path / "store"))
    assert all(row["error"] == "" for row in summary)
    files = segment_files(str(tmp_path / "store"), "train")
    assert pq.read_schema(files[0]).field("waveform").type == pa.binary(2 * spec.channels * spec.segment_samples)
    table = pa.concat_tables(read_segment_files({"path": files}))
    samples, scale = table.column("waveform").combine_chunks().to_numpy(), table.column("scale").to_numpy()
    assert samples.dtype == np.int16
    return samples, scale, dequantize(samples, scale)


def test_a_16_bit_wav_comes_back_bit_for_bit_at_half_the_bytes(tmp_path):
    rng = np.random.default_rng(0)
    pcm = rng.integers(-32768, 32768, (3 * RATE, 2), dtype=np.int16)
    pcm[:2] = [[-32768, 32767], [32767, -32768]]  # both ends of the range
    path = str(tmp_path / "pcm16.wav")
    soundfile.write(path, pcm, RATE, subtype="PCM_16")
    spec = DecodeSpec(sample_rate=RATE, channels=2, segment_s=1.0, overlap=0.0)
    samples, scale, waveforms = store_and_read(tmp_path, [path], spec)
    assert samples.shape == (3, 2, RATE) and np.all(scale == np.float32(PCM16_STEP))
    assert np.array_equal(samples.transpose(1, 0, 2).reshape(2, -1), pcm.T)  # the file's own integers
    assert np.array_equal(waveforms.transpose(1, 0, 2).reshape(2, -1), decode(path)[0])  # float32, bit for bit
    (_, footer), = footers(str(tmp_path / "store"), "train")
    segments, size = footer.num_rows, sum(footer.row_group(g).total_byte_size for g in range(footer.num_row_groups))
    assert segments == 3 and 2 * samples.size <= size < 2.1 * samples.size  # 2 bytes a sample, not float32's 4


def test_float_24_bit_and_resampled_audio_are_within_half_a_step_of_their_scale(tmp_path):
    t = np.arange(2 * RATE) / RATE
    x = (0.7 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.random.default_rng(1).standard_normal(len(t)))
    x[RATE:] *= 0.001  # a quiet second segment keeps its own resolution
    sources = {"float.wav": ("FLOAT", RATE), "pcm24.flac": ("PCM_24", RATE), "pcm16.flac": ("PCM_16", 11025)}
    for name, (subtype, rate) in sources.items():
        path = str(tmp_path / name)
        soundfile.write(path, x if rate == RATE else np.interp(np.arange(len(x) * rate // RATE) * RATE / rate,
                                                               np.arange(len(x)), x), rate, subtype=subtype)
        spec = DecodeSpec(sample_rate=RATE, segment_s=1.0, overlap=0.0)  # 11025 Hz is resampled to 8 kHz
        samples, scale, waveforms = store_and_read(tmp_path / name.split(".")[0], [path], spec)
        expected = np.stack(np.split(load_clip(path, spec), 2, axis=1))
        peak = np.abs(expected).max(axis=(1, 2))
        error = np.abs(waveforms - expected).max(axis=(1, 2))
        assert np.allclose(scale, peak / 32767, rtol=1e-6) and scale[1] < scale[0] / 20, name  # resampling rings into its start
        assert np.all(error <= scale * (0.5 + 2**-9)) and np.all(error > 0), (name, error / scale)
        assert np.abs(samples).max() == 32767  # the peak uses the whole range


def test_the_waveform_is_stored_uncompressed_and_a_snappy_store_reads_the_same(tmp_path):
    path = str(tmp_path / "clip.flac")
    soundfile.write(path, np.sin(np.arange(2 * RATE) * 0.05) * 0.5, RATE, subtype="PCM_16")
    samples, scale, _ = store_and_read(tmp_path, [path], DecodeSpec(sample_rate=RATE, segment_s=0.5, overlap=0.0))
    written = segment_files(str(tmp_path / "store"), "train")[0]
    chunks = pq.ParquetFile(written).metadata.row_group(0)
    codecs = {chunks.column(i).path_in_schema: chunks.column(i).compression for i in range(chunks.num_columns)}
    assert codecs["waveform"] == "UNCOMPRESSED" and codecs["clip_id"] == "SNAPPY"
    snappy = str(tmp_path / "snappy.parquet")  # format 2 as first written: every column snappy
    pq.write_table(pq.read_table(written), snappy, compression="snappy", use_dictionary=False)
    table = pa.concat_tables(read_segment_files({"path": [snappy]}))
    assert np.array_equal(table.column("waveform").combine_chunks().to_numpy(), samples)
    assert np.array_equal(table.column("scale").to_numpy(), scale)


def test_quantize_probes_the_grid_but_checks_every_sample():
    on_grid = np.float32(np.arange(-200, 200) * PCM16_STEP)[None, None]
    off_late = on_grid.copy()
    off_late[0, 0, -1] += np.float32(PCM16_STEP / 4)  # on the grid for far more than the probe
    samples, scale = quantize(np.concatenate([on_grid, off_late]))
    assert scale[0] == np.float32(PCM16_STEP) and samples[0, 0].tolist() == list(range(-200, 200))
    assert scale[1] == np.float32(abs(off_late).max() / 32767)


def test_quantize_keeps_silence_and_the_grid_and_scales_anything_else():
    segments = np.float32([[[0.5, -1.0, 32767 / 32768]], [[0.0, 0.0, 0.0]], [[1.5, -1.2, 0.3]]])
    samples, scale = quantize(segments)
    assert scale.tolist() == [PCM16_STEP, PCM16_STEP, np.float32(1.5 / 32767)]  # on the grid; zeros; past it
    assert samples[:, 0].tolist() == [[16384, -32768, 32767], [0, 0, 0], [32767, -26214, 6553]]


def test_collate_keeps_int16_for_the_device_and_augments_in_float32():
    samples, scale = quantize(np.random.default_rng(2).standard_normal((3, 1, 400)).astype(np.float32))
    batch = {"waveform": samples, "scale": scale, "label": np.array([0, 1, 0]), "clip_id": np.array(["a", "b", "c"]),
             "segment": np.array([0, 0, 1])}
    plain = AugmentingCollate(None, 0)(batch)
    assert plain["waveform"].dtype == torch.int16 and torch.equal(plain["scale"], torch.from_numpy(scale))
    as_float = batch_waveform(plain, "cpu")
    assert as_float.dtype == torch.float32 and np.array_equal(as_float.numpy(), dequantize(samples, scale))
    augmented = AugmentingCollate(Augmenter(AugmentConfig(gain_db=6.0), seed=0), 0)(batch)
    assert augmented["waveform"].dtype == torch.float32 and torch.equal(augmented["scale"], torch.ones(3))
    gains = torch.tensor([10 ** (a["gain"]["db"] / 20) for a in augmented["applied"]])
    assert torch.allclose(batch_waveform(augmented, "cpu"), as_float * gains[:, None, None])
    decoded = AugmentingCollate(None, 0)({**{k: v for k, v in batch.items() if k != "scale"}, "waveform": as_float.numpy()})
    assert torch.equal(batch_waveform(decoded, "cpu"), as_float)  # decoded rows (predict): float32, no scale


def old_store(root: str, float32: dict) -> None:
    """What SoundSweep wrote before format 2: float32 waveforms, no scale, no version in the summary."""
    folder = split_path(root, "train")
    os.makedirs(folder)
    pq.write_table(pa.table({"waveform": ArrowTensorArray.from_numpy(float32["waveform"]),
                             "clip_id": pa.array(float32["clip_id"]), "segment": pa.array(float32["segment"]),
                             "label": pa.array(float32["label"])}), f"{folder}/part-000000.parquet")


def test_a_store_of_an_older_format_is_decoded_again_with_one_line(ray_session, tmp_path, capsys):
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"clip{i}.flac"))
        soundfile.write(paths[-1], np.sin(np.arange(RATE) * (0.05 + 0.02 * i)) * 0.5, RATE, subtype="PCM_16")
    manifest = pd.DataFrame({"clip_id": ["c0", "c1"], "path": paths, "label": ["a", "b"], "split": ["train"] * 2,
                             "label_index": [0, 1]})
    spec, cache = DecodeSpec(sample_rate=RATE, segment_s=0.5, overlap=0.0), str(tmp_path / "cache")
    first = prepare(manifest, spec, cache)
    summary_path = os.path.join(os.path.dirname(first.path), SUMMARY_FILE)
    summary = json.load(open(summary_path))
    assert summary["store_version"] == STORE_VERSION

    stale = os.path.join(os.path.dirname(first.path), "old-attempt")
    old_store(stale, {"waveform": np.ones((4, 1, RATE // 2), np.float32), "clip_id": ["c0"] * 2 + ["c1"] * 2,
                      "segment": [0, 1, 0, 1], "label": [0, 0, 1, 1]})
    json.dump({k: v for k, v in {**summary, "path": stale}.items() if k != "store_version"}, open(summary_path, "w"))
    capsys.readouterr()
    rebuilt = prepare(manifest, spec, cache)
    lines = capsys.readouterr().out.splitlines()
    assert not rebuilt.cache_hit and rebuilt.path not in (stale, first.path) and rebuilt.segments == first.segments
    assert lines == [f"segment store {stale} has format version 1, this SoundSweep reads {STORE_VERSION}: decoding again"]
    assert json.load(open(summary_path))["store_version"] == STORE_VERSION
    with pytest.raises(ValueError, match="segment store format 1, this code reads 2: prepare the data again"):
        next(read_segment_files({"path": segment_files(stale, "train")}))  # never misread as int16
    again = prepare(manifest, spec, cache)
    assert again.cache_hit and again.path == rebuilt.path and capsys.readouterr().out == ""


def test_read_tasks_cut_the_files_by_bytes(tmp_path, monkeypatch):
    files = []
    for i in range(5):
        (tmp_path / f"part-{i}.parquet").write_bytes(b"x" * 100)
        files.append({"path": str(tmp_path / f"part-{i}.parquet")})
    monkeypatch.setattr(trainables.data, "READ_TASK_BYTES", 250)
    assert read_tasks(files) == 2  # 500 bytes
    monkeypatch.setattr(trainables.data, "READ_TASK_BYTES", 1)
    assert read_tasks(files) == 5  # never more tasks than files
    monkeypatch.setattr(trainables.data, "READ_TASK_BYTES", 10**9)
    assert read_tasks(files) == 1 and read_tasks([]) == 1
