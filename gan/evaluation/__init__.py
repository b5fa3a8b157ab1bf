"""Evaluation: FID, KID, MiFID and edge-SSIM scorers and image sets fed into them (metrics); where a generator's
loss terms push its output against a known target (alignment)."""
