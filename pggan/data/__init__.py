"""Images → dataset → batches: image files, the LMDB pyramid, pggan-prepare, --verify, the batch stream."""
