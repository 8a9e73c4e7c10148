"""Listening (control side): what the band hears in the player's notes — the key
(`engine.listen.key`), the tempo, beat and downbeat of their playing (`engine.listen.tempo`)
and, for a MIDI file played as the player, the whole score ahead (`engine.listen.score`: its
tempo map, meter, downbeat and the harmony of every beat)."""
