"""Training: the one loop (trainer), the checkpoint schema's only owner (checkpoint), and tracking."""
