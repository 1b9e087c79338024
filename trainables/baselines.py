"""Classic baselines that need no training loop: MFCC statistics + SVM.

The MFCC summary is Pons and Serra's baseline: 20 MFCCs with deltas and delta-deltas, mean
and standard deviation over time, 120 values per clip.
"""
import numpy as np
import torch
import torchaudio

MFCC = "mfcc"
"""The name of the MFCC-statistics baseline where a front-end is chosen (the screening's ``arch``)."""


def mfcc_statistics(waveform: np.ndarray, sample_rate: int, n_mfcc: int = 20) -> np.ndarray:
    """``(channels, samples)`` or ``(samples,)`` audio -> ``6 * n_mfcc`` summary (mono mix)."""
    x = torch.as_tensor(np.asarray(waveform, dtype=np.float32))
    if x.dim() == 2:
        x = x.mean(0)
    mfcc = torchaudio.transforms.MFCC(sample_rate, n_mfcc=n_mfcc,
                                      melkwargs={"n_fft": 1024, "hop_length": 512, "n_mels": 64})(x)
    delta = torchaudio.functional.compute_deltas(mfcc)
    frames = torch.cat([mfcc, delta, torchaudio.functional.compute_deltas(delta)])
    return torch.cat([frames.mean(1), frames.std(1)]).numpy()
