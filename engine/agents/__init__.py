"""Generative agents (control side): each renders one part bar by bar from a `Context`.

`Band` plays them together; `DemoSong` is a one-minute arrangement for when nobody plays;
`Arpeggiator` arpeggiates the player's held notes or the harmony on the band's clock.
"""

from .arp import Arpeggiator
from .arrangement import ArrangedContext, Band, DemoSong, Section
from .base import (
    CUES,
    STYLE_TEMPO_BPM,
    STYLES,
    Agent,
    BarInfo,
    Context,
    LiveContext,
    StaticContext,
)
from .bass import BassAgent
from .chords import ChordAgent
from .drums import DrumAgent
from .lead import LeadAgent

__all__ = [
    "Agent", "BarInfo", "Context", "StaticContext", "LiveContext", "STYLES", "STYLE_TEMPO_BPM",
    "CUES", "DrumAgent", "BassAgent", "ChordAgent", "LeadAgent", "Band", "DemoSong", "Section",
    "ArrangedContext", "Arpeggiator",
]
