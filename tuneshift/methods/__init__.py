"""The three explanation methods of Wu et al. 2024: attribution (A), heads (B), concepts (C)."""
