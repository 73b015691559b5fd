"""Which dataset a run was trained on: a fingerprint saved in every checkpoint, compared on resume.

Resuming with ``--data`` pointing at other images (a one-channel dataset, a
smaller pyramid, a re-made dataset) would otherwise fail deep in
``load_state_dict`` or, worse, silently train on new data. The fingerprint is
taken from the dataset's ``meta`` record (written once by ``pggan-prepare``),
so it costs nothing to compute and survives copying the dataset elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pggan.errors import UserError

#: Fields compared on resume, with the words used to report a difference.
_FIELDS = (("channels", "channels"), ("resolution", "top resolution"), ("count", "images"))


def dataset_fingerprint(meta: dict[str, Any], path: str) -> dict[str, Any]:
    """Channels, top resolution, image count, creation time and a digest of the whole meta record."""
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode("utf-8")).hexdigest()
    return {
        "path": str(path),
        "channels": int(meta["channels"]),
        "resolution": max(int(r) for r in meta["resolutions"]),
        "count": int(meta["count"]),
        "created": meta.get("created"),
        "meta_sha256": digest,
    }


def dataset_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between the run's dataset and this one, in words; empty when they are the same dataset."""
    if saved.get("meta_sha256") == current.get("meta_sha256"):
        return []  # the same dataset, wherever it lives now
    differences = [
        f"{words} {saved.get(key)} → {current.get(key)}" for key, words in _FIELDS if saved.get(key) != current.get(key)
    ]
    if not differences:
        differences.append(f"created {saved.get('created')} → {current.get('created')} (a re-made dataset)")
    return differences


def check_same_dataset(
    saved: dict[str, Any] | None, current: dict[str, Any], model_channels: int, allow_new_data: bool
) -> None:
    """Refuse to resume on another dataset unless ``allow_new_data``; other channels are refused always."""
    if current["channels"] != model_channels:
        raise UserError(
            f"the run's networks make {model_channels}-channel images, but {current['path']} holds "
            f"{current['channels']}-channel images: it cannot train on them (not even with --allow-new-data)"
        )
    if saved is None or allow_new_data:
        return
    differences = dataset_differences(saved, current)
    if differences:
        raise UserError(
            f"--data {current['path']} is not the dataset this run was trained on ({saved.get('path')}): "
            f"{'; '.join(differences)}. Pass --allow-new-data to continue on new data on purpose (fine-tuning)"
        )
