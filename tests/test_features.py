"""Front-ends: the shape each paper's recipe gives, and the DCASE2020 delta stack."""
import pytest
import torch

from trainables.features import FRONTENDS, Deltas, MinMaxScale, create_frontend

# kind -> (sample rate, seconds, audio channels, expected (C', F, T')) on the papers' inputs.
SHAPES = {
    "waveform": (22050, 1.0, 1, (1, 22050)),
    "waveform+logmel": (44100, 1.0, 2, (2, 44100)),
    "logmel": (44100, 5.0, 2, (2, 64, 431)),
    "stft": (44100, 1.0, 1, (1, 513, 87)),
    "logmel_deltas": (44100, 10.0, 1, (3, 128, 423)),
    "mel96": (12000, 350000 / 12000, 1, (1, 96, 1368)),
    "l3_linear": (48000, 1.0, 1, (1, 257, 197)),
    "l3_mel128": (48000, 1.0, 1, (1, 128, 199)),
    "l3_mel256": (48000, 1.0, 1, (1, 256, 199)),
    "logmel48": (22050, 44356 / 22050, 1, (1, 48, 174)),
}


@pytest.mark.filterwarnings("ignore:At least one mel filterbank has all zero values")
@pytest.mark.parametrize("kind", sorted(FRONTENDS))
def test_frontend_shapes(kind):
    rate, seconds, channels, shape = SHAPES[kind]
    wave = torch.randn(2, channels, round(seconds * rate)) * 0.1
    out = create_frontend(kind, rate)(wave)
    assert out.shape == (2, *shape)
    assert torch.isfinite(out).all()


def test_dcase_stereo_channels_and_scale():
    out = create_frontend("logmel_deltas", 48000)(torch.randn(1, 2, 480000) * 0.1)
    assert out.shape == (1, 6, 128, 461)
    static = out[:, :2]
    assert 0.0 <= float(static.min()) and float(static.max()) <= 1.0


def test_deltas_of_a_ramp_and_scale():
    ramp = torch.arange(20.0).expand(1, 1, 3, 20)
    out = Deltas()(ramp)
    assert out.shape == (1, 3, 3, 12)
    assert torch.equal(out[:, :1], ramp[..., 4:-4])
    assert torch.allclose(out[:, 1], torch.ones(1, 3, 12))
    assert torch.allclose(out[:, 2], torch.zeros(1, 3, 12))
    scaled = MinMaxScale()(ramp)
    assert float(scaled.min()) == 0.0 and float(scaled.max()) == 1.0


def test_logmel_peak_scale_ignores_gain_and_padding_length():
    """``peak`` dB sits in [-2, 2] with the loudest bin at 2, does not move with the gain, and a
    hit keeps its values whatever silence follows it (``standardize`` rescales the hit)."""
    torch.manual_seed(0)
    hit = torch.randn(1, 1, 8000) * torch.exp(-torch.arange(8000) / 1500.0)
    short, long = (torch.nn.functional.pad(hit, (0, pad)) for pad in (8000, 24000))
    peak = create_frontend("logmel", 16000, logmel_scale="peak")
    out = peak(short)
    assert float(out.max()) == pytest.approx(2.0) and float(out.min()) >= -2.0
    assert torch.allclose(peak(short * 10), out, atol=1e-4)
    frames = 8000 // 512  # frames that see only the hit
    assert torch.allclose(peak(long)[..., :frames], out[..., :frames], atol=1e-4)
    standard = create_frontend("logmel", 16000)
    assert not torch.allclose(standard(long)[..., :frames], standard(short)[..., :frames], atol=1e-2)
    with pytest.raises(ValueError, match="log-mel scale 'max': choose one of standardize, peak"):
        create_frontend("logmel", 16000, logmel_scale="max")
