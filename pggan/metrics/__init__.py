"""Quality metrics: the paper's Laplacian-pyramid sliced Wasserstein distance."""
