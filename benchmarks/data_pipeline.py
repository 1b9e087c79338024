"""Data pipeline: throughput against a no-Ray limit and a naive loader, decode-once savings, memory.

    python benchmarks/data_pipeline.py --out pipeline.json [--clips 2000] [--memory-clips 1200] [--cpus 2]
    python benchmarks/data_pipeline.py --out epoch_read.json --only epoch-read  # the epoch-read keys alone

Corpus: ``--clips`` ten-second clips, half MP3 (44.1 kHz stereo, like FMA) and half FLAC
(44.1 kHz mono, like ESC-50), of a fast synthetic signal (a few tones plus noise; 200 rendered,
the rest byte copies), generated once into ``<cache>/bench/corpus-<clips>``
(``$SOUNDSWEEP_CACHE``, default ``~/.cache/soundsweep``) and reused. Decode settings:
SoundFusion's waveform branch (22.05 kHz mono, 5 s windows, 25 % overlap). Ray runs locally with
``--cpus`` CPUs (its own instance, never someone else's).

Figures written (JSON):

``limit_clips_per_s``
    A plain loop in one process, no Ray: decode (soundfile), mix to mono and resample (soxr)
    every file with the pipeline's own functions; nothing is written. ``limit_processes_clips_per_s``
    is the same loop split over ``--cpus`` processes: the machine's ceiling.
``*_cpu_ms_per_clip``
    Beside every throughput: CPU milliseconds per clip (user + system, summed over the process
    and all its descendants: the driver, DataLoader or pool workers, Ray's processes). On a
    shared machine the wall-clock figures follow the other load; these do not, so
    ``targets.pipeline_vs_limit_cpu`` (limit CPU per clip / pipeline CPU per clip) is the
    load-independent form of the throughput target.
``pipeline_clips_per_s``
    Our pipeline (Ray Data decoding into the store, the trial reading it) up to the point where
    torch batches reach a Train worker, in steady
    state: clips / (``decode_s`` + ``read_s``), where ``decode_s`` is ``prepare`` on a cold
    cache (decode, resample, segment, write the segment store) and ``read_s`` one pass over
    every split streamed as a trial's epoch reads it (:func:`read_all`). Measured
    after a warm-up ``prepare`` (a part per CPU, other clip ids) in the same Ray instance, so
    Ray's start and the workers' imports are not counted. ``decode_clips_per_s`` = clips / ``decode_s``;
    ``read_cpu_ms_per_clip`` the read's share of ``pipeline_cpu_ms_per_clip``.
``stage_cpu_ms_per_clip``
    Where a cold preparation's CPU goes: each stage of :func:`~trainables.segments.decode_part`
    timed apart in this process, with the pipeline's own functions, over the :data:`RENDERED`
    distinct clips (the rest are byte copies), :data:`~trainables.segments.CLIPS_PER_CHUNK` at a
    time as a task does: ``decode`` (soundfile), ``mix`` (to mono), ``resample`` (soxr), ``segment``
    (windows stacked into a batch), ``quantize`` (int16 and scale), ``write`` (Parquet, after
    quantizing). ``ray_and_rest``: ``decode_cpu_ms_per_clip`` less their sum, what Ray Data's
    tasks and Ray's own processes add. The limit loop does ``decode``, ``mix`` and ``resample``.
``epoch_read_clips_per_s``, ``raw_read_clips_per_s``, ``epoch_read_ratio``
    Side by side on the train split of the same store, in turns, the fastest of 5 each (on a
    shared machine the slower runs follow the other load): a training epoch's streamed read
    (``EpochBatches`` on its stream path, batches of 32 shuffled as a trial's: the path of a
    split over the in-memory limit, read in the process) against
    ``pyarrow.parquet`` alone reading the same files, their waveforms copied into one contiguous
    int16 array. ``epoch_read_ratio`` = epoch / raw (target >= 0.8); ``epoch_read_ratio_cpu``
    the same from CPU ms per clip (``*_cpu_ms_per_clip``). ``bytes_per_sample``: the split's
    files on disk per stored sample (2 for int16: the waveform is stored uncompressed).
``epoch_read_clips_per_s_by_readers``
    The streamed read by 1, 2 and 4 concurrent readers. A reader is a thread of the driver
    reading worker share r of n (``EpochBatches(..., rank=r, world_size=n)``), as each of the n
    workers of ``--executor train`` reads its share; clips/s count the clips of the split read
    by all of them together (fastest of 5 epochs; ``1``: the plain read above).
``naive_clips_per_s``
    A torch ``DataLoader`` (``--cpus`` workers) whose dataset decodes, resamples and segments
    each clip on every access: what every epoch of every trial pays without the cache.
``trial1_prep_s``, ``trial2_prep_s``
    ``prepare`` for the first trial of an experiment (cache miss: decode everything) and for a
    second trial of the same experiment (cache hit: hash the manifest and file stamps, read the
    summary). ``trial_prep_ratio`` = trial1 / trial2.
``peak_rss_1x_mb``, ``peak_rss_10x_mb``
    Peak summed RSS of a fresh process and all its descendants (the driver, Ray's GCS, raylet
    with the object store, and every Ray worker), sampled every 0.2 s while it starts Ray,
    prepares (cold) and streams every split (:func:`read_all`) of ``--memory-clips`` clips (1x)
    and of the same files listed 10 times under other clip ids (10x: ten times the decode work and data).
    ``mb_per_1000_clips``: the slope between them, (10x - 1x) / the 9 x ``--memory-clips`` more.
    Sizes: a Ray Data worker grows with the parts it has decoded and read until its memory pools
    settle (``processes_at_peak_mb``; at 200 and 400 clips one worker stayed at 250-460 MB
    against 570-660 MB at 10x). The default 1,200 clips gives each of 2 workers about 9
    :data:`~soundsweep.prepare.CLIPS_PER_PART`-clip parts, so both are at steady state in the 1x
    run too, and the ratio measures growth with the data, not the workers' warm-up.
``loose_vs_shards``
    ``pack_s`` and cold ``prepare`` throughput from Parquet and tar shards (``soundsweep
    shard``, 64 MiB) against the same from loose files, with bit-identical segments.
"""
import argparse
import json
import logging
import multiprocessing
import os
import platform as stdlib_platform  # run as a script from benchmarks/: the stdlib module
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq
import ray
import soundfile
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from soundsweep.catalog import cache_root, load_manifest  # noqa: E402
from soundsweep.catalog.shards import pack  # noqa: E402
from soundsweep.prepare import CLIPS_PER_PART, prepare  # noqa: E402
from trainables.audio import DecodeSpec, decode, load_segments, resample, segment, set_channels  # noqa: E402
from trainables.data import EpochBatches  # noqa: E402
from trainables.segments import CLIPS_PER_CHUNK, COLUMNS, SPLITS, SegmentWriter, quantize, segment_files  # noqa: E402

SPEC = DecodeSpec(sample_rate=22050, channels=1, segment_s=5.0, overlap=0.25)
CLIP_S, SOURCE_RATE, CLASSES = 10.0, 44100, 4
RENDERED = 200  # clips rendered and encoded; the rest of a corpus are byte copies of these


def write_clip(path: str, index: int) -> None:
    """A deterministic ten-second clip: three tones of a class-dependent chord plus noise."""
    rng = np.random.default_rng(index)
    t = np.arange(int(CLIP_S * SOURCE_RATE)) / SOURCE_RATE
    base = 110.0 * 2 ** ((index % CLASSES) / CLASSES)
    x = sum(np.sin(2 * np.pi * base * k * rng.uniform(0.98, 1.02) * t) / k for k in (1, 2, 3))
    x = 0.2 * x + 0.02 * rng.standard_normal(len(t))
    if path.endswith(".mp3"):
        x = np.stack([x, np.roll(x, 441)], axis=1)  # stereo
    soundfile.write(path, x.astype(np.float32), SOURCE_RATE)


def corpus(clips: int) -> str:
    """The manifest CSV of a ``clips``-clip corpus, generated on first use.

    The first :data:`RENDERED` clips are rendered and encoded; the others are byte copies of
    them under their own names (the same decode work; encoding thousands of MP3s takes long on
    a small machine). Files appear whole (written aside, then renamed), so an interrupted
    generation resumes where it stopped.
    """
    root = os.path.join(cache_root(), "bench", f"corpus-{clips}")
    manifest = os.path.join(root, "manifest.csv")
    if os.path.exists(manifest):
        return manifest
    os.makedirs(root, exist_ok=True)
    rows = []
    for i in range(clips):
        ext = "mp3" if i % 2 else "flac"  # RENDERED is even: a copy keeps its source's format
        path = os.path.join(root, f"clip{i:05d}.{ext}")
        if not os.path.exists(path):
            if i < RENDERED:
                write_clip(f"{path}.tmp.{ext}", i)
            else:
                shutil.copyfile(os.path.join(root, f"clip{i % RENDERED:05d}.{ext}"), f"{path}.tmp.{ext}")
            os.rename(f"{path}.tmp.{ext}", path)
        split = ("train", "train", "train", "val", "test")[i % 5]
        rows.append({"path": path, "label": f"class{i % CLASSES}", "split": split, "duration_s": CLIP_S,
                     "sample_rate": SOURCE_RATE, "channels": 2 if i % 2 else 1})
    pd.DataFrame(rows).to_csv(manifest + ".tmp", index=False)
    os.rename(manifest + ".tmp", manifest)
    return manifest


def tree_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process and all its descendants, live or
    already reaped (a parent's ``children_*`` times hold its reaped children): the measure of
    work that the machine's other load does not distort."""
    total = 0.0
    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return total


class Measure:
    """Wall and CPU seconds of a ``with`` block (CPU of this process tree, see :func:`tree_cpu_s`)."""

    def __enter__(self) -> "Measure":
        self.wall, self.cpu = time.perf_counter(), tree_cpu_s()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, tree_cpu_s() - self.cpu


def stage_cpu(paths: list[str]) -> dict:
    """CPU ms per clip of each stage of a cold preparation, timed apart in this process (see
    ``stage_cpu_ms_per_clip`` above) over ``paths``, into a throwaway store."""
    stages = dict.fromkeys(("decode", "mix", "resample", "segment", "quantize", "write"), 0.0)

    def timed(stage: str, work, *args):
        started = time.process_time()
        out = work(*args)
        stages[stage] += time.process_time() - started
        return out

    with tempfile.TemporaryDirectory() as store, SegmentWriter(store, 0) as writer:
        for at in range(0, len(paths), CLIPS_PER_CHUNK):
            pieces = []
            for path in paths[at:at + CLIPS_PER_CHUNK]:
                x, rate = timed("decode", decode, path)
                x = timed("resample", resample, timed("mix", set_channels, x, SPEC.channels), rate, SPEC.sample_rate)
                pieces += timed("segment", segment, x, SPEC)
            waveform = timed("segment", np.stack, pieces)
            n = len(waveform)
            batch = {"waveform": waveform, "clip_id": np.array(["clip"] * n, dtype=object),
                     "segment": np.arange(n), "label": np.zeros(n, np.int64), "split": np.array(["train"] * n, dtype=object)}
            timed("quantize", quantize, waveform)
            timed("write", writer.write, batch)  # it quantizes again: taken off below
    stages["write"] -= stages["quantize"]
    return {stage: 1000 * seconds / len(paths) for stage, seconds in stages.items()}


def decode_and_resample(path: str) -> int:
    x, rate = decode(path)
    return resample(set_channels(x, SPEC.channels), rate, SPEC.sample_rate).shape[1]


def limit(paths: list[str], processes: int) -> Measure:
    """The plain decode + resample loop over every file (in ``processes`` processes)."""
    with Measure() as measured:
        if processes == 1:
            for path in paths:
                decode_and_resample(path)
        else:
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                pool.map(decode_and_resample, paths, chunksize=8)
    return measured


class DecodingDataset(torch.utils.data.Dataset):
    """The naive loader: every access decodes, resamples and segments its clip again."""

    def __init__(self, paths: list[str]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.stack(load_segments(self.paths[i], SPEC)))


def naive(paths: list[str], workers: int) -> Measure:
    """One epoch of a DataLoader that decodes every clip on access."""
    loader = torch.utils.data.DataLoader(DecodingDataset(paths), batch_size=4, num_workers=workers,
                                         collate_fn=torch.cat, multiprocessing_context="fork")
    with Measure() as measured:
        assert sum(len(batch) for batch in loader) > 0
    return measured


def read_all(data_dir: str) -> int:
    """Every split as torch batches of 32, streamed as a trial reads a split over the in-memory
    limit (:class:`~trainables.data.EpochBatches`, ``host_budget=0``); return the segments seen.
    Streamed at every corpus size, so the memory runs compare the same work: a split kept in
    memory at 1x and streamed at 10x would make the 1x peak the larger one."""
    return sum(len(batch["label"]) for split in SPLITS for batch in EpochBatches(data_dir, split, host_budget=0)(32))


def raw_read(files: list[str]) -> int:
    """pyarrow.parquet alone: every file's segments (the stored columns), their waveforms copied
    into one contiguous int16 array; return the segments read."""
    parts = [pq.ParquetFile(f).read(columns=COLUMNS).column("waveform") for f in files]
    rows, width = sum(len(p) for p in parts), parts[0].type.byte_width
    out, at = np.empty(rows * width // 2, np.int16), 0
    for chunk in (chunk for part in parts for chunk in part.chunks):
        n = len(chunk) * width // 2
        out[at:at + n] = np.frombuffer(chunk.buffers()[1], np.int16, n, chunk.offset * width)
        at += n
    return rows


def epoch_read(data_dir: str, readers: int = 1) -> int:
    """A training epoch's streamed read of the train split, shuffled as a trial's
    (:class:`~trainables.data.EpochBatches` on its stream path, batches of 32); with ``readers``
    above 1, one thread per worker share (rank ``r`` of ``readers``), as the workers of a
    multi-worker trial read theirs. Returns the segments read."""
    def read(rank: int) -> int:
        batches = EpochBatches(data_dir, "train", rank, readers, host_budget=0)
        return sum(len(batch["label"]) for batch in batches(32, shuffle_seed=rank))
    with ThreadPoolExecutor(readers) as pool:
        return sum(pool.map(read, range(readers)))


def epoch_reads(data_dir: str, clips: int, segments: int, runs: int = 5) -> dict:
    """The streamed epoch read against pyarrow alone on the same files, taken in turns ``runs``
    times, the fastest of each; then the streamed read by 2 and 4 readers, the fastest of ``runs``
    epochs. Clips/s count the clips whose segments were read (equal worker shares leave out
    fewer segments than there are readers)."""
    files = segment_files(data_dir, "train")
    stored = sum(os.path.getsize(f) for f in files)
    out = {"epoch_read_split": "train", "epoch_read_clips": clips, "epoch_read_bytes": stored,
           "bytes_per_sample": stored / (segments * SPEC.channels * SPEC.segment_samples)}
    reads = {"epoch_read": lambda: epoch_read(data_dir), "raw_read": lambda: raw_read(files)}
    best: dict[str, Measure] = {}
    for _ in range(runs):
        for key, read in reads.items():
            with Measure() as measured:
                assert read() == segments, key
            if key not in best or measured.wall < best[key].wall:
                best[key] = measured
    for key, measured in best.items():
        out[f"{key}_clips_per_s"] = clips / measured.wall
        out[f"{key}_cpu_ms_per_clip"] = 1000 * measured.cpu / clips
    out["epoch_read_ratio"] = out["epoch_read_clips_per_s"] / out["raw_read_clips_per_s"]
    out["epoch_read_ratio_cpu"] = out["raw_read_cpu_ms_per_clip"] / out["epoch_read_cpu_ms_per_clip"]
    out["epoch_read_clips_per_s_by_readers"] = {"1": out["epoch_read_clips_per_s"]}
    for readers in (2, 4):
        rates = []
        for _ in range(runs):
            with Measure() as measured:
                read = epoch_read(data_dir, readers)
            rates.append(read * clips / segments / measured.wall)
        out["epoch_read_clips_per_s_by_readers"][str(readers)] = max(rates)
    return out


def pipeline(manifest: pd.DataFrame, cache: str) -> dict:
    """Cold prepare then one read of every split: wall and CPU seconds of one pass."""
    with Measure() as decoding:
        data = prepare(manifest, SPEC, cache)
    assert not data.cache_hit and not data.failures, data.failures[:3]
    with Measure() as reading:
        segments = read_all(data.path)
    return {"decode_s": decoding.wall, "read_s": reading.wall, "decode_cpu_s": decoding.cpu,
            "read_cpu_s": reading.cpu, "segments": segments, "path": data.path,
            "train_clips": data.clips["train"], "train_segments": data.segments["train"]}


def start_ray(cpus: int) -> None:
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no line per dataset execution
    ray.init(address="local", num_cpus=cpus, object_store_memory=512 * 2**20, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False


def repeated(manifest: pd.DataFrame, times: int) -> pd.DataFrame:
    """The manifest listed ``times`` times under new clip ids (same files, ``times`` x the work)."""
    copies = [manifest.assign(clip_id=manifest["clip_id"] + f"-r{r}") for r in range(times)]
    return pd.concat(copies, ignore_index=True)


def memory_child(manifest_csv: str, clips: int, scale: int, cpus: int) -> None:
    """Runs in a fresh process (``--memory-run``): Ray start, cold prepare and read of the corpus."""
    start_ray(cpus)
    manifest = repeated(load_manifest(manifest_csv).head(clips), scale)
    with tempfile.TemporaryDirectory() as cache:
        result = pipeline(manifest, cache)
    ray.shutdown()
    print(json.dumps({k: v for k, v in result.items() if k != "path"}))


def peak_rss(manifest_csv: str, clips: int, scale: int, cpus: int) -> dict:
    """Peak summed RSS (MiB) of a ``memory_child`` process tree, sampled every 0.2 s, with the
    processes that made up the peak."""
    child = subprocess.Popen([sys.executable, __file__, "--memory-run", manifest_csv, str(clips), str(scale), str(cpus)],
                             stdout=subprocess.PIPE, text=True)
    root, peak, at_peak = psutil.Process(child.pid), 0, {}
    while child.poll() is None:
        sizes = {}
        try:
            for process in [root, *root.children(recursive=True)]:
                try:
                    sizes[f"{process.pid} {process.name()}"] = process.memory_info().rss / 2**20
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        if sum(sizes.values()) > peak:
            peak, at_peak = sum(sizes.values()), sizes
        time.sleep(0.2)
    result = json.loads(child.stdout.read().strip().splitlines()[-1])
    top = sorted(at_peak.items(), key=lambda item: -item[1])[:8]
    return {"peak_rss_mb": peak, "clips": clips * scale, **result,
            "processes_at_peak_mb": {name: round(mb) for name, mb in top}}


def write(result: dict, path: str) -> None:
    """``result``, with the load average at its end, as JSON at ``path``."""
    result["load_average_at_end"] = os.getloadavg()
    with open(path, "w") as f:
        json.dump(result, f, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--clips", type=int, default=2000, help="corpus size (default %(default)s)")
    parser.add_argument("--memory-clips", type=int, default=1200, help="1x corpus of the memory runs (default %(default)s)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs for Ray and the parallel baselines")
    parser.add_argument("--only", choices=["epoch-read"],
                        help="measure this part alone: epoch-read prepares the store and writes the epoch_read* keys")
    args = parser.parse_args()

    manifest_csv = corpus(args.clips)
    manifest = load_manifest(manifest_csv)
    paths = manifest["path"].tolist()
    result = {"clips": args.clips, "clip_s": CLIP_S, "cpus": args.cpus, "spec": SPEC.as_dict(),
              "machine": f"{stdlib_platform.processor() or stdlib_platform.machine()}, {os.cpu_count()} cores, "
                         f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM",
              "load_average_at_start": os.getloadavg()}
    log = lambda key: print(f"{key}: {result[key]}", flush=True)  # noqa: E731
    if args.only == "epoch-read":
        start_ray(args.cpus)
        with tempfile.TemporaryDirectory() as cache:
            data = prepare(manifest, SPEC, cache)
            result.update(epoch_reads(data.path, data.clips["train"], data.segments["train"]))
        ray.shutdown()
        write(result, args.out)
        log("epoch_read_ratio")
        return

    clips = len(paths)
    for key, measured in (("limit", lambda: limit(paths, 1)), ("limit_processes", lambda: limit(paths, args.cpus)),
                          ("naive", lambda: naive(paths, args.cpus))):
        run = measured()
        result.update({f"{key}_clips_per_s": clips / run.wall, f"{key}_cpu_ms_per_clip": 1000 * run.cpu / clips})
        log(f"{key}_clips_per_s")
    stages = stage_cpu(paths[:RENDERED])
    result["stage_cpu_ms_per_clip"] = stages
    log("stage_cpu_ms_per_clip")

    start_ray(args.cpus)
    with tempfile.TemporaryDirectory() as cache:
        warm_up = manifest.head(CLIPS_PER_PART * args.cpus).copy()
        warm_up["clip_id"] += "-warm"  # other clips: a cache miss that starts a decode worker per CPU
        prepare(warm_up, SPEC, cache)
        run = pipeline(manifest, cache)
        result.update(decode_s=run["decode_s"], read_s=run["read_s"], segments=run["segments"],
                      decode_clips_per_s=clips / run["decode_s"],
                      pipeline_clips_per_s=clips / (run["decode_s"] + run["read_s"]),
                      decode_cpu_ms_per_clip=1000 * run["decode_cpu_s"] / clips,
                      pipeline_cpu_ms_per_clip=1000 * (run["decode_cpu_s"] + run["read_cpu_s"]) / clips,
                      read_cpu_ms_per_clip=1000 * run["read_cpu_s"] / clips)
        stages["ray_and_rest"] = result["decode_cpu_ms_per_clip"] - sum(stages.values())
        log("pipeline_clips_per_s")
        result.update(epoch_reads(run["path"], run["train_clips"], run["train_segments"]))
        log("epoch_read_ratio")
        started = time.perf_counter()
        assert prepare(manifest, SPEC, cache).cache_hit
        result.update(trial1_prep_s=run["decode_s"], trial2_prep_s=time.perf_counter() - started)
        result["trial_prep_ratio"] = result["trial1_prep_s"] / result["trial2_prep_s"]
        log("trial2_prep_s")

        shards = {"loose": {"decode_s": run["decode_s"], "clips_per_s": clips / run["decode_s"],
                            "decode_cpu_ms_per_clip": result["decode_cpu_ms_per_clip"]}}
        for fmt in ("parquet", "tar"):
            with tempfile.TemporaryDirectory() as out:
                started = time.perf_counter()
                summary = pack(manifest, out, 64, fmt)
                pack_s = time.perf_counter() - started
                sharded = pipeline(load_manifest(out), cache)
                assert sharded["segments"] == run["segments"]
                shards[fmt] = {"pack_s": pack_s, "shards": len(summary["shards"]), "decode_s": sharded["decode_s"],
                               "clips_per_s": clips / sharded["decode_s"],
                               "decode_cpu_ms_per_clip": 1000 * sharded["decode_cpu_s"] / clips}
        result["loose_vs_shards"] = shards
        log("loose_vs_shards")
    ray.shutdown()

    for scale, key in ((1, "1x"), (10, "10x")):
        run = peak_rss(manifest_csv, min(args.memory_clips, args.clips), scale, args.cpus)
        result[f"peak_rss_{key}_mb"] = run["peak_rss_mb"]
        result[f"memory_run_{key}"] = run
        log(f"peak_rss_{key}_mb")
    grown = result["memory_run_10x"]["clips"] - result["memory_run_1x"]["clips"]
    result["mb_per_1000_clips"] = 1000 * (result["peak_rss_10x_mb"] - result["peak_rss_1x_mb"]) / grown

    result["targets"] = {
        "pipeline_vs_limit": result["pipeline_clips_per_s"] / result["limit_clips_per_s"],
        "pipeline_vs_limit_processes": result["pipeline_clips_per_s"] / result["limit_processes_clips_per_s"],
        "pipeline_vs_limit_cpu": result["limit_cpu_ms_per_clip"] / result["pipeline_cpu_ms_per_clip"],
        "trial2_cheaper_by": result["trial_prep_ratio"],
        "epoch_read_ratio": result["epoch_read_ratio"],
        "rss_10x_over_1x": result["peak_rss_10x_mb"] / result["peak_rss_1x_mb"],
    }
    write(result, args.out)
    print(json.dumps(result["targets"], indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-run":
        memory_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
