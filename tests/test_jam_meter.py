"""A jam in a time signature of its own ([band] meter, `--meter`): the band's bars have the
meter's length and its drums pulse in the meter's groups (6/8: two dotted quarters)."""
from fractions import Fraction

import pytest

from engine.config import load_config
from engine.control.session import Session
from engine.meter import parse_jam_meter
from engine.parts import DRUM_NOTES
from engine.tomldata import DataError

SR = 48000


def _onsets(session, part, bars):
    """(beat, note) of a part's notes over the first `bars` bars of the session's meter."""
    end = session.clock.meter.bar_start(bars)
    notes = session.band.query(Fraction(0), end, session.ctx)
    return [(n.begin, n.note) for n in notes if n.part == part]


@pytest.mark.parametrize("sig, beats, pulses", [("6/8", 3, (6, 6)), ("12/8", 6, (6,) * 4),
                                                ("3/4", 3, (4, 4, 4)), ("5/4", 5, (4,) * 5)])
def test_a_jam_plays_bars_of_the_meter(cfg, sig, beats, pulses):
    cfg["band"]["meter"] = sig
    s = Session(cfg, SR)
    m = s.clock.meter
    assert s.ctx.meter is m and s.clock.beats_per_bar == beats
    assert [m.bar_start(b) for b in range(4)] == [b * beats for b in range(4)]
    assert m.pulses(0) == pulses
    kicks = {b for b, note in _onsets(s, "drums", 8) if note == DRUM_NOTES["kick"]}
    # a kick on every downbeat, and nothing of the band outside the meter's bars
    assert all(Fraction(bar * beats) in kicks for bar in range(8))


def test_six_eight_puts_the_backbeat_on_the_second_dotted_quarter(cfg):
    cfg["band"]["meter"] = "6/8"
    s = Session(cfg, SR)
    snares = [b for b, note in _onsets(s, "drums", 8) if note == DRUM_NOTES["snare"]]
    assert snares
    # within each 3-beat bar, the backbeat falls on beat 1.5 (the second pulse), not on 1 or 2
    # as a 4/4 pattern cut short would put it
    positions = {(b % 3) for b in snares}
    assert Fraction(3, 2) in positions
    assert not positions & {Fraction(1), Fraction(2)}


def test_the_meter_is_validated_with_file_line_and_field(tmp_path):
    for bad in ("7/8", "6/9", "x/4", "1/4", "13/4", "44"):
        p = tmp_path / "c.toml"
        p.write_text(f'[band]\nmeter = "{bad}"\n')
        with pytest.raises(DataError) as e:
            load_config(p)
        assert "c.toml" in str(e.value) and ":2" in str(e.value) and "meter" in str(e.value)


def test_parse_jam_meter():
    assert parse_jam_meter("") is None
    assert parse_jam_meter(" 6/8 ") == (6, 8)
    assert parse_jam_meter("4/4") == (4, 4)


def test_the_cli_flag_sets_it():
    from engine.cli import _overrides, _parser
    args = _parser().parse_args(["jam", "--meter", "6/8"])
    assert _overrides(args)["band"]["meter"] == "6/8"
    cfg = load_config(None, overrides=_overrides(args))
    assert cfg["band"]["meter"] == "6/8"
    with pytest.raises(DataError, match="meter"):
        load_config(None, overrides=_overrides(_parser().parse_args(["jam", "--meter", "7/8"])))


def test_beats_per_bar_alone_still_makes_a_jam(cfg):
    """[band] beats_per_bar = 3 (no meter): a session of 3/4 bars (it used to refuse to start:
    the harmony tracker kept 4)."""
    cfg["band"]["beats_per_bar"] = 3
    s = Session(cfg, SR)
    assert s.clock.meter.bar_start(2) == 6 and s.ctx.harmony.beats_per_bar == 3
    kicks = {b for b, note in _onsets(s, "drums", 4) if note == DRUM_NOTES["kick"]}
    assert {0, 3, 6, 9} <= kicks
