"""Seeded augmentation: same seed and example key, same draws; replay; what each step does."""
import itertools
import json

import numpy as np
import pytest
import torch

from trainables.augment import (
    AugmentConfig,
    Augmenter,
    AugmentingCollate,
    DynamicRangeCompression,
    GaussianNoise,
    RandomEQ,
    RandomGain,
    Reverb,
    SpecAugment,
    replay,
)
from trainables.config import TrialConfig
from trainables.seeding import derive_seed, torch_generator

CONFIG = AugmentConfig(noise_std=0.02, gain_db=12.0, specaug_p=1.0, specaug_max_pct=0.3,
                       specaug_freq_masks=2, specaug_time_masks=2)
KEYS = ["clipA#0", "clipA#1", "clipB#0"]


def test_same_seed_same_draws_regardless_of_batching():
    x = torch.randn(3, 1, 2000)
    a, rec_a = Augmenter(CONFIG, seed=7).waveforms(x, KEYS, epoch=3)
    # the same examples in another order and batch size get the same draws
    b0, rec_b0 = Augmenter(CONFIG, seed=7).waveforms(x[2:], KEYS[2:], epoch=3)
    b1, _ = Augmenter(CONFIG, seed=7).waveforms(x[:2], KEYS[:2], epoch=3)
    assert torch.equal(a[2], b0[0]) and torch.equal(a[:2], b1)
    assert rec_a[2] == rec_b0[0] and "gain" in rec_a[0] and abs(rec_a[0]["gain"]["db"]) <= 12.0


def test_other_epoch_or_seed_changes_draws():
    x = torch.randn(3, 1, 2000)
    a, _ = Augmenter(CONFIG, seed=7).waveforms(x, KEYS, epoch=0)
    b, _ = Augmenter(CONFIG, seed=7).waveforms(x, KEYS, epoch=1)
    c, _ = Augmenter(CONFIG, seed=8).waveforms(x, KEYS, epoch=0)
    assert not torch.equal(a, b) and not torch.equal(a, c)


def test_specaugment_masks_with_mean_and_respects_max_width():
    spec = torch.arange(64 * 100, dtype=torch.float32).reshape(1, 64, 100)
    out, applied = SpecAugment(p=1.0, max_pct=0.3, freq_masks=2, time_masks=2)(spec, torch_generator(1))
    assert len(applied["freq"]) == 2 and len(applied["time"]) == 2
    assert all(w <= int(0.3 * 64) for _, w in applied["freq"]) and all(w <= 30 for _, w in applied["time"])
    changed = out != spec
    assert torch.all(out[changed] == spec.mean())
    start, width = applied["time"][0]
    if width:
        assert torch.all(out[0, :, start : start + width] == spec.mean())


def test_specaugment_probability_zero_is_identity():
    spec = torch.randn(1, 64, 50)
    out, applied = SpecAugment(p=0.0)(spec, torch_generator(0))
    assert applied == {} and torch.equal(out, spec)


def test_derive_seed_is_stable_and_order_sensitive():
    assert derive_seed(1, "a", 2) == derive_seed(1, "a", 2)
    assert derive_seed(1, "a", 2) != derive_seed(2, "a", 1)


# --- the DCASE2020-style waveform augmentations -------------------------------------------------

RATE = 8000
KNOBS = {  # each new per-example step: its knob, and a value that turns it fully on
    "time_shift": ("time_shift", 0.5),
    "speed": ("speed", 0.2),
    "pitch_shift": ("pitch_shift", 4.0),
    "channel_swap": ("channel_swap_p", 1.0),
    "eq": ("eq_db", 12.0),
    "reverb": ("reverb_p", 1.0),
    "drc": ("drc_p", 1.0),
}
ONE = {name: AugmentConfig(**{knob: value}) for name, (knob, value) in KNOBS.items()}


def stereo_batch(n: int = 3, seconds: float = 0.5) -> torch.Tensor:
    return torch.randn(n, 2, int(RATE * seconds), generator=torch.Generator().manual_seed(0))


def augment(config: AugmentConfig, x: torch.Tensor, keys=KEYS, seed=7, labels=None):
    return Augmenter(config, seed=seed, sample_rate=RATE, channels=2).waveforms(x, keys, epoch=0, labels=labels)


def dominant_hz(x: torch.Tensor) -> float:
    return float(torch.fft.rfft(x).abs().argmax()) * RATE / x.shape[-1]


def burst() -> torch.Tensor:
    """50 ms of noise, then silence: a stereo example whose tail shows what a step adds."""
    x = torch.zeros(2, RATE)
    x[:, :400] = torch.randn(2, 400, generator=torch.Generator().manual_seed(1))
    return x


@pytest.mark.parametrize("name", sorted(ONE))
def test_each_step_is_seeded_replayable_and_keeps_shape(name):
    x = stereo_batch()
    out, records = augment(ONE[name], x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert all(list(r) == [name] for r in records) and json.loads(json.dumps(records)) == records
    again, _ = augment(ONE[name], x)
    assert torch.equal(out, again)
    for xi, oi, applied in zip(x, out, records):
        assert torch.equal(replay(xi, applied), oi)
    if name != "channel_swap":  # its one draw is the coin, always heads at p 1 (see its own test)
        # another key (or seed) draws other parameters; the draw is per key, not per position
        other, other_records = augment(ONE[name], x, keys=["clipC#0", "clipA#1", "clipB#0"], seed=8)
        assert other_records[0] != records[0] and not torch.equal(other[0], out[0])


def test_a_step_that_is_off_changes_nothing_and_draws_nothing():
    x = stereo_batch()
    augmenter = Augmenter(AugmentConfig(), seed=7, sample_rate=RATE, channels=2)
    for step in augmenter.waveform_steps:
        gen = torch_generator(1)
        state = gen.get_state()
        assert step.draw(gen, x[0].shape) == {} and torch.equal(gen.get_state(), state)
    gen = torch_generator(1)
    assert augmenter.mix.draw(gen, KEYS) == {} and torch.equal(gen.get_state(), state)
    plain, plain_records = augmenter.waveforms(x, KEYS, epoch=0, labels=[0, 0, 0])
    assert torch.equal(plain, x) and plain_records == [{}, {}, {}]
    # with the new knobs at 0, gain and noise draw exactly what they drew before those existed
    out, records = augment(AugmentConfig(gain_db=6.0, noise_std=0.01), x, labels=[0, 0, 0])
    gain, noise = RandomGain(6.0), GaussianNoise(0.01)
    for xi, oi, key in zip(x, out, KEYS):
        gen = torch_generator(7, "waveform", 0, key)
        expected, _ = noise(gain(xi, gen)[0], gen)
        assert torch.equal(oi, expected)
    assert all(set(r) == {"gain", "gaussian_noise"} for r in records)


def test_the_trial_seed_follows_every_setting():
    runtime = {"data_dir": "unused", "num_classes": 8, "in_channels": 2, "sample_rate": 22050, "seed": 3}
    base = {"runtime": runtime, "noise_std": 0.02, "specaug_p": 1.0, "lr": 3e-4}
    seed = TrialConfig.from_dict(base).trial_seed
    assert TrialConfig.from_dict(dict(base)).trial_seed == seed
    assert TrialConfig.from_dict({**base, "reverb_p": 0.5}).trial_seed != seed
    assert TrialConfig.from_dict({**base, "mixup_alpha": 0.2}).trial_seed != seed
    assert TrialConfig.from_dict({**base, "reverb_p": 0.5}).params()["reverb_p"] == 0.5


def test_time_shift_is_a_roll_within_the_limit():
    x = stereo_batch()
    out, records = augment(AugmentConfig(time_shift=0.25), x)
    for xi, oi, r in zip(x, out, records):
        shift = r["time_shift"]["samples"]
        assert abs(shift) <= 0.25 * x.shape[-1] and torch.equal(oi, torch.roll(xi, shift, -1))
        assert torch.isclose(oi.pow(2).sum(), xi.pow(2).sum())


def test_channel_swap_swaps_stereo_and_refuses_mono():
    x = stereo_batch()
    out, _ = augment(AugmentConfig(channel_swap_p=1.0), x)
    assert torch.equal(out[:, 0], x[:, 1]) and torch.equal(out[:, 1], x[:, 0])
    keys = [f"clip#{k}" for k in range(20)]
    out, records = augment(AugmentConfig(channel_swap_p=0.5), stereo_batch(20, 0.01), keys=keys)
    assert 0 < sum(bool(r) for r in records) < 20  # a coin per key
    with pytest.raises(ValueError, match="--channels 2"):
        Augmenter(AugmentConfig(channel_swap_p=0.5), seed=0, sample_rate=RATE, channels=1)


def test_steps_that_need_the_sample_rate_say_so():
    with pytest.raises(ValueError, match="sample rate"):
        Augmenter(AugmentConfig(eq_db=6.0), seed=0)


@pytest.mark.parametrize("knob, factor", [("speed", lambda p: p["factor"]),
                                          ("pitch_shift", lambda p: 2 ** (p["semitones"] / 12))])
def test_speed_and_pitch_shift_move_a_sine_by_their_factor(knob, factor):
    t = torch.arange(RATE) / RATE
    x = torch.sin(2 * torch.pi * 1000 * t).expand(3, 2, RATE).contiguous()
    config = AugmentConfig(**{knob: 0.2 if knob == "speed" else 4.0})
    out, records = augment(config, x)
    for oi, r in zip(out, records):
        f = factor(r[knob])
        assert f != 1 and abs(dominant_hz(oi[0]) - 1000 * f) <= 10  # 1 %: applied as p/q, q <= 100
        assert oi.abs().max() < 1.1 and oi[:, -100:].abs().max() > 0.5  # looped or cropped, never zero-padded


def test_eq_gain_follows_its_smooth_curve():
    impulse = torch.zeros(1, 2, RATE)
    impulse[..., RATE // 2] = 1  # mid-segment: the filter is zero-phase, so it rings both ways
    out, records = augment(AugmentConfig(eq_db=12.0), impulse, keys=KEYS[:1])
    params = records[0]["eq"]
    response = 20 * torch.log10(torch.fft.rfft(out[0, 0]).abs())
    assert out.shape == impulse.shape and torch.allclose(out[0, 0], out[0, 1])
    assert torch.allclose(response, torch.from_numpy(RandomEQ.gain_db(params, RATE)).float(), atol=0.05)
    # within the limit and without steps: at most 0.5 dB between 1 Hz bins (the steepest segment,
    # 24 dB over 60..140 Hz, moves 0.47 dB from 60 to 61 Hz)
    assert response.abs().max() <= 12.0 + 1e-3 and response.diff().abs().max() < 0.5
    bins = [round(hz) for hz in params["hz"][:-1]]  # 1 Hz bins; the last point is Nyquist
    assert torch.allclose(response[bins], torch.tensor(params["db"][:-1]), atol=0.05)


def test_reverb_adds_a_decaying_tail():
    x = burst()
    out, applied = Reverb(p=1.0, sample_rate=RATE)(x, torch_generator(3))
    rt60, tail = applied["rt60"], out[:, 400:]
    assert 0.2 <= rt60 <= 1.0 and torch.equal(replay(x, {"reverb": applied}), out)
    assert torch.equal(x[:, 400:], torch.zeros_like(tail)) and tail.abs().max() > 0.01
    # the tail's level falls by about 60 dB per rt60
    step = int(0.1 * rt60 * RATE)
    level = [10 * torch.log10(tail[:, k * step : (k + 1) * step].pow(2).mean()) for k in range(1, 5)]
    assert all(a > b for a, b in itertools.pairwise(level))
    assert abs((level[0] - level[-1]) - 60 * 0.3) < 3


def test_drc_compresses_loud_parts_only():
    noise = torch.randn(2, RATE, generator=torch.Generator().manual_seed(2))
    x = torch.cat([0.01 * noise[:, : RATE // 2], noise[:, RATE // 2 :]], -1)  # 40 dB quieter, then loud
    out, applied = DynamicRangeCompression(p=1.0, sample_rate=RATE)(x, torch_generator(5))
    assert applied["ratio"] >= 2 and -30 <= applied["threshold_db"] <= -10
    assert torch.equal(out[:, : RATE // 4], x[:, : RATE // 4]) and torch.all(out.abs() <= x.abs())

    def contrast(y: torch.Tensor) -> torch.Tensor:  # loud over quiet part, in dB
        return 10 * torch.log10(y[:, -RATE // 4 :].pow(2).mean() / y[:, : RATE // 4].pow(2).mean())
    assert contrast(out) < contrast(x) - 3


def test_mix_same_class_mixes_a_batch_mate_of_the_same_class():
    x = stereo_batch(4)
    keys, labels = ["a#0", "b#0", "c#0", "d#0"], [1, 2, 1, 3]
    out, records = augment(AugmentConfig(mix_same_class_p=1.0), x, keys=keys, labels=labels)
    assert records[0]["mix_same_class"]["partner"] == "c#0" and records[2]["mix_same_class"]["partner"] == "a#0"
    assert records[1] == records[3] == {} and torch.equal(out[1], x[1])  # no other example of its class
    for i, j in ((0, 2), (2, 0)):
        params = records[i]["mix_same_class"]
        assert 0.5 <= params["gain"] <= 1 and 0.5 <= params["partner_gain"] <= 1
        assert torch.equal(replay(x[i], records[i], partner=x[j]), out[i])
    with pytest.raises(ValueError, match="c#0"):
        replay(x[0], records[0])
    with pytest.raises(ValueError, match="labels"):
        augment(AugmentConfig(mix_same_class_p=1.0), x, keys=keys)


def test_mix_same_class_leaves_the_other_draws_to_the_key():
    """The partner depends on the batch; every other step's draws still depend on the key alone."""
    x = stereo_batch(4)
    config = AugmentConfig(mix_same_class_p=0.5, gain_db=12.0, time_shift=0.5)
    _, alone = augment(config, x[:1], keys=["a#0"], labels=[1])
    _, batched = augment(config, x, keys=["a#0", "b#0", "c#0", "d#0"], labels=[1, 1, 1, 1])
    assert alone[0]["gain"] == batched[0]["gain"] and alone[0]["time_shift"] == batched[0]["time_shift"]


def test_collate_gives_the_labels_to_mix_same_class():
    batch = {"waveform": stereo_batch(2).numpy(), "label": np.array([3, 3]), "clip_id": np.array(["a", "b"]),
             "segment": np.array([0, 0])}
    out = AugmentingCollate(Augmenter(AugmentConfig(mix_same_class_p=1.0), seed=0), epoch=0)(batch)
    assert [r["mix_same_class"]["partner"] for r in out["applied"]] == ["b#0", "a#0"]
    assert out["label"].tolist() == [3, 3]


def test_all_steps_together_replay_exactly():
    config = AugmentConfig(time_shift=0.2, speed=0.1, pitch_shift=2.0, channel_swap_p=0.5, eq_db=6.0, reverb_p=1.0,
                           drc_p=1.0, mix_same_class_p=1.0, gain_db=6.0, noise_std=0.01)
    x = stereo_batch(2)
    keys = ["a#0", "b#0"]
    out, records = augment(config, x, keys=keys, labels=[4, 4])
    assert list(records[0])[:4] == ["mix_same_class", "speed", "pitch_shift", "time_shift"]
    assert list(records[0])[-2:] == ["gain", "gaussian_noise"] and "reverb" in records[0] and "drc" in records[0]
    for i in range(2):
        assert torch.equal(replay(x[i], records[i], partner=x[1 - i]), out[i])
