"""Training: the one loop (trainer) and its records (tracking). It writes runs through gan.checkpoint and runs
under the policy of gan.runtime; it imports nothing of gan.inference."""
