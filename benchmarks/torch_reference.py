"""Every jaxuad model in PyTorch, layer for layer, as the speed reference.

Same stages, channels, kernels, strides and training phases as :mod:`jaxuad.models` and
:mod:`jaxuad.train.schemes`; the decoder uses ``nn.ConvTranspose2d`` (padding k // 2,
output_padding 1: the 2x ``SAME`` upsampling). Each phase differentiates its loss with
respect to its own parameters only (``torch.autograd.grad``), as the JAX step does, and
steps its own Adam. Only imported when torch is installed (``pip install -e .[bench]``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from jaxuad.config import Config
from jaxuad.models import model_spec
from jaxuad.models.geometry import stage_strides
from jaxuad.models.variance import VARIANCE_FEATURES
from jaxuad.train.schemes import phases_for

act = lambda x: F.leaky_relu(x, 0.2)


def _conv(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride, k // 2)


def _up(cin, cout, k):
    return nn.ConvTranspose2d(cin, cout, k, 2, k // 2, output_padding=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, k, direction):
        super().__init__()
        self.direction = direction
        self.a = {"down": lambda: _conv(cin, cout, k, 2), "up": lambda: _up(cin, cout, k)}.get(
            direction, lambda: _conv(cin, cout, k)
        )()
        self.b = _conv(cout, cout, k)
        self.skip = None if direction == "same" and cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.b(act(self.a(x)))
        s = x[:, :, ::2, ::2] if self.direction == "down" else x
        s = s if self.skip is None else self.skip(s)
        if self.direction == "up":
            s = F.interpolate(s, scale_factor=2, mode="nearest")
        return act(h + s)


class Stages(nn.Module):
    """Encoder (``up=False``) or decoder stages, each followed by LeakyReLU."""

    def __init__(self, features, k, strides, residual, up):
        super().__init__()
        layers = []
        if not up:
            chans = ((features[0],) if residual else (1,)) + tuple(features)
            self.stem = _conv(1, features[0], k) if residual else None
            for i, s in enumerate(strides):
                cin, cout = chans[i], chans[i + 1]
                if residual:
                    layers.append(ResBlock(cin, cout, k, "down" if s == 2 else "same"))
                else:
                    layers += [_conv(cin, cout, k, s), nn.LeakyReLU(0.2)]
        else:
            self.stem = None
            chans = (*features[:1], *features)
            for i in reversed(range(len(strides))):
                cin, cout = features[i], chans[i]
                if residual:
                    layers.append(ResBlock(cin, cout, k, "up" if strides[i] == 2 else "same"))
                elif strides[i] == 2:
                    layers += [_up(cin, cout, k), nn.LeakyReLU(0.2)]
                else:
                    layers += [_conv(cin, cout, k), nn.LeakyReLU(0.2)]
            layers.append(_conv(chans[0], 1, k))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x if self.stem is None else act(self.stem(x)))


class ImageDisc(nn.Module):
    def __init__(self, image_size, features, k):
        super().__init__()
        chans = (1, *features)
        layers = []
        for i in range(len(features)):
            layers += [_conv(chans[i], chans[i + 1], k, 2), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers, nn.Flatten())
        res = image_size // 2 ** len(features)
        self.out = nn.Linear(res * res * features[-1], 1)

    def forward(self, x):
        return self.out(self.body(x))[:, 0]


class LatentDisc(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        dims, layers = (dim, *hidden), []
        for i in range(len(hidden)):
            layers += [nn.Linear(dims[i], dims[i + 1]), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(nn.Flatten(), *layers, nn.Linear(dims[-1], 1))

    def forward(self, z):
        return self.body(z)[:, 0]


class VarianceNet(nn.Module):
    def __init__(self):
        super().__init__()
        chans, layers = (1, *VARIANCE_FEATURES), []
        for i in range(len(VARIANCE_FEATURES)):
            layers += [_conv(chans[i], chans[i + 1], 3), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers, _conv(chans[-1], 1, 3))

    def forward(self, x):
        return F.softplus(self.body(x)) + 1e-6


class Mixture(nn.Module):
    def __init__(self, k, dim):
        super().__init__()
        self.means = nn.Parameter(torch.randn(k, dim))
        self.logvars = nn.Parameter(torch.zeros(k, dim))
        self.logits = nn.Parameter(torch.zeros(k))

    def log_prob(self, z):  # [..., C] -> [...]
        d = z[..., None, :] - self.means
        comp = -0.5 * (d**2 * torch.exp(-self.logvars) + self.logvars + math.log(2 * math.pi))
        return torch.logsumexp(comp.sum(-1) + F.log_softmax(self.logits, -1), -1)


def _gauss(z, mean, logvar):
    return -0.5 * ((z - mean) ** 2 * torch.exp(-logvar) + logvar + math.log(2 * math.pi))


class TorchAutoencoder(nn.Module):
    """Mirror of :class:`jaxuad.models.Autoencoder` (NCHW)."""

    def __init__(self, config: Config):
        super().__init__()
        cfg, s = config.model, config.data.image_size
        opts = model_spec(cfg.name).build.keywords
        bottleneck, self.variational = opts["bottleneck"], opts["variational"]
        strides = stage_strides(cfg, s, bottleneck)
        residual, k = cfg.arch == "chen", cfg.kernel_size
        self.encoder = Stages(cfg.features, k, strides, residual, up=False)
        self.decoder = Stages(cfg.features, k, strides, residual, up=True)
        self.res = s // 2 ** sum(st == 2 for st in strides)
        self.dense, top = bottleneck == "dense", cfg.features[-1]
        m = 2 if self.variational else 1
        if self.dense:
            self.to_z = nn.Linear(self.res**2 * top, cfg.z_dim * m)
            self.from_z = nn.Linear(cfg.z_dim, self.res**2 * top)
            self.latent = (cfg.z_dim,)
        else:
            self.to_z = nn.Conv2d(top, cfg.z_channels * m, 1)
            self.from_z = nn.Conv2d(cfg.z_channels, top, 1)
            self.latent = (cfg.z_channels, self.res, self.res)
        self.top = top
        disc = opts.get("discriminator")
        self.disc = (
            ImageDisc(s, cfg.disc_features, k)
            if disc == "image"
            else LatentDisc(math.prod(self.latent), cfg.latent_disc_hidden)
            if disc == "latent"
            else None
        )
        self.prior = (
            Mixture(cfg.gmm_components, self.latent[0]) if opts.get("prior") == "mixture" else None
        )
        self.var_net = VarianceNet() if cfg.variance_net else None

    def encode(self, x):
        h = self.encoder(x)
        h = self.to_z(h.flatten(1) if self.dense else h)
        return h.chunk(2, dim=1) if self.variational else (h, None)

    def decode(self, z):
        h = act(self.from_z(z))
        return self.decoder(h.view(-1, self.top, self.res, self.res) if self.dense else h)

    def forward(self, x):
        """(recon, kl per image)."""
        mean, logvar = self.encode(x)
        if not self.variational:
            return self.decode(mean), torch.zeros(x.shape[0])
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        if self.prior is None:
            kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)
        else:
            log_q = _gauss(z, mean, logvar).flatten(1).sum(1)
            kl = log_q - self.prior.log_prob(z.movedim(1, -1)).flatten(1).sum(1)
        return self.decode(z), kl


class TorchGAN(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        cfg, s = config.model, config.data.image_size
        n = len(cfg.features)
        self.res, self.z_dim = s // 2**n, cfg.z_dim
        self.from_z = nn.Linear(cfg.z_dim, self.res**2 * cfg.features[-1])
        self.generator = Stages(cfg.features, cfg.kernel_size, [2] * n, False, up=True)
        self.disc = ImageDisc(s, cfg.disc_features, cfg.kernel_size)

    def sample(self, n):
        h = act(self.from_z(torch.randn(n, self.z_dim)))
        return self.generator(h.view(n, -1, self.res, self.res))


def _params(model, groups):
    return [p for g in groups for p in getattr(model, g).parameters()]


def make_step(config: Config):
    """A plain eager train step (every phase: forward, loss, gradient of the phase's own
    parameters, Adam) for ``config.model``."""
    name, tc = config.model.name, config.train
    model = TorchGAN(config) if name == "anogan" else TorchAutoencoder(config)
    rec = (lambda d: d.abs()) if tc.recon_loss == "l1" else (lambda d: d**2)
    nlog_d = lambda logits: F.softplus(-logits).mean()  # -log D
    nlog_not_d = lambda logits: F.softplus(logits).mean()  # -log(1 - D)

    def ae(x):
        recon, kl = model(x)
        return (rec(x - recon).flatten(1).sum(1) + tc.kl_weight * kl).mean()

    def image_gen(x):
        return tc.adv_weight * nlog_d(model.disc(model(x)[0]))

    def ae_gan(x):  # train.generator_update="joint": one forward pass, one objective
        recon, kl = model(x)
        ae_loss = (rec(x - recon).flatten(1).sum(1) + tc.kl_weight * kl).mean()
        return ae_loss + tc.adv_weight * nlog_d(model.disc(recon))

    def image_disc(x):
        with torch.no_grad():
            fake = model(x)[0]
        return nlog_d(model.disc(x)) + nlog_not_d(model.disc(fake))

    def latent_disc(x):
        with torch.no_grad():
            fake = model.encode(x)[0]
        real = torch.randn_like(fake)
        return nlog_d(model.disc(real)) + nlog_not_d(model.disc(fake))

    def latent_gen(x):
        return tc.adv_weight * nlog_d(model.disc(model.encode(x)[0]))

    def gan_disc(x):
        with torch.no_grad():
            fake = model.sample(x.shape[0])
        return nlog_d(model.disc(x)) + nlog_not_d(model.disc(fake))

    def gan_gen(x):
        return nlog_d(model.disc(model.sample(x.shape[0])))

    def variance(x):
        with torch.no_grad():
            mean, logvar = model.encode(x)
            if logvar is None:
                target = (model.decode(mean) - x) ** 2
            else:
                zs = [
                    mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
                    for _ in range(tc.variance_samples)
                ]
                target = torch.stack([(model.decode(z) - x) ** 2 for z in zs]).mean(0)
        return ((model.var_net(x) - target) ** 2).flatten(1).sum(1).mean()

    scheme = model_spec(name).scheme
    if scheme == "gan":
        losses = {"disc": gan_disc, "gen": gan_gen}
    elif scheme == "image_gan":
        first = ae_gan if tc.generator_update == "joint" else ae
        losses = {"ae": first, "gen": image_gen, "disc": image_disc, "variance": variance}
    else:
        losses = {"ae": ae, "gen": latent_gen, "disc": latent_disc, "variance": variance}
    phases = []
    for p in phases_for(config, 1):
        loss = losses[p.name]
        params = _params(model, p.owns)
        opt = torch.optim.Adam(params, lr=p.learning_rate, betas=(p.b1, 0.999))
        phases.append((loss, params, opt))

    def step(x):
        for loss, params, opt in phases:
            value = loss(x)
            grads = torch.autograd.grad(value, params, allow_unused=True)
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            opt.step()
        return value

    return step
