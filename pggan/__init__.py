"""pggan: Progressive Growing of GANs (Karras et al., ICLR 2018) in PyTorch."""

__version__ = "0.1.0"
