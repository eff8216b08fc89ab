"""Names shared by the audio datasets and the offline keyword set: Speech Commands' words and special classes,
its background-noise folder, and the audio file extensions the loaders read."""

from __future__ import annotations

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one",
                 "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "backward", "forward", "follow",
                 "learn", "visual")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
NOISE_DIR = "_background_noise_"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
