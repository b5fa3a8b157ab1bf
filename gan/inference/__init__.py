"""Inference: generators from any accepted file (load), the one engine (engine: device, precision, memory
layout, band policy) with its precision policy, bands (tiling, normstats), folders (translate), videos (video,
temporal), ONNX runtime and export."""
