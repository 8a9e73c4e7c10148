"""The band's parts (control side). A part is one mixer channel and one instrument."""

PARTS = ("keys", "bass", "chords", "lead", "drums")
PART_INDEX = {name: i for i, name in enumerate(PARTS)}
KEYS, BASS, CHORDS, LEAD, DRUMS = range(len(PARTS))

# General MIDI drum notes that the drum machine synthesises (engine.rt.drums).
DRUM_NOTES = {
    "kick": 36,
    "rim": 37,
    "snare": 38,
    "clap": 39,
    "closed_hat": 42,
    "tom_low": 45,
    "open_hat": 46,
    "tom_mid": 47,
    "tom_high": 50,
}
