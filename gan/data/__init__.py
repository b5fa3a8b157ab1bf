"""Data: image files (io: find, decode, convert, write, plan outputs), training datasets and loaders
(datasets), and the built-in sample dataset (sample)."""
