"""The official release's pickles: a restricted reader that runs nothing, and pggan-import."""
