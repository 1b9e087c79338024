"""SoundFusion's augmentation grid (Prodan et al., section VI.A).

The paper's best setting is Gaussian noise std 0.02, gain U(-12, 12) dB, SpecAugment with
probability 1, maximum mask 0.3 of the axis and 2 frequency + 2 time masks; it reports that 3
masks were always worse and a higher probability always better. The paper does not list its
grid values, so the SpecAugment choices follow docs/MODELS.md's recommended grid
(p 0.25..1.0, masks 1..3, max 0.1..0.3) and the waveform choices bracket the best values
(0 = off). 3 x 3 x 4 x 3 x 3 x 3 = 972 configurations.
"""
from search_spaces import SearchSpace, register_space

SPACE = register_space(
    SearchSpace(
        name="augmentation",
        description="SoundFusion augmentation grid: noise, gain, SpecAugment p / mask size / mask counts",
        choices={
            "noise_std": (0.0, 0.01, 0.02),
            "gain_db": (0.0, 6.0, 12.0),
            "specaug_p": (0.25, 0.5, 0.75, 1.0),
            "specaug_max_pct": (0.1, 0.2, 0.3),
            "specaug_freq_masks": (1, 2, 3),
            "specaug_time_masks": (1, 2, 3),
        },
    )
)
