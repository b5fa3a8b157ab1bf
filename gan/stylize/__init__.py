"""Neural style transfer: the options both ways share (options), colour preservation (colour), optimisation
(optimise, Gatys et al.) and the file loop of stylize.py (files; a content + style network runs through
gan.inference.feedforward)."""
