"""The GPU path: the device-resident epoch cache, features and augmentation on the device, mixed
precision in the model.

Tests marked ``gpu`` are skipped where ``torch.cuda.is_available()`` is false (conftest.py);
the precision choice itself is checked everywhere.
"""
import pytest
import torch

from soundsweep.catalog import load_manifest
from soundsweep.cli import main
from soundsweep.prepare import prepare
from soundsweep.results import ResultsStore
from trainables.audio import DecodeSpec
from trainables.augment import AugmentConfig, Augmenter, AugmentingCollate
from trainables.data import EpochBatches, device_cache_budget
from trainables.features import create_frontend
from trainables.loop import training_precision
from trainables.precision import PRECISIONS


def test_mixed_precision_is_for_gpus_only():
    assert {training_precision(p, torch.device("cpu")) for p in PRECISIONS} == {"fp32"}
    cuda = torch.device("cuda")  # a device object needs no GPU; "auto" would ask the GPU
    assert [training_precision(p, cuda) for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]


@pytest.mark.gpu
def test_log_mel_runs_on_the_gpu():
    frontend = create_frontend("logmel", 22050).to("cuda")
    features = frontend(torch.randn(2, 1, 22050, device="cuda"))
    assert features.is_cuda and features.dtype == torch.float32 and torch.isfinite(features).all()


@pytest.mark.gpu
def test_the_device_cache_lands_on_the_gpu_and_gives_the_in_memory_batches(ray_session, tmp_path):
    rate = 8000
    data = prepare(load_manifest(None, 0, 10), DecodeSpec(sample_rate=rate, segment_s=1.0), str(tmp_path))
    cuda = torch.device("cuda")
    memory = EpochBatches(data.path, "train")
    cached = EpochBatches(data.path, "train", device=cuda, device_budget=device_cache_budget(cuda, 0.5))
    assert (memory.where, cached.where) == ("memory", "device")
    augmenter = Augmenter(AugmentConfig(noise_std=0.02, gain_db=12.0, eq_db=6.0, reverb_p=0.5, drc_p=0.5, speed=0.1),
                          seed=0, sample_rate=rate, channels=1)
    collate = AugmentingCollate(augmenter, epoch=1)
    pairs = list(zip(memory(8, collate, 5), cached(8, collate, 5), strict=True))
    assert cached.tensors and all(t.is_cuda for t in cached.tensors.values())
    for expected, got in pairs:  # the same examples, order and draws; augmented on the GPU
        assert got["waveform"].is_cuda and got["keys"] == expected["keys"] and got["applied"] == expected["applied"]
        assert torch.equal(got["label"].cpu(), expected["label"])
        torch.testing.assert_close(got["waveform"].cpu(), expected["waveform"], atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_one_gpu_per_trial_trains_in_mixed_precision(ray_session, tmp_path, precision):
    url = f"sqlite:///{tmp_path}/results.db"
    code = main(["tune", "--space", "augmentation", "--num-samples", "1", "--max-epochs", "2", "--synthetic-clips",
                 "10", "--gpus-per-worker", "1", "--precision", precision, "--results", url,
                 "--storage-path", str(tmp_path / "runs"), "--name", "gpu"])
    assert code == 0
    store = ResultsStore(url)
    experiment = store.experiment("gpu")
    assert experiment.summary["executor"] == "train"  # a GPU trial runs in a TorchTrainer
    (trial,) = store.trials(experiment.id)
    assert trial.status == "COMPLETED" and trial.epochs == 2
    expected = "fp16" if precision == "fp16" or not torch.cuda.is_bf16_supported() else "bf16"
    for _, epoch in store.epochs(experiment.id):
        assert epoch.metrics["device"].startswith("cuda") and epoch.metrics["precision"] == expected
        assert epoch.metrics["epoch_data"] == "device"  # the train split kept on the GPU
        assert epoch.metrics["train_loss"] == epoch.metrics["train_loss"]  # not NaN: loss scaling worked
    (model,) = store.models(experiment.id)
    correct = sum(row[i] for i, row in enumerate(model.confusion))  # the accuracy is the confusion's diagonal share
    assert model.test_clip_acc == pytest.approx(correct / sum(map(sum, model.confusion)))
