"""The default mix is stereo (the demo's inter-channel correlation 0.3..0.85) and still sums
to mono: no part loses more than 3 dB when L and R are added."""
import numpy as np

from engine.config import load_config
from engine.control.offline import OfflineDriver
from engine.control.session import Session
from engine.parts import PARTS

SR = 48000
SECONDS = 30.0


def _demo(solo=None):
    cfg = load_config("config.toml", environ={})
    if solo is not None:
        for p in PARTS:
            if p != solo:
                cfg["mix"][f"{p}_gain_db"] = -70.0
    s = Session(cfg, SR, demo=True)
    return OfflineDriver(s.state, 512, s.scheduler.advance).render(int(SECONDS * SR))


def _mono_loss_db(x):
    stereo = np.mean(x[:, 0] ** 2 + x[:, 1] ** 2) / 2
    mono = np.mean(((x[:, 0] + x[:, 1]) / 2) ** 2)
    return 10 * np.log10(stereo / mono)


def test_the_demo_is_wide_and_mono_compatible():
    x = _demo().astype(np.float64)
    corr = np.corrcoef(x[:, 0], x[:, 1])[0, 1]
    assert 0.3 <= corr <= 0.85, corr
    heard = 0
    for part in PARTS:
        y = _demo(part).astype(np.float64)
        if np.sqrt(np.mean(y ** 2)) < 1e-3:
            continue                              # a part the demo's first bars leave out
        heard += 1
        assert _mono_loss_db(y) <= 3.0, (part, _mono_loss_db(y))
    assert heard >= 3
