"""Pictures from a trained generator: latents by seed, semantic directions, and the training video."""
