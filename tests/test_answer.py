"""Call and response (engine.agents.answer): an offline session hears a phrase, the lead answers
within a beat with material from it, stops when the player comes back, deterministically."""
from fractions import Fraction

import numpy as np
import pytest

from engine.agents.answer import ANSWER, continuator, generate, tokens
from engine.config import load_config
from engine.control.session import Session
from engine.parts import LEAD
from engine.patterns.rand import rng
from engine.rt.events import K_NOTE_OFF, K_NOTE_ON

SR = 48000
BLOCK = 256

# (onset beat, pitch, length beats): calls as a player might play them (C major, with motifs)
PHRASES = (
    ((0, 60, .5), (.5, 62, .5), (1, 64, 1), (2, 67, .5), (2.5, 64, .5), (3, 62, .25),
     (3.25, 60, .75)),
    ((0, 64, .5), (.5, 67, .25), (.75, 69, .25), (1, 67, 1), (2, 64, .5), (2.5, 67, .25),
     (2.75, 69, .25), (3, 67, 1)),
    ((0, 72, .75), (.75, 71, .25), (1, 69, .75), (1.75, 67, .25), (2, 69, .75), (2.75, 71, .25),
     (3, 72, 1)),
    ((0, 67, .25), (.25, 65, .25), (.5, 64, .5), (1, 62, .5), (1.5, 64, .25), (1.75, 65, .25),
     (2, 67, .5), (2.5, 72, 1.5)),
)
START = 4      # the call starts on bar 1


@pytest.fixture
def cfg(monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parent.parent)
    c = load_config("config.toml", environ={})
    c["band"]["answer"] = True
    return c


def play(cfg, phrase, seed=1, again: float | None = None, after_beats=8.0):
    """A session (no audio) hearing `phrase` from beat START, and, if `again` is given, one
    more note at that beat, held 3 beats. Returns (session, lead rows as (beat, kind, note),
    phrase end)."""
    cfg["band"]["seed"] = seed
    s = Session(cfg, SR)
    rows = []
    send = s.scheduler.send
    s.scheduler.send = lambda r: (rows.append(r.copy()), send(r))
    at = s.clock.sample_at
    events = []
    for b, p, d in phrase:
        b = Fraction(b).limit_denominator(16) + START
        d = Fraction(d).limit_denominator(16)
        events += [(at(b), K_NOTE_ON, p), (at(b + d) - 20, K_NOTE_OFF, p)]
    end = max(Fraction(b).limit_denominator(16) + Fraction(d).limit_denominator(16)
              for b, _, d in phrase) + START
    if again is not None:
        events += [(at(Fraction(again)), K_NOTE_ON, 60), (at(Fraction(again) + 3), K_NOTE_OFF, 60)]
    now = 0
    for t, kind, p in sorted(events):
        while now + BLOCK <= t:
            now += BLOCK
            s.scheduler.advance(now)
        s.player_note(kind, p, 0.7, t, 1)
    stop = at(end + Fraction(after_beats))
    while now < stop:
        now += BLOCK
        s.scheduler.advance(now)
    r = np.concatenate(rows)
    r = r[r[:, 2] == LEAD]
    lead = [(Fraction(round(s.clock.beat_at(int(x[0])) * 48), 48), int(x[1]), int(x[3]))
            for x in r]     # (beats back from samples, to the nearest 1/48 beat)
    return s, lead, end


def onsets(lead):
    return [(b, n) for b, k, n in lead if k == K_NOTE_ON]


def test_the_answer_starts_within_a_beat_of_the_phrase_end(cfg):
    for phrase in PHRASES:
        _, lead, end = play(cfg, phrase)
        ons = onsets(lead)
        assert ons, "no answer"
        assert all(b >= end for b, _ in ons)               # nothing over the call
        assert end < ons[0][0] <= end + 1


def test_off_it_stays_silent_and_the_address_turns_it_on(cfg):
    cfg["band"]["answer"] = False
    s, lead, _ = play(cfg, PHRASES[0])
    assert s.value(ANSWER) == 0.0 and onsets(lead) == []
    assert ANSWER in s.addresses() and s.param(ANSWER).choices == ("off", "on")
    with pytest.raises(ValueError):
        s.set(ANSWER, "maybe")


def _ngrams(seq, n):
    return {tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)}


def _shared(call, other):
    """The share of `other`'s interval bigrams and rhythm (inter-onset) bigrams and trigrams
    also found in `call`; each note a (beat, pitch)."""
    def feats(notes):
        ps = [p for _, p in notes]
        bs = [b for b, _ in notes]
        iv = [b - a for a, b in zip(ps, ps[1:])]
        ioi = [b - a for a, b in zip(bs, bs[1:])]
        return _ngrams(iv, 2), _ngrams(ioi, 2) | _ngrams(ioi, 3)
    c, o = feats(call), feats(other)
    return np.mean([len(ob & cb) / max(1, len(ob)) for cb, ob in zip(c, o)])


def _random_phrase(seed, n, start):
    """`n` notes of C major in the call's register on a random sixteenth rhythm."""
    r = rng(seed, "test", "random phrase")
    scale = [p for p in range(60, 74) if p % 12 in (0, 2, 4, 5, 7, 9, 11)]
    out, b = [], start
    for _ in range(n):
        out.append((b, r.choice(scale)))
        b += Fraction(r.choice((1, 2, 3, 4)), 4)
    return out


def test_the_answer_shares_the_calls_intervals_and_rhythms_more_than_random_phrases(cfg):
    answer_share, random_share = [], []
    for i, phrase in enumerate(PHRASES):
        call = [(Fraction(b).limit_denominator(16), p) for b, p, _ in phrase]
        for seed in (1, 2, 3):
            _, lead, end = play(cfg, phrase, seed=seed)
            ans = onsets(lead)
            assert len(ans) >= 2
            answer_share.append(_shared(call, ans))
            random_share.append(_shared(call, _random_phrase(100 * i + seed, len(ans), end)))
    a, r = float(np.mean(answer_share)), float(np.mean(random_share))
    print(f"n-grams shared with the call: answer {a:.2f}, random phrase in the key {r:.2f}")
    assert a >= max(r + 0.15, 2 * r), (a, r)


def test_the_answer_stops_when_the_player_plays_again(cfg):
    phrase = PHRASES[1]
    _, full, end = play(cfg, phrase)
    first = onsets(full)[0][0]
    later = [b for b, _ in onsets(full) if b >= first + 1]
    assert later                         # uncut, the answer goes on past the player's return
    s, cut, _ = play(cfg, phrase, again=float(first + 1))
    ons = onsets(cut)
    lookahead_beats = Fraction(s.scheduler.lookahead * 112, SR * 60) + Fraction(1, 4)
    back = first + 1 + lookahead_beats
    assert ons and not [b for b, _ in ons if back <= b <= first + 4]   # silent while they play
    assert [o for o in ons if o[0] < back] == [o for o in onsets(full) if o[0] < back]
    assert [b for b, _ in ons if b > first + 4]      # and the new phrase is answered in turn


def test_the_same_input_and_seed_give_the_same_answer(cfg):
    a = play(cfg, PHRASES[2], seed=7)[1]
    b = play(cfg, PHRASES[2], seed=7)[1]
    assert a == b and a
    others = [play(cfg, PHRASES[2], seed=s)[1] for s in (8, 9, 10)]
    assert any(o != a for o in others)


@pytest.mark.parametrize("again", [None, 9.0, 10.5])
def test_no_answer_note_sticks(cfg, again):
    _, lead, _ = play(cfg, PHRASES[3], again=again)
    sounding: dict[int, Fraction] = {}
    for b, kind, n in sorted(lead, key=lambda x: (x[0], x[1] == K_NOTE_ON)):
        if kind == K_NOTE_ON:
            assert n not in sounding
            sounding[n] = b
        else:
            assert sounding.pop(n) <= b
    assert sounding == {}


def test_the_model_backs_off_and_never_loops_on_one_token():
    call = tokens([(Fraction(i, 2), 60 + (i % 3), Fraction(1, 2), 0.6) for i in range(8)])
    model = continuator([call])
    assert max(len(k) for k in model if k[0] != "i") == 4          # orders 1..4
    out = generate(model, call, Fraction(8), rng(1, "t"))
    assert len(out) >= 2 and all(t in call for t in out)          # only material heard
    same = [(0, 2, 2, 2)] * 4 + [(2, 1, 1, 1)]
    looped = generate(continuator([same]), same, Fraction(4), rng(1, "t"))
    assert not any(looped[i] == looped[i + 1] == looped[i + 2] for i in range(len(looped) - 2))


def test_a_source_gone_with_keys_down_does_not_block_later_answers(cfg):
    cfg["band"]["seed"] = 1
    s = Session(cfg, SR)
    s.player_note(K_NOTE_ON, 50, 0.7, s.clock.sample_at(Fraction(1)), 2)   # a device unplugged
    s.conductor.source_gone(2)
    assert s.ctx.answer.held == {}
    s.player_note(K_NOTE_ON, 62, 0.7, s.clock.sample_at(Fraction(2)), 1)
    s.player_note(K_NOTE_OFF, 62, 0.0, s.clock.sample_at(Fraction(3)), 1)
    assert [a.begin for a in s.ctx.answer.answers] == [Fraction(7, 2)]


def test_a_phrase_with_no_gap_keeps_only_its_latest_notes():
    from engine.agents.answer import MAX_PHRASE_NOTES, CallResponse
    from engine.agents.base import StaticContext
    calls, ctx = CallResponse(), StaticContext(seed=1)
    for i in range(3 * MAX_PHRASE_NOTES):         # legato for ever: a key always down
        b = Fraction(i, 2)
        calls.note(True, 60 + i % 7, 0.6, b, b, ctx)
        calls.note(False, 60 + (i - 1) % 7, 0.0, b + Fraction(1, 8), b, ctx) if i else None
    assert len(calls.current) == MAX_PHRASE_NOTES and calls.phrases == []
