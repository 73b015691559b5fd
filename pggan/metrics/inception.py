"""The Inception-v3 network of the FID, from a weights file the user passes: verified, code-free, never downloaded.

The network is torch-fidelity's ``FeatureExtractorInceptionV3``, chosen over pytorch-fid's because it runs the
graph as the TF FID code does, including TensorFlow 1's bilinear resize to 299² (pytorch-fid uses PyTorch's
resize, which differs). Its constructor would download the weights, or unpickle a file with
``weights_only=False``; neither happens here: the network is built with no weights loaded, and the user's file
is read with ``torch.load(weights_only=True)``, its layout checked key by key and shape by shape, and its SHA-256
compared with the standard file's.

The standard file is pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``, re-published by torch-fidelity as
``weights-inception-2015-12-05-6726825d.pth`` (the same 95,628,359 bytes). Torch-hub names end with the start of
the file's SHA-256, ``6726825d``, which :data:`STANDARD_SHA256` begins with.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from pggan.errors import UserError
from pggan.input_files import check_stored_zip

STANDARD_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
STANDARD_NAMES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
FEATURE_DIM = 2048  # pool3, the layer the FID is defined on
_OPTIONAL_SUFFIX = ".num_batches_tracked"  # BatchNorm counters: unused at inference, absent from some saves


@dataclass
class Inception:
    """The feature network and what is known about its weights."""

    network: torch.nn.Module
    sha256: str
    verified: bool  # the standard file: numbers comparable with published ones

    @torch.inference_mode()
    def features(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 images (B, 1 or 3, H, W) of any size → pool3 features (B, 2048), float32, on the network's device.

        Grayscale is replicated to RGB, as the TF FID code's image conversion does.
        """
        device = next(self.network.parameters()).device
        images = images_uint8.to(device)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        (features,) = self.network(images.contiguous())
        return features


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_unloaded_network() -> torch.nn.Module:
    """torch-fidelity's InceptionV3 with random weights; its own weight loading (and download) is bypassed."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args: object, **kwargs: object) -> None:  # the constructor's call: skipped
            return None

    empty = io.BytesIO()
    torch.save({}, empty)  # a path is given, so the constructor never takes its download branch
    empty.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = _Unloaded("pggan-inception-v3", ["2048"], feature_extractor_weights_path=empty)
    network.__class__ = FeatureExtractorInceptionV3  # ordinary loading from here on
    return network


def _check_layout(state: object, expected: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not an Inception-v3 FID weights file (not a state dict of tensors)")
    missing = [k for k in expected if k not in state and not k.endswith(_OPTIONAL_SUFFIX)]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        what = f"{len(missing)} tensors missing (e.g. {missing[0]})" if missing else f"unexpected {extra[0]}"
        raise UserError(f"{path} is not an Inception-v3 FID weights file: {what}")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape or tensor.is_floating_point() != expected[key].is_floating_point():
            raise UserError(
                f"{path} is not an Inception-v3 FID weights file: {key} is {tuple(tensor.shape)} {tensor.dtype}, "
                f"expected {tuple(expected[key].shape)}"
            )
    return {k: state.get(k, expected[k]) for k in expected}


def load_inception(
    path: str | os.PathLike[str], allow_unverified: bool = False, device: str | torch.device = "cpu"
) -> Inception:
    """Check and load the weights file at ``path`` into the FID network, on ``device``.

    Order of checks: the file exists and loads without running code; its layout is the standard one (else a
    UserError before anything is computed); its SHA-256 is the standard file's, or ``allow_unverified``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Inception weights file not found: {path}" + (" (a directory)" if path.is_dir() else ""))
    check_stored_zip(path, "weights file", zip_only=False)  # no compressed member torch would inflate in full
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a loadable weights file ({reason})") from None
    network = build_unloaded_network()
    state = _check_layout(state, network.state_dict(), path)
    sha256 = file_sha256(path)
    verified = sha256 == STANDARD_SHA256
    if not verified and not allow_unverified:
        raise UserError(
            f"{path} is not the standard Inception weights file (SHA-256 {sha256[:16]}…, expected "
            f"{STANDARD_SHA256[:16]}…); pass --allow-unverified to use it, knowing its FIDs are not comparable "
            "with published ones"
        )
    network.load_state_dict(state, strict=True)
    network.to(device).eval().requires_grad_(False)
    return Inception(network, sha256, verified)


def write_random_weights(path: str | os.PathLike[str], seed: int = 0) -> None:
    """A weights file in the standard layout with random values: for tests and benchmarks, never for numbers."""
    torch.manual_seed(seed)
    network = build_unloaded_network()
    for module in network.modules():  # give BatchNorm realistic statistics so activations stay in range
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 1.5)
            module.running_mean.normal_(0, 0.1)
    torch.save({k: v.clone() for k, v in network.state_dict().items()}, path)
