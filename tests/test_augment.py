"""Seeded augmentation: same seed and example key, same draws; and the SpecAugment contract."""
import torch

from trainables.augment import AugmentConfig, Augmenter, SpecAugment
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
