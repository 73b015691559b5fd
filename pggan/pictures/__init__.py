"""What a generator draws: latents by seed, grids and PNGs, videos, the pggan-sample command."""
