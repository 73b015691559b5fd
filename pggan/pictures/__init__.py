"""What a generator draws: latents by seed, semantic directions, grids, videos (walks, morphs, growth), pggan-sample."""
