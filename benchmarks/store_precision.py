"""Segment store precision: error and bytes of float32, int16 + scale and float16 segments.

    python -m benchmarks.store_precision --out precision.json [--clips 24] [--real-root DIR] [--real-files 100]

Why: the segment store (``trainables/segments.py``) keeps 2 bytes a sample instead of float32's
4; this measures which 2 bytes lose less. Sets of segments, decoded as the pipeline decodes:

``synthetic``
    The embedded synthetic set (``--clips`` per class, 6 classes, 16-bit FLAC at 22.05 kHz),
    decoded with the default settings (22.05 kHz mono, 5 s windows, 25 % overlap): no resampling.
``real_16bit``, ``real_16bit_resampled``, ``real_24bit``
    Up to ``--real-files`` mono drum samples of Debian's Hydrogen kits (``--real-root``): 16-bit
    44.1 kHz files at their own rate and resampled to 22.05 kHz, and 24-bit 48 kHz files at their
    own rate; each is one 1 s segment (cut, or zero-padded as full-clip mode pads).

Per set and encoding (``float32``: store format 1; ``int16_scale``:
:func:`trainables.segments.quantize`; ``float16``): ``bit_exact_segments`` (fraction equal to
the float32 decode bit for bit), ``max_abs_error``, ``worst_error_db`` (the largest error of a
segment against that segment's peak, in dB, worst segment), ``snr_db`` (signal over error
energy, whole set; null when exact), and ``bytes_per_sample`` of the Parquet file,
snappy-compressed (the store's codec) and uncompressed, the waveform written as the store writes
it (one fixed-size binary value per segment, no dictionary; for ``float32``, format 1's float32
tensor column with Parquet's default dictionary encoding, which packs the at most 65,536 values
of 16-bit audio into about 2 bytes a sample on disk, though they take 4 in memory).
"""
import argparse
import glob
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile
from ray.data.extensions import ArrowTensorArray

from soundsweep.catalog import synthetic_default
from trainables.audio import DecodeSpec, decode, decode_segments, fit_length, resample
from trainables.segments import dequantize, quantize

SPEC = DecodeSpec()  # 22.05 kHz mono, 5 s windows, 25 % overlap
REAL = {"real_16bit": ("PCM_16", 44100, None), "real_16bit_resampled": ("PCM_16", 44100, 22050),
        "real_24bit": ("PCM_24", 48000, None)}


def synthetic(clips: int) -> np.ndarray:
    """The embedded set's segments, float32 ``(N, 1, samples)``."""
    manifest = synthetic_default(clips_per_class=clips)
    out = decode_segments({"path": manifest["path"].tolist(), "clip_id": manifest["clip_id"].tolist(),
                           "label_index": [0] * len(manifest), "split": manifest["split"].tolist()}, SPEC)
    assert not any(out["error"])
    return out["waveform"]


def real(root: str, subtype: str, rate: int, target: int | None, limit: int) -> np.ndarray:
    """One 1 s segment per mono ``subtype`` file at ``rate`` under ``root`` (sorted, at most ``limit``)."""
    paths = []
    for path in sorted(glob.glob(os.path.join(root, "*", "*"))):
        try:
            info = soundfile.info(path)
        except soundfile.LibsndfileError:
            continue
        if (info.subtype, info.samplerate, info.channels) == (subtype, rate, 1):
            paths.append(path)
    segments = []
    for path in paths[:limit]:
        x = decode(path)[0]
        if target:
            x = resample(x, rate, target)
        segments.append(fit_length(x, target or rate))
    return np.stack(segments)


def stored_bytes(column: pa.Array, compression: str) -> int:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"waveform": column}), buffer, compression=compression,
                   use_dictionary=isinstance(column, ArrowTensorArray))  # as each format writes it
    return len(buffer.getvalue())


def binary(values: np.ndarray) -> pa.Array:
    """One fixed-size binary value per segment, as the store writes its waveform."""
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(values[0].nbytes), len(values), [None, pa.py_buffer(values)])


def encodings(x: np.ndarray) -> dict[str, tuple[np.ndarray, pa.Array]]:
    """``{encoding: (x as read back in float32, the Parquet column written)}``."""
    samples, scale = quantize(x)
    half = x.astype(np.float16)
    return {"float32": (x, ArrowTensorArray.from_numpy(x)),
            "int16_scale": (dequantize(samples, scale), binary(samples)),
            "float16": (half.astype(np.float32), binary(half))}


def db(power_ratio: float) -> float | None:
    """``power_ratio`` in dB; None for 0 (no error: bit for bit)."""
    return float(10 * np.log10(power_ratio)) if power_ratio > 0 else None


def measure(x: np.ndarray) -> dict:
    peak = np.abs(x).max(axis=(1, 2))
    out = {"segments": len(x), "samples": int(x.size)}
    for name, (back, column) in encodings(x).items():
        error = np.abs(back.astype(np.float64) - x)
        worst = error.max(axis=(1, 2))
        audible = peak > 0
        out[name] = {
            "bit_exact_segments": float(np.mean(worst == 0)),
            "max_abs_error": float(worst.max()),
            "worst_error_db": db((worst[audible] / peak[audible]).max() ** 2),
            "snr_db": db(np.sum(x.astype(np.float64) ** 2) / noise) if (noise := np.sum(error**2)) else None,
            "bytes_per_sample": stored_bytes(column, "snappy") / x.size,
            "bytes_per_sample_uncompressed": stored_bytes(column, "none") / x.size,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--clips", type=int, default=24, help="synthetic clips per class (default %(default)s)")
    parser.add_argument("--real-root", default="/usr/share/hydrogen/data/drumkits",
                        help="folder of Hydrogen kits (default %(default)s; apt-get install hydrogen-drumkits)")
    parser.add_argument("--real-files", type=int, default=100, help="files per real set at most (default %(default)s)")
    args = parser.parse_args()
    sets = {"synthetic": synthetic(args.clips)}
    for name, (subtype, rate, target) in REAL.items():
        segments = real(args.real_root, subtype, rate, target, args.real_files)
        if len(segments):
            sets[name] = segments
    result = {name: measure(x) for name, x in sets.items()}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    for name, row in result.items():
        print(f"{name}: {row['segments']} segments")
        for encoding in ("float32", "int16_scale", "float16"):
            m = row[encoding]
            worst, snr = (f"{m[k]:.1f} dB" if m[k] is not None else "exact" for k in ("worst_error_db", "snr_db"))
            print(f"  {encoding:12s} exact {m['bit_exact_segments']:6.1%}  max error {m['max_abs_error']:.2e}  "
                  f"worst {worst} of peak  SNR {snr}  "
                  f"{m['bytes_per_sample']:.2f} B/sample ({m['bytes_per_sample_uncompressed']:.2f} uncompressed)")


if __name__ == "__main__":
    main()
