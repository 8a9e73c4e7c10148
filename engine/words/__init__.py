"""Sound from words (control side): the timbre vocabulary (vocabulary.toml, vocab.py), text to
patch and "more X, less Y" edits of a file or of a part while it plays (design.py), the audio
features each word is meant to move (features.py) and the optional embedding model for words
outside the vocabulary (embed.py). docs/words.md describes them."""
