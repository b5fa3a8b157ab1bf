"""Evaluation: FID, KID, MiFID and edge-SSIM scorers, and image sets fed into them (metrics)."""
