"""WGAN-GP with the paper's drift term (Karras et al. 2018, appendix A.1).

Both functions take the critic as a callable ``scores = critic(images)`` so
that the training loop can pass a DDP-wrapped network, a network bound to the
current (resolution, alpha), or a toy critic in tests alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pggan.defaults import DRIFT_EPSILON, GP_LAMBDA, GP_TARGET

__all__ = ["DRIFT_EPSILON", "GP_LAMBDA", "GP_TARGET", "d_loss", "g_loss", "gradient_penalty"]

Critic = Callable[[torch.Tensor], torch.Tensor]


def gradient_penalty(
    critic: Critic,
    reals: torch.Tensor,
    fakes: torch.Tensor,
    mix: torch.Tensor | None = None,
    gp_lambda: float = GP_LAMBDA,
    gp_target: float = GP_TARGET,
    image_scale: float = 1.0,
) -> torch.Tensor:
    """Per-sample ``λ/target² · (‖∇D(x̂)‖₂ / f − target)²`` at ``x̂ = x + u·(G(z) − x)``, with f = ``image_scale``.

    ``mix`` holds one u ∈ [0, 1) per sample (drawn uniformly when None). The
    gradient is taken with ``create_graph=True`` so the penalty itself can be
    backpropagated into the critic's parameters (double backward).

    ``image_scale`` f measures the gradient in the official release's image
    space without building it. The official D always receives full-size
    images: x̂ nearest-upsampled by f = max_resolution / resolution, which D
    average-pools back by f. Each native pixel then becomes f² full-size pixels
    whose gradient is the native one divided by f², so the full-size norm is
    ``sqrt(f² · (g / f²)²) = g / f``. f = 1 is the penalty on native pixels.
    """
    if mix is None:
        mix = torch.rand(reals.shape[0], device=reals.device, dtype=torch.float32)
    u = mix.to(reals.dtype).reshape(-1, *([1] * (reals.ndim - 1)))
    # x̂ is built from detached inputs: the penalty acts on D's parameters only, never on G. Under --amp the
    # fakes arrive in bf16 and the reals in float32; lerp does not promote, so x̂ takes the reals' precision.
    # A view of the leaf, not the leaf itself: autograd.grad on a non-leaf also works under FlopCounterMode.
    mixed = torch.lerp(reals.detach(), fakes.detach().to(reals.dtype), u).requires_grad_(True).view_as(reals)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    # The norm in float32 at least, whatever the gradient's dtype (bf16 under --amp when the images are bf16): a
    # sum of R² squares in an 8-bit mantissa would blur the penalty, which acts on the norm's distance from 1.
    norms = grad.flatten(1).to(torch.promote_types(grad.dtype, torch.float32)).norm(dim=1)
    if image_scale != 1.0:
        norms = norms / image_scale
    return (norms - gp_target).square() * (gp_lambda / gp_target**2)


def d_loss(
    critic: Critic,
    reals: torch.Tensor,
    fakes: torch.Tensor,
    mix: torch.Tensor | None = None,
    gp_lambda: float = GP_LAMBDA,
    gp_target: float = GP_TARGET,
    drift: float = DRIFT_EPSILON,
    joint: bool = False,
    image_scale: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Critic loss ``E[D(G(z))] − E[D(x)] + λ·GP + ε_drift·E[D(x)²]``.

    Returns the scalar loss and detached per-term means for logging (``wdist``
    is ``E[D(x)] − E[D(G(z))]``, the Wasserstein estimate the paper plots).

    ``joint=True`` scores reals and fakes in one critic call on the
    concatenated batch (one pass instead of two: bigger, faster convolutions).
    Only use it when no sample's score depends on other samples across the
    real/fake boundary, e.g. when minibatch-stddev groups divide each half.
    """
    if joint:
        scores = critic(torch.cat([reals, fakes.detach()])).float().reshape(-1)
        real_scores, fake_scores = scores.split([reals.shape[0], fakes.shape[0]])
    else:
        real_scores = critic(reals).float().reshape(-1)
        fake_scores = critic(fakes.detach()).float().reshape(-1)
    penalty = gradient_penalty(critic, reals, fakes, mix, gp_lambda, gp_target, image_scale)
    drift_term = real_scores.square() * drift
    loss = (fake_scores - real_scores + penalty + drift_term).mean()
    stats = {
        "d_loss": loss.detach(),
        "wdist": (real_scores.mean() - fake_scores.mean()).detach(),
        "gp": penalty.mean().detach(),
        "drift": drift_term.mean().detach(),
        "real_score": real_scores.mean().detach(),
        "fake_score": fake_scores.mean().detach(),
    }
    return loss, stats


def g_loss(critic: Critic, fakes: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Generator loss ``−E[D(G(z))]``."""
    loss = -critic(fakes).float().mean()
    return loss, {"g_loss": loss.detach()}
