"""Quality metrics: the paper's Laplacian-pyramid SWD and MS-SSIM, FID, and the evaluation of a whole run."""
