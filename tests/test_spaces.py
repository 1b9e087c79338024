"""Conformance suite of the search spaces: every registered space samples with a real (in-memory)
Optuna study, each sample makes a valid TrialConfig (or screening config), and its model builds
(on the meta device, so the paper-size ECAPA costs nothing)."""
import optuna
import pytest

from search_spaces import DefineByName, flatten, get_space, list_spaces
from soundsweep.experiment.search import ResumableOptunaSearch
from trainables.baselines import MFCC
from trainables.config import TrialConfig
from trainables.models import list_models, model_info, parameter_count
from trainables.screening import ScreeningConfig

SAMPLES = 12
BASE = {  # what the tuner's param_space sets before a space's samples are merged on top
    "arch": "resnet2d",
    "width": 16,
    "lr": 1e-3,
    "batch_size": 32,
    "runtime": {"data_dir": "unused", "num_classes": 8, "in_channels": 2, "sample_rate": 22050},
}


@pytest.mark.parametrize("name", list_spaces())
def test_space_samples_build_models(name):
    space = get_space(name)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    for _ in range(SAMPLES):
        trial = study.ask()
        sampled = space.sample(trial)
        assert set(trial.params) <= set(flatten(sampled))
        config = {**BASE, **sampled}
        if config.pop("protocol", "train") == "screening":
            cfg = ScreeningConfig.from_dict(config).trial
        else:
            cfg = TrialConfig.from_dict(config)
        rt = cfg.runtime
        if cfg.arch != MFCC:
            assert parameter_count(cfg.arch, rt.num_classes, rt.in_channels, **cfg.create_options()) > 0
        assert cfg.trial_seed == TrialConfig.from_dict(cfg.params() | {"runtime": BASE["runtime"]}).trial_seed
        study.tell(trial, float(len(study.trials)))


def test_grid_sizes_count_conditional_branches():
    assert get_space("augmentation").grid_size() == 972
    assert get_space("ccs").grid_size() == get_space("ccs-paper").grid_size() == 2 * 4
    width = get_space("width")
    assert width.grid_size() == sum(len(model_info(a).widths) for a in width.choices["arch"])
    assert set(get_space("architecture").choices["arch"]) == set(list_models()) - {"random_vgg"}


def test_screening_spaces_cover_every_random_front_end():
    fronts = {n for n in list_models() if model_info(n).family == "random_cnn"} - {"random_vgg"}
    small, paper = get_space("random-cnn"), get_space("random-cnn-paper")
    assert set(small.choices["arch"]) == fronts | {MFCC} and small.constants == {"protocol": "screening"}
    assert small.grid_size() == 2 * (len(fronts) + 1) and paper.grid_size() == 2 * (2 * len(fronts) + 1)
    assert small.grid()[:2] == [{"classifier": "svm", "arch": MFCC}, {"classifier": "svm", "arch": "random_7x86"}]
    trial = optuna.trial.FixedTrial({"classifier": "elm", "arch": "random_temporal"})
    assert small.sample(trial)["model_options"] == {"random_temporal": {"width": 8}}


def test_ccs_paper_is_one_constant_away():
    for name, width, last in (("ccs", 128, 192), ("ccs-paper", 1024, 1536)):
        trial = optuna.trial.FixedTrial({"arch": "ecapa_ccs_fsa", "model_options/ecapa_ccs_fsa/split": "256/768"})
        config = get_space(name).sample(trial)
        assert config["width"] is None
        assert config["model_options"] == {"ecapa_ccs_fsa": {"split": "256/768", "width": width, "last_channels": last}}


def test_model_options_reach_the_model():
    cfg = TrialConfig.from_dict({**BASE, "arch": "ecapa_ccs", "width": None,
                                 "model_options": {"ecapa_ccs": {"width": 64, "split": "512/512"},
                                                   "resnet2d": {"width": 64}}})
    assert cfg.create_options() == {"split": "512/512", "width": 64}
    with pytest.raises(ValueError, match="maps an architecture"):
        TrialConfig.from_dict({**BASE, "model_options": {"split": "512/512"}})


@pytest.mark.parametrize("name", list_spaces())
def test_the_searcher_state_of_every_space_pickles(name):
    """Tune pickles the searcher into its experiment state; closures in a space must not break that."""
    import pickle

    define = pickle.loads(pickle.dumps(DefineByName(name)))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    assert isinstance(define(study.ask()), dict)

def two_choices(trial):
    trial.suggest_categorical("a", [1, 2])
    return {"b": 0}


def test_search_never_trains_a_configuration_twice(tmp_path):
    url = f"sqlite:///{tmp_path}/o.db"
    searcher = ResumableOptunaSearch(space=two_choices, metric="m", mode="max", study_name="s",
                                     sampler=optuna.samplers.RandomSampler(seed=0), storage=optuna.storages.RDBStorage(url))
    first = searcher.suggest("t1")
    second = searcher.suggest("t2")  # t1 still running: not suggested again
    assert {first["a"], second["a"]} == {1, 2} and first["b"] == second["b"] == 0
    searcher.on_trial_complete("t1", {"m": 0.5})
    searcher.on_trial_complete("t2", {"m": 0.7})
    third = searcher.suggest("t3")  # the space is exhausted: a repeat is accepted after RESAMPLES tries
    assert third["a"] in (1, 2)
    trials = optuna.load_study(study_name="s", storage=url).trials
    repeats = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert len(repeats) >= ResumableOptunaSearch.RESAMPLES
    for t in repeats:  # each repeat got its earlier trial's value, or failed while that one ran
        earlier = trials[t.user_attrs["duplicate_of"]]
        assert t.params == earlier.params
        assert (t.value == earlier.value) if t.state.name == "COMPLETE" else (t.state.name == "FAIL")
