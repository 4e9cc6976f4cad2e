"""The Baur autoencoders in PyTorch, layer for layer, as the speed reference.

Same stages, channels, kernels and strides as :mod:`jaxuad.models.autoencoders`; the
decoder uses ``nn.ConvTranspose2d`` (padding 2, output_padding 1: the 2x ``SAME`` upsampling).
Only imported when torch is installed (``pip install -e .[bench]``).
"""

from __future__ import annotations

import torch
from torch import nn

from jaxuad.config import ModelConfig
from jaxuad.models.autoencoders import stage_strides


class TorchAutoencoder(nn.Module):
    def __init__(self, cfg: ModelConfig, image_size: int, bottleneck: str, variational: bool):
        super().__init__()
        strides = stage_strides(cfg, image_size, bottleneck)
        k, p = cfg.kernel_size, cfg.kernel_size // 2
        chans = (1, *cfg.features)
        act = lambda: nn.LeakyReLU(0.2)
        enc = []
        for i, s in enumerate(strides):
            enc += [nn.Conv2d(chans[i], chans[i + 1], k, s, p), act()]
        self.encoder = nn.Sequential(*enc)
        dec_out = (cfg.features[0], *cfg.features)
        dec = []
        for i in reversed(range(len(strides))):
            cin, cout = cfg.features[i], dec_out[i]
            if strides[i] == 2:
                dec += [nn.ConvTranspose2d(cin, cout, k, 2, p, output_padding=1), act()]
            else:
                dec += [nn.Conv2d(cin, cout, k, 1, p), act()]
        dec.append(nn.Conv2d(dec_out[0], 1, k, 1, p))
        self.decoder = nn.Sequential(*dec)
        self.res = image_size // 2 ** sum(s == 2 for s in strides)
        self.dense, self.variational = bottleneck == "dense", variational
        m, top = (2 if variational else 1), cfg.features[-1]
        if self.dense:
            self.to_z = nn.Linear(self.res**2 * top, cfg.z_dim * m)
            self.from_z = nn.Linear(cfg.z_dim, self.res**2 * top)
        else:
            self.to_z = nn.Conv2d(top, cfg.z_channels * m, 1)
            self.from_z = nn.Conv2d(cfg.z_channels, top, 1)
        self.top = top

    def forward(self, x):
        h = self.encoder(x)
        h = self.to_z(h.flatten(1) if self.dense else h)
        kl = torch.zeros(x.shape[0])
        if self.variational:
            mean, logvar = h.chunk(2, dim=1)
            h = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)
        h = nn.functional.leaky_relu(self.from_z(h), 0.2)
        if self.dense:
            h = h.view(-1, self.top, self.res, self.res)
        return self.decoder(h), kl


def make_step(name: str, cfg: ModelConfig, image_size: int, lr: float):
    """A plain eager train step (forward, L1 + KL, backward, Adam) for registry model ``name``."""
    bottleneck = "dense" if name.startswith("d") else "spatial"
    model = TorchAutoencoder(cfg, image_size, bottleneck, name.endswith("vae"))
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(x):
        opt.zero_grad(set_to_none=True)
        recon, kl = model(x)
        loss = ((x - recon).abs().flatten(1).sum(1) + kl).mean()
        loss.backward()
        opt.step()
        return loss

    return step
