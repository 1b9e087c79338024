"""The data an experiment's trials run on: its manifest, the prepared segments (one dataset, or
one view per cross-validation fold) and the config each trial gets."""
from soundsweep.catalog import coarse_manifest, cv_folds, hierarchy_for
from soundsweep.experiment.config import ExperimentConfig
from soundsweep.plan import ResourcePlan
from soundsweep.prepare import PreparedData, fold_view, prepare
from soundsweep.storage import join as join_storage
from trainables.config import TrialConfig


def experiment_manifest(cfg: ExperimentConfig):
    """The experiment's manifest; with ``--coarse``, each label replaced by its super-class."""
    manifest = cfg.manifest(cfg.seed)
    return coarse_manifest(manifest, hierarchy_for(manifest, cfg.hierarchy)) if cfg.coarse else manifest



def experiment_data(cfg: ExperimentConfig, storage: str, manifest) -> tuple[PreparedData, list[PreparedData]]:
    """The prepared segments of the experiment's ``manifest`` (:func:`experiment_manifest`), decoded
    on the first call and a cache hit afterwards, and the train/val/test datasets its trials run on:
    the prepared segments themselves, or with ``--folds K`` the K fold views of segments
    partitioned by fold (:func:`~soundsweep.catalog.cv_folds`)."""
    cache = join_storage(storage, "cache")
    if cfg.folds == 1:
        data = prepare(manifest, cfg.decode_spec(), cache)
        return data, [data]
    fold, pairs = cv_folds(manifest, cfg.folds, cfg.seed, cfg.data or "synthetic")
    by_fold = prepare(manifest.assign(split=[f"fold{f}" for f in fold]), cfg.decode_spec(), cache)
    return by_fold, [fold_view(by_fold, f"fold{test}", f"fold{val}") for test, val in pairs]



def fold_data(metrics: dict, folds: list[PreparedData]) -> PreparedData:
    """The data a trial or model ran on, from :func:`experiment_data`'s datasets: the view of the
    ``fold`` in its metrics, else the one dataset."""
    return folds[metrics.get("fold") or 0]



def param_space(cfg: ExperimentConfig, data: PreparedData, plan: ResourcePlan | None, storage: str,
                folds: list[PreparedData] = ()) -> dict:
    """Constants every trial gets; the search space's samples are merged on top. ``folds``: the
    cross-validation views a repeated trial picks its data from.

    Without a ``plan`` (evaluating a stored model) the scaling fields keep their defaults.
    """
    scaling = {} if plan is None else {
        "executor": plan.executor,
        "train_workers": plan.train_workers,
        "cpus_per_worker": plan.cpus_per_worker,
        "use_gpu": plan.gpus_per_worker > 0,
    }
    return {
        "arch": cfg.arch,
        "width": cfg.width,
        **cfg.training_settings(),
        "runtime": {
            "data_dir": data.path,
            "num_classes": len(data.classes),
            "in_channels": cfg.channels,
            "sample_rate": cfg.sample_rate,
            "seed": cfg.seed,
            "max_epochs": cfg.max_epochs,
            **scaling,
            "precision": cfg.precision,
            "device_cache_share": cfg.device_cache_share,
            "storage_path": storage,
            "init_from": cfg.init_from or "",
            "record_augmentation": cfg.record_augmentation,
            "max_model_kb": cfg.max_model_kb or 0.0,
            "max_params": cfg.max_params or 0,
            "folds": [view.path for view in folds],
            "repeats": cfg.repeats,
            "fidelity": cfg.fidelity,
        },
    }



def trial_config(params: dict, data: PreparedData, cfg: ExperimentConfig, plan: ResourcePlan | None,
                 storage: str) -> TrialConfig:
    """Rebuild a stored trial's :class:`TrialConfig` (to load and evaluate its checkpoint)."""
    return TrialConfig.from_dict({**params, "runtime": param_space(cfg, data, plan, storage)["runtime"]})
