"""The two networks this library is measured against, rebuilt from their published descriptions.

Both are conditional VAEs: the labels, one-hot and concatenated, join the encoder's image
features and z at the decoder's input, and pixels in [0, 1] are scored by a Bernoulli
likelihood (binary cross-entropy summed over the pixels), as the originals do. Neither knows
the causal graph: its labels are a flat vector.

- :class:`TutorialConvVAE`, the "Causal Scene Generation" tutorial's convolutional VAE at
  64x64: six conv(kernel 4, stride 2, padding 1) + batch-norm + ReLU blocks with 32, 64, 128,
  256, 512, 1024 channels down to a 1x1x1024 vector; z of 128; a linear layer back to 1024
  and six mirrored transposed-conv blocks to the image (the last without batch-norm, with a
  sigmoid). Batch 32, Adam 1e-3.
- :class:`CourseMLPVAE`, the course notebooks' MLP VAE: image and labels -> 1000 -> 1000 ->
  z of 50; decoder z and labels -> 1000 -> 1000 -> 1000 -> image; softplus activations.
  Batch 256, Adam 1e-3.

Each exposes ``loss(x, y)`` (the negative ELBO per image of float pixels in [0, 1], shape
(B, C, H, W), and one-hot labels (B, L)), ``decode(z, y)`` (pixel means in [0, 1]) and the
class attributes ``batch_size``, ``z_dim`` and ``lr``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row, in closed form."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)


class _CVAE(nn.Module):
    batch_size: int
    z_dim: int
    lr = 1e-3

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of -ELBO = BCE(x, decoder(z, y)) + KL(q(z | x, y) || N(0, I))."""
        mu, logvar = self.encode(x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        logits = self.decode_logits(z, y).float()
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(-1)
        return (recon + _gaussian_kl(mu.float(), logvar.float())).mean()

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z, y).float())


class TutorialConvVAE(_CVAE):
    batch_size = 32
    z_dim = 128
    CHANNELS = (32, 64, 128, 256, 512, 1024)

    def __init__(self, n_labels: int, channels: int = 3):
        super().__init__()
        layers, c_in = [], channels
        for c in self.CHANNELS:
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.encoder = nn.Sequential(*layers, nn.Flatten(1))  # 64 -> 1: (B, 1024)
        self.to_stats = nn.Linear(1024 + n_labels, 2 * self.z_dim)
        self.from_z = nn.Linear(self.z_dim + n_labels, 1024)
        layers = []
        outs = self.CHANNELS[-2::-1] + (channels,)
        for i, c in enumerate(outs):
            layers.append(nn.ConvTranspose2d(c_in, c, 4, 2, 1))
            if i < len(outs) - 1:
                layers += [nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.decoder = nn.Sequential(*layers)

    def encode(self, x, y):
        h = self.encoder(x)
        return self.to_stats(torch.cat([h, y.to(h.dtype)], -1)).chunk(2, -1)

    def decode_logits(self, z, y):
        h = self.from_z(torch.cat([z, y.to(z.dtype)], -1))
        return self.decoder(h.reshape(-1, 1024, 1, 1))


class CourseMLPVAE(_CVAE):
    batch_size = 256
    z_dim = 50

    def __init__(self, n_labels: int, image_shape: tuple[int, int, int] = (3, 64, 64)):
        super().__init__()
        self.image_shape = tuple(image_shape)
        n = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        self.encoder = nn.Sequential(nn.Linear(n + n_labels, 1000), nn.Softplus(), nn.Linear(1000, 1000), nn.Softplus(), nn.Linear(1000, 2 * self.z_dim))
        self.decoder = nn.Sequential(
            nn.Linear(self.z_dim + n_labels, 1000), nn.Softplus(), nn.Linear(1000, 1000), nn.Softplus(),
            nn.Linear(1000, 1000), nn.Softplus(), nn.Linear(1000, n),
        )

    def encode(self, x, y):
        return self.encoder(torch.cat([x.flatten(1), y.to(x.dtype)], -1)).chunk(2, -1)

    def decode_logits(self, z, y):
        return self.decoder(torch.cat([z, y.to(z.dtype)], -1)).reshape(-1, *self.image_shape)


BASELINES = {"tutorial_conv": TutorialConvVAE, "course_mlp": CourseMLPVAE}
