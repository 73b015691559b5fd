"""The method's networks and losses, and the checkpoint file that carries them."""
