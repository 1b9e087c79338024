"""The GPU path: features and SpecAugment on the device, mixed precision in the model.

Tests marked ``gpu`` are skipped where ``torch.cuda.is_available()`` is false (conftest.py);
the precision choice itself is checked everywhere.
"""
import pytest
import torch

from soundsweep.cli import main
from soundsweep.results import ResultsStore
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
        assert epoch.metrics["train_loss"] == epoch.metrics["train_loss"]  # not NaN: loss scaling worked
    (model,) = store.models(experiment.id)
    correct = sum(row[i] for i, row in enumerate(model.confusion))  # the accuracy is the confusion's diagonal share
    assert model.test_clip_acc == pytest.approx(correct / sum(map(sum, model.confusion)))
