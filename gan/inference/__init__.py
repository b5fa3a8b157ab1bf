"""Inference: the networks of any model source (load, over gan.checkpoint.source), the one engine (engine: the
runtime policy of gan.runtime applied to a net, the band policy, strength), bands (tiling, normstats), folders
(translate), videos (video, temporal), a content + style network on photos (feedforward), stylize.py's file loop
(stylize_files) and export. It imports nothing of gan.training."""
