"""A real-recordings benchmark set: drum-kit samples from Debian's Hydrogen kits, split by kit.

    apt-get install hydrogen-drumkits
    python -m benchmarks.drumkits --out /tmp/drumkits [--baseline]
    soundsweep tune --data /tmp/drumkits/manifest.csv --sample-rate 16000 --segment-seconds 2

Why: the embedded synthetic set says whether training works, not how a model fares on real
recordings. Debian ships drum kits for Hydrogen (``/usr/share/hydrogen/data/drumkits/<Kit>/``,
each with a ``drumkit.xml`` naming its instruments and their sample files, often several
velocity layers each), so the set is built offline and is the same on every machine.

Steps. Each instrument name gets a class by keyword (``CLASS_RULES``); instruments matching no
rule are dropped and counted. Each sample is decoded with soundfile, mixed to mono, resampled to
16 kHz with soxr and cut (with a 20 ms fade-out) or zero-padded to ``--clip-seconds``. The 2 s
default holds the whole hit of nearly every kick, snare, tom and rim sample and the attack and
first decay of ringing cymbals and open hi-hats; it is one window with ``--segment-seconds 2``
and never falls under the pipeline's minimum clip length (raw hits of 0.1-0.5 s would, with the
default 5 s windows). Zero-padding rather than looping keeps a single hit and its natural decay.
A sample whose waveform repeats an earlier one (a velocity layer that only changes the gain, or
a recording shipped in two kits) is dropped, so no sound reaches two splits; so is a class with
fewer than ``--min-clips`` clips or fewer kits than splits. Whole kits go to train, val or test
(``group`` = kit), so the test kits are unseen: of seeded random assignments, the one closest to
60/20/20 within every class, with every class in every split.

Output in ``--out``: ``audio/<class>/<kit>__<sample>.wav`` (16-bit), ``manifest.csv``
(``path,label,split,group``, paths relative to it), ``summary.json`` (counts, kits per split,
what was left out, package versions, manifest and audio checksums); ``--baseline`` adds MFCC
statistics + RBF SVM (C picked on val) and ``baseline.json``. The same kits give the same bytes.
With hydrogen-drumkits 2017.09.19~dfsg-1: 13 kits with drums, 445 clips of 5 classes (cymbal,
hihat, kick, snare, tom; clap, cowbell and rim have 12-25 clips), 270/80/95 clips in
train/val/test; MFCC + SVM scores 0.81 on val and 0.84 on test.
"""
import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import soundfile
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from soundsweep.catalog import load_manifest
from soundsweep.catalog._manifest import SPLITS
from trainables.audio import AudioError, decode, fit_length, resample, set_channels
from trainables.baselines import mfcc_statistics

DEFAULT_ROOT = "/usr/share/hydrogen/data/drumkits"
PACKAGES = ("hydrogen-drumkits", "hydrogen-drumkits-effects")
SAMPLE_RATE = 16000
CLIP_SECONDS = 2.0
FADE_SECONDS = 0.02
# First match wins: "Snare Rimshot" is a snare, "Crash/Ride Bell" a cymbal, "Djembe Bass" nothing.
CLASS_RULES = (
    ("snare", r"snare"),
    ("kick", r"\bkick|bass ?drum"),
    ("hihat", r"hi[- ]?hat|\bo?hh\b|\bhat\b"),
    ("tom", r"\btom"),
    ("cymbal", r"crash|ride|cymbal|china|splash"),
    ("clap", r"clap"),
    ("rim", r"stick|rim ?click"),
    ("cowbell", r"cowbell|agogo"),
)
MIN_CLIPS = 40
DUPLICATE_SIMILARITY = 0.95
TARGET_SHARES = np.array([0.6, 0.2, 0.2])  # in SPLITS order: train, val, test
MISSING_CLASS_COST = 10.0
CANDIDATES = 20000
SVM_C = (0.1, 1.0, 10.0, 100.0)


def instrument_class(name: str) -> str | None:
    """The class of an instrument name by ``CLASS_RULES``, or None."""
    lowered = name.lower()
    return next((label for label, pattern in CLASS_RULES if re.search(pattern, lowered)), None)


def find_kits(root: str) -> list[str]:
    """Kit folders under ``root`` that hold a ``drumkit.xml``, sorted by name."""
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "drumkit.xml")))


def read_kit(kit_dir: str) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """A kit's ``(sample path, class)`` pairs in drumkit.xml order, the names of instruments
    that match no rule, and the listed samples that are missing.

    The XML may or may not use Hydrogen's namespace; ``filename`` sits under ``layer`` or, in
    old kits, directly under ``instrument``. A sample listed twice is kept once (its first
    class); instruments without samples (empty slots) are ignored.
    """
    root = ET.parse(os.path.join(kit_dir, "drumkit.xml")).getroot()
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    samples, unmatched, missing = {}, [], []
    for instrument in root.iter(f"{ns}instrument"):
        files = [f.text.strip() for f in instrument.iter(f"{ns}filename") if f.text and f.text.strip()]
        name = (instrument.findtext(f"{ns}name") or "").strip()
        label = instrument_class(name)
        if files and label is None:
            unmatched.append(name)
            continue
        for file in files:
            path = os.path.join(kit_dir, file)
            if os.path.isfile(path):
                samples.setdefault(path, label)
            else:
                missing.append(file)
    return list(samples.items()), unmatched, missing


def load_clip(path: str, clip_seconds: float) -> np.ndarray:
    """A sample as mono 16 kHz float32 of exactly ``clip_seconds``: zero-padded, or cut with a
    short fade-out so the cut makes no click."""
    audio, rate = decode(path)
    mono = resample(set_channels(audio, 1), rate, SAMPLE_RATE)[0]
    length = round(clip_seconds * SAMPLE_RATE)
    if len(mono) > length:
        fade = int(FADE_SECONDS * SAMPLE_RATE)
        mono = mono[:length].copy()
        mono[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return np.clip(fit_length(mono[None], length)[0], -1.0, 1.0)


def duplicates(clips: np.ndarray) -> np.ndarray:
    """Which clips repeat an earlier kept one: waveform cosine similarity of at least
    ``DUPLICATE_SIMILARITY``, so a gain change or a stereo-to-mono mix still counts."""
    unit = clips / np.maximum(np.linalg.norm(clips, axis=1, keepdims=True), 1e-9)
    similar = unit @ unit.T >= DUPLICATE_SIMILARITY
    repeat = np.zeros(len(clips), bool)
    for i in range(len(clips)):
        repeat[i] = bool((similar[i, :i] & ~repeat[:i]).any())
    return repeat


def collect(root: str, kits: list[str], clip_seconds: float) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Every classed sample of the kits (a table, one row per clip, and the clips) without
    duplicates, and what was left out: unmatched instruments, missing or unreadable samples,
    duplicates."""
    rows, clips, unmatched, missing = [], [], {}, {}
    for kit in kits:
        kit_dir = os.path.join(root, kit)
        samples, unmatched[kit], missing[kit] = read_kit(kit_dir)
        for path, label in samples:
            try:
                clips.append(load_clip(path, clip_seconds))
            except AudioError as exc:
                missing[kit].append(f"{os.path.relpath(path, kit_dir)} ({exc})")
                continue
            stem = os.path.splitext(os.path.relpath(path, kit_dir))[0]
            rows.append({"kit": kit, "label": label, "source": os.path.relpath(path, root),
                         "path": f"audio/{label}/{safe_name(kit)}__{safe_name(stem)}.wav", "group": safe_name(kit)})
    if not rows:
        raise SystemExit(f"no sample under {root} belongs to a class: check --root")
    table, clips = pd.DataFrame(rows), np.stack(clips)
    repeat = duplicates(clips)
    left_out = {"unmatched_instruments": {k: v for k, v in unmatched.items() if v},
                "missing_samples": {k: v for k, v in missing.items() if v},
                "duplicate_samples": table.loc[repeat, "source"].tolist()}
    return table[~repeat].reset_index(drop=True), clips[~repeat], left_out


def safe_name(text: str) -> str:
    """``text`` with each run of characters other than letters, digits, ``.``, ``_`` and ``-`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def thin_classes(table: pd.DataFrame, min_clips: int) -> dict[str, int]:
    """Classes with fewer than ``min_clips`` clips or fewer kits than splits, and their clip counts."""
    clips, kits = table["label"].value_counts().sort_index(), table.groupby("label")["kit"].nunique()
    return {label: int(n) for label, n in clips.items() if n < min_clips or kits[label] < len(SPLITS)}


def assign_kits(counts: pd.DataFrame, seed: int) -> dict[str, str]:
    """Each kit's split (``counts``: clips per kit and class). Of ``CANDIDATES`` seeded random
    assignments, the first with the lowest cost: the sum over splits and classes of |the split's
    share of the class - its target share|, plus ``MISSING_CLASS_COST`` per class a split lacks."""
    table = counts.to_numpy(float)
    draws = np.random.default_rng(seed).integers(0, len(SPLITS), size=(CANDIDATES, len(table)))
    per_split = np.stack([(draws == s).astype(float) @ table for s in range(len(SPLITS))], axis=1)
    share = per_split / table.sum(axis=0)
    cost = (np.abs(share - TARGET_SHARES[None, :, None]).sum(axis=(1, 2))
            + MISSING_CLASS_COST * (per_split == 0).sum(axis=(1, 2)))
    best = draws[int(np.argmin(cost))]
    return {kit: SPLITS[s] for kit, s in zip(counts.index, best)}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the Debian kit packages (None: not installed, or no dpkg)."""
    versions = {}
    for package in PACKAGES:
        try:
            done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True,
                                  check=False)
        except FileNotFoundError:
            versions[package] = None
            continue
        versions[package] = done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None
    return versions


def prepare_out(out: str) -> None:
    """Create ``out/audio`` empty; the audio of an earlier build there (it has summary.json) is removed."""
    audio = os.path.join(out, "audio")
    if os.path.exists(audio):
        if not os.path.isfile(os.path.join(out, "summary.json")):
            raise SystemExit(f"{audio} exists and is not from an earlier drumkits build: choose an empty --out")
        shutil.rmtree(audio)
    os.makedirs(audio)


def write_set(out: str, table: pd.DataFrame, clips: np.ndarray) -> tuple[str, str]:
    """Write the clips as 16-bit WAV and the manifest; return the manifest's and the audio's sha256."""
    prepare_out(out)
    audio_hash = hashlib.sha256()
    for i in np.argsort(table["path"].to_numpy(), kind="stable"):
        buffer = io.BytesIO()
        soundfile.write(buffer, clips[i], SAMPLE_RATE, subtype="PCM_16", format="WAV")
        path = os.path.join(out, table.at[i, "path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(buffer.getvalue())
        audio_hash.update(buffer.getvalue())
    manifest = table.sort_values("path")[["path", "label", "split", "group"]].to_csv(index=False, lineterminator="\n")
    with open(os.path.join(out, "manifest.csv"), "w", newline="") as f:
        f.write(manifest)
    return hashlib.sha256(manifest.encode()).hexdigest(), audio_hash.hexdigest()


def build(root: str, out: str, clip_seconds: float = CLIP_SECONDS, seed: int = 0, min_clips: int = MIN_CLIPS) -> dict:
    """Write the set into ``out`` (see the module docstring), print its counts, return the summary."""
    kits = find_kits(root)
    table, clips, left_out = collect(root, kits, clip_seconds)
    per_kit = pd.crosstab(table["kit"], table["label"])
    thin = thin_classes(table, min_clips)
    keep = ~table["label"].isin(list(thin)).to_numpy()
    if not keep.any():
        raise SystemExit(f"no class has {min_clips} clips from {len(SPLITS)} kits: lower --min-clips")
    table, clips = table[keep].reset_index(drop=True), clips[keep]
    split_of = assign_kits(pd.crosstab(table["kit"], table["label"]), seed)
    table["split"] = table["kit"].map(split_of)
    if table["path"].duplicated().any():
        raise SystemExit(f"two samples would both be {table.loc[table['path'].duplicated(), 'path'].iloc[0]}")
    manifest_sha, audio_sha = write_set(out, table, clips)
    per_split = pd.crosstab(table["label"], table["split"])[list(SPLITS)]
    print("clips per kit and class (duplicates removed; split: where the kit goes):")
    print(per_kit.assign(split=per_kit.index.map(lambda k: split_of.get(k, "-"))).to_string())
    print(f"classes left out (fewer than {min_clips} clips or {len(SPLITS)} kits): {thin or 'none'}")
    for kit, names in left_out["unmatched_instruments"].items():
        print(f"{kit}: {len(names)} instrument(s) match no class")
    print(f"{len(left_out['duplicate_samples'])} duplicate sample(s) dropped")
    print("\nclips per class and split:")
    print(per_split.to_string())
    summary = {
        "root": root, "packages": package_versions(), "sample_rate": SAMPLE_RATE, "clip_seconds": clip_seconds,
        "seed": seed, "min_clips": min_clips, "clips": len(table),
        "classes": {label: {s: int(n) for s, n in row.items()} for label, row in per_split.iterrows()},
        "split_clips": {s: int(per_split[s].sum()) for s in SPLITS},
        "kits_per_split": {s: sorted(k for k, v in split_of.items() if v == s) for s in SPLITS},
        "kits_unused": sorted(set(kits) - set(split_of)), "thin_classes_dropped": thin, **left_out,
        "manifest_sha256": manifest_sha, "audio_sha256": audio_sha,
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        f.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def baseline(manifest_csv: str) -> dict:
    """MFCC statistics + RBF SVM, the manifest read by the project's own reader: standardised
    features, C picked on val from ``SVM_C`` (ties: the smaller), fitted on train."""
    manifest = load_manifest(manifest_csv)
    features = np.stack([mfcc_statistics(decode(p)[0], SAMPLE_RATE) for p in manifest["path"]])
    labels = manifest["label"].to_numpy(dtype=object)
    x, y = {}, {}
    for split in SPLITS:
        rows = (manifest["split"] == split).to_numpy()
        x[split], y[split] = features[rows], labels[rows]
    models = {c: make_pipeline(StandardScaler(), SVC(C=c)).fit(x["train"], y["train"]) for c in SVM_C}
    val = {c: float(model.score(x["val"], y["val"])) for c, model in models.items()}
    best = max(SVM_C, key=lambda c: (val[c], -c))
    predicted = models[best].predict(x["test"])
    return {"C": best, "val_accuracy_per_C": {f"{c:g}": a for c, a in val.items()}, "val_accuracy": val[best],
            "test_accuracy": float((predicted == y["test"]).mean()),
            "test_balanced_accuracy": float(balanced_accuracy_score(y["test"], predicted)),
            "test_majority_share": float(pd.Series(y["test"]).value_counts(normalize=True).iloc[0]),
            "classes": int(manifest["label"].nunique())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write the set into (not inside the repository)")
    parser.add_argument("--root", default=DEFAULT_ROOT, help="folder of Hydrogen kits (default %(default)s)")
    parser.add_argument("--clip-seconds", type=float, default=CLIP_SECONDS, help="clip length (default %(default)s)")
    parser.add_argument("--min-clips", type=int, default=MIN_CLIPS,
                        help="drop classes with fewer clips (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kit-to-split search (default %(default)s)")
    parser.add_argument("--baseline", action="store_true", help="also fit MFCC + SVM and write baseline.json")
    args = parser.parse_args(argv)
    if not find_kits(args.root):
        parser.exit(2, f"no drum kits under {args.root}: install them with `apt-get install hydrogen-drumkits`\n")
    summary = build(args.root, args.out, args.clip_seconds, args.seed, args.min_clips)
    print(f"\n{summary['clips']} clips; kits per split: {json.dumps(summary['kits_per_split'])}")
    print(f"manifest sha256 {summary['manifest_sha256']}")
    if args.baseline:
        result = baseline(os.path.join(args.out, "manifest.csv"))
        with open(os.path.join(args.out, "baseline.json"), "w") as f:
            f.write(json.dumps(result, indent=2) + "\n")
        print(f"MFCC + SVM (C={result['C']:g}): val accuracy {result['val_accuracy']:.3f}, test accuracy "
              f"{result['test_accuracy']:.3f} (balanced {result['test_balanced_accuracy']:.3f}; {result['classes']} "
              f"classes, majority share {result['test_majority_share']:.3f})")


if __name__ == "__main__":
    main()
