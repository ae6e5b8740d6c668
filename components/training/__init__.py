"""Stage 3: train the candidate (torch, seeded, GPU when present), register it experimental."""
