#!/usr/bin/python3
"""Generates the PyTorch parity fixtures read by tests/test_parity.cpp.

Run with an interpreter that has torch (Debian's: /usr/bin/python3, torch 1.13):

    /usr/bin/python3 tools/gen_fixtures.py [--out tests/fixtures]

Every case seeds torch from its own name, so adding or reordering cases does not change the
others, and running the script twice writes identical files. Inputs and parameters are drawn in
float32 (the values imgsim sees); the reference forward/backward then runs in float64 on exactly
those values and the results are rounded to float32 when written, so a fixture holds the exact
answer for its float32 inputs up to one final rounding.

File format (docs/testing.md, "PyTorch parity"), all integers little-endian:

    8 bytes   magic "IMGSIMFX"
    u32       version (1)
    u32       number of tensors T
    T times:
      u32       name length L (1..255), then L bytes of ASCII name
      u32       rank R (0..6), then R x i64 dimensions (each >= 0)
      numel x   float32 values, row-major
    u64       FNV-1a 64-bit hash of every byte before it

Class indices are stored as float32 (as imgsim's losses take them). Scalars (a loss value) are
tensors of shape (1).
"""

import argparse
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MAGIC = b"IMGSIMFX"
VERSION = 1
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


class Fixture:
    """An ordered list of named float32 tensors, written in the format above."""

    def __init__(self, name):
        self.name = name
        self.tensors = []
        self.names = set()

    def add(self, name, t):
        if name in self.names:
            raise ValueError(f"{self.name}: duplicate tensor {name}")
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().numpy()
        a = np.ascontiguousarray(np.asarray(t, dtype=np.float64).astype("<f4"))
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{self.name}: {name} is not finite")
        self.names.add(name)
        self.tensors.append((name, a))

    def write(self, folder):
        out = bytearray(MAGIC)
        out += struct.pack("<II", VERSION, len(self.tensors))
        for name, a in self.tensors:
            nb = name.encode("ascii")
            assert 1 <= len(nb) <= 255 and a.ndim <= 6
            out += struct.pack("<I", len(nb)) + nb
            out += struct.pack("<I", a.ndim)
            out += struct.pack(f"<{a.ndim}q", *a.shape)
            out += a.tobytes()
        out += struct.pack("<Q", fnv1a64(bytes(out)))
        path = os.path.join(folder, self.name + ".bin")
        with open(path, "wb") as f:
            f.write(out)
        return path, len(out)


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


class NearKink(RuntimeError):
    """The drawn data puts a value within rounding distance of a discrete choice (a ReLU kink, a
    max-pool tie, an Adam step on a gradient that is pure noise); main() redraws with the next
    salt."""


SALT = 0  # set by main(): 0, then 1, 2, ... while a case raises NearKink


def seed_for(name):
    key = name if SALT == 0 else f"{name}#{SALT}"
    torch.manual_seed(zlib.crc32(key.encode()))


def randn(*shape, scale=1.0, shift=0.0):
    """float32 normal values (what imgsim reads)."""
    return torch.randn(*shape, dtype=torch.float32) * scale + shift


def distinct(*shape, lo=-2.0, hi=2.0):
    """float32 values that are pairwise distinct (tie-free max pooling), in random order."""
    n = int(np.prod(shape))
    perm = torch.randperm(n).to(torch.float64)
    return ((perm + 0.5) / n * (hi - lo) + lo).to(torch.float32).reshape(shape)


def d(t, grad=False):
    """float64 copy of a float32 tensor for the reference computation."""
    return t.detach().to(torch.float64).clone().requires_grad_(grad)


def tf_same_pads(size, k, s):
    """TensorFlow 'same': (before, after) padding along one axis."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def margin_check(name, z, margin=1e-3):
    """Keeps pre-activations away from a ReLU/LeakyReLU kink so float32 rounding cannot flip
    which side of it a value falls on (which would be a disagreement about nothing)."""
    m = z.detach().abs().min().item()
    if m < margin:
        raise NearKink(f"{name}: a pre-activation is {m:g} from the kink")


def grad_margin_check(name, g, rel=1e-4):
    """Adam divides each gradient by its own magnitude, so a gradient element that is tiny next to
    the rest of its tensor (but not exactly 0, like a dead ReLU's) would turn float32 rounding into
    an lr-sized step. Such a fixture would test noise; refuse it."""
    a = g.detach().abs()
    nz = a[a > 0]
    if nz.numel() and nz.min().item() < rel * a.max().item():
        raise NearKink(f"{name}: gradient element {nz.min().item():g} is within {rel:g} of 0 "
                       f"relative to the tensor's max {a.max().item():g}")


# --- Conv2D ------------------------------------------------------------------------------------


def conv_case(name, n, c, h, w, k, kernel, stride, pad_tblr, bias=True, relu=False):
    seed_for(name)
    r, s = kernel
    fan_in = c * r * s
    x = randn(n, c, h, w)
    wt = randn(k, c, r, s, scale=1.0 / np.sqrt(fan_in))
    b = randn(k, scale=0.2) if bias else None
    xd, wd = d(x, True), d(wt, True)
    bd = d(b, True) if bias else None
    pt, pb, pl, pr = pad_tblr
    z = F.conv2d(F.pad(xd, (pl, pr, pt, pb)), wd, bd, stride=stride)
    if relu:
        margin_check(name, z)
    y = torch.relu(z) if relu else z
    dy = randn(*y.shape)
    y.backward(d(dy))
    fx = Fixture(name)
    fx.add("x", x)
    fx.add("weight", wt)
    if bias:
        fx.add("bias", b)
    fx.add("y", y)
    fx.add("dy", dy)
    fx.add("dx", xd.grad)
    fx.add("dweight", wd.grad)
    if bias:
        fx.add("dbias", bd.grad)
    return fx


@case
def conv2d_s2_p1():
    # odd input, 3x3 stride 2, explicit padding 1 (torch padding=1), bias
    return conv_case("conv2d_s2_p1", 2, 3, 11, 9, 4, (3, 3), (2, 2), (1, 1, 1, 1))


@case
def conv2d_k3x2_s1x2():
    # non-square kernel and stride, valid padding, no bias
    return conv_case("conv2d_k3x2_s1x2", 2, 2, 8, 7, 3, (3, 2), (1, 2), (0, 0, 0, 0), bias=False)


@case
def conv2d_same_s2():
    # TensorFlow 'same' with stride 2: H 10, k 3 -> pads (0, 1); W 9, k 4 -> pads (1, 2)
    h, w, kernel, stride = 10, 9, (3, 4), (2, 2)
    pt, pb = tf_same_pads(h, kernel[0], stride[0])
    pl, pr = tf_same_pads(w, kernel[1], stride[1])
    assert (pt, pb, pl, pr) == (0, 1, 1, 2)
    return conv_case("conv2d_same_s2", 2, 3, h, w, 5, kernel, stride, (pt, pb, pl, pr))


@case
def conv2d_relu():
    # stride 1, padding 1, ReLU fused into the layer
    return conv_case("conv2d_relu", 2, 3, 7, 6, 4, (3, 3), (1, 1), (1, 1, 1, 1), relu=True)


@case
def conv2d_pointwise():
    # 1x1 kernel, stride 1, no padding: imgsim's direct (no im2col) path
    return conv_case("conv2d_pointwise", 3, 5, 4, 3, 6, (1, 1), (1, 1), (0, 0, 0, 0))


# --- MaxPool2D ---------------------------------------------------------------------------------


def pool_case(name, n, c, h, w, pool, stride, same=False):
    seed_for(name)
    x = distinct(n, c, h, w)
    xd = d(x, True)
    if same:
        pt, pb = tf_same_pads(h, pool[0], stride[0])
        pl, pr = tf_same_pads(w, pool[1], stride[1])
        xin = F.pad(xd, (pl, pr, pt, pb), value=float("-inf"))
    else:
        xin = xd
    y = F.max_pool2d(xin, pool, stride)
    dy = randn(*y.shape)
    y.backward(d(dy))
    fx = Fixture(name)
    fx.add("x", x)
    fx.add("y", y)
    fx.add("dy", dy)
    fx.add("dx", xd.grad)
    return fx


@case
def max_pool_7x7_p2():
    return pool_case("max_pool_7x7_p2", 2, 3, 7, 7, (2, 2), (2, 2))


@case
def max_pool_9x8_p3_s2():
    return pool_case("max_pool_9x8_p3_s2", 2, 3, 9, 8, (3, 3), (2, 2))


@case
def max_pool_same_7x7_p2():
    # TensorFlow 'same': 7 -> 4, one padded row/column (-inf) at the bottom/right
    return pool_case("max_pool_same_7x7_p2", 2, 2, 7, 7, (2, 2), (2, 2), same=True)


# --- Dense, Flatten ----------------------------------------------------------------------------


def dense_case(name, n, dim, units, act=None):
    seed_for(name)
    x = randn(n, dim)
    wt = randn(units, dim, scale=1.0 / np.sqrt(dim))
    b = randn(units, scale=0.2)
    xd, wd, bd = d(x, True), d(wt, True), d(b, True)
    z = F.linear(xd, wd, bd)
    y = torch.tanh(z) if act == "tanh" else z
    dy = randn(*y.shape)
    y.backward(d(dy))
    fx = Fixture(name)
    for k, v in [("x", x), ("weight", wt), ("bias", b), ("y", y), ("dy", dy), ("dx", xd.grad),
                 ("dweight", wd.grad), ("dbias", bd.grad)]:
        fx.add(k, v)
    return fx


@case
def dense_bias():
    return dense_case("dense_bias", 4, 10, 6)


@case
def dense_tanh():
    return dense_case("dense_tanh", 5, 12, 7, act="tanh")


@case
def cosine_dense():
    """CosineDense: scale * cos(x_n, w_j) (NormFace head), one input row shorter than the rest."""
    name = "cosine_dense"
    seed_for(name)
    x = randn(5, 9)
    x[2] *= 0.01  # a short row: the normalisation's 1/||x|| must be right, not just the direction
    wt = randn(4, 9, scale=0.5)
    xd, wd = d(x, True), d(wt, True)
    y = 16.0 * F.linear(F.normalize(xd, dim=1), F.normalize(wd, dim=1))
    dy = randn(*y.shape)
    y.backward(d(dy))
    fx = Fixture(name)
    for k, v in [("x", x), ("weight", wt), ("y", y), ("dy", dy), ("dx", xd.grad),
                 ("dweight", wd.grad)]:
        fx.add(k, v)
    return fx


def reshape_case(name, shape, fn):
    """A layer without parameters: x, y = fn(x), dy and dx."""
    seed_for(name)
    x = randn(*shape)
    xd = d(x, True)
    y = fn(xd)
    dy = randn(*y.shape)
    y.backward(d(dy))
    fx = Fixture(name)
    fx.add("x", x)
    fx.add("y", y)
    fx.add("dy", dy)
    fx.add("dx", xd.grad)
    return fx


@case
def flatten():
    return reshape_case("flatten", (2, 3, 4, 5), lambda x: torch.flatten(x, 1))


@case
def global_avg_pool():
    return reshape_case(
        "global_avg_pool",
        (2, 3, 5, 7),
        lambda x: torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1),
    )


# --- BatchNorm ---------------------------------------------------------------------------------


def bn_case(name, shape, train, momentum=0.1, eps=1e-5):
    seed_for(name)
    c = shape[1]
    x = randn(*shape, scale=1.5, shift=0.7)
    gamma = randn(c, scale=0.5, shift=1.0)
    beta = randn(c, scale=0.3)
    rm = randn(c, scale=0.5)
    rv = torch.rand(c, dtype=torch.float32) * 1.5 + 0.5
    mod = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(c, eps=eps, momentum=momentum)
    mod = mod.double()
    with torch.no_grad():
        mod.weight.copy_(d(gamma))
        mod.bias.copy_(d(beta))
        mod.running_mean.copy_(d(rm))
        mod.running_var.copy_(d(rv))
    mod.train(train)
    xd = d(x, True)
    y = mod(xd)
    dy = randn(*y.shape)
    y.backward(d(dy))
    fx = Fixture(name)
    fx.add("x", x)
    fx.add("gamma", gamma)
    fx.add("beta", beta)
    fx.add("running_mean", rm)
    fx.add("running_var", rv)
    fx.add("y", y)
    fx.add("dy", dy)
    fx.add("dx", xd.grad)
    fx.add("dgamma", mod.weight.grad)
    fx.add("dbeta", mod.bias.grad)
    # after the forward: updated in training (unbiased batch variance), unchanged in eval
    fx.add("running_mean_after", mod.running_mean)
    fx.add("running_var_after", mod.running_var)
    return fx


@case
def batch_norm2d_train():
    return bn_case("batch_norm2d_train", (4, 3, 5, 4), True)


@case
def batch_norm1d_train():
    return bn_case("batch_norm1d_train", (8, 6), True)


@case
def batch_norm2d_eval():
    return bn_case("batch_norm2d_eval", (3, 4, 3, 5), False)


@case
def batch_norm1d_eval():
    return bn_case("batch_norm1d_eval", (5, 7), False)


# --- Element-wise activations and Softmax ------------------------------------------------------


def act_case(name, shape, fn, kink=False):
    seed_for(name)
    x = randn(*shape, scale=2.0)
    if kink:
        margin_check(name, x)
    xd = d(x, True)
    y = fn(xd)
    dy = randn(*y.shape)
    y.backward(d(dy))
    fx = Fixture(name)
    fx.add("x", x)
    fx.add("y", y)
    fx.add("dy", dy)
    fx.add("dx", xd.grad)
    return fx


@case
def softmax():
    return act_case("softmax", (4, 7), lambda t: torch.softmax(t, dim=1))


@case
def leaky_relu():
    # slope 0.1 (not the default 0.01) so a wrong slope shows; image-shaped input
    return act_case("leaky_relu", (2, 3, 4, 5), lambda t: F.leaky_relu(t, 0.1), kink=True)


@case
def sigmoid():
    return act_case("sigmoid", (4, 9), torch.sigmoid)


@case
def relu():
    return act_case("relu", (3, 11), torch.relu, kink=True)


@case
def tanh():
    return act_case("tanh", (3, 11), torch.tanh)


# --- Losses ------------------------------------------------------------------------------------


def loss_case(name, pred, target, fn):
    pd = d(pred, True)
    loss = fn(pd, target)
    loss.backward()
    fx = Fixture(name)
    fx.add("pred", pred)
    fx.add("target", target if target.dtype == torch.float32 else target.to(torch.float32))
    fx.add("loss", loss.reshape(1))
    fx.add("dpred", pd.grad)
    return fx


@case
def loss_mse():
    name = "loss_mse"
    seed_for(name)
    return loss_case(name, randn(5, 7), randn(5, 7),
                     lambda p, t: F.mse_loss(p, d(t)))


@case
def loss_ce_index():
    name = "loss_ce_index"
    seed_for(name)
    return loss_case(name, randn(6, 5, scale=2.0), torch.randint(0, 5, (6,)),
                     lambda p, t: F.cross_entropy(p, t))


@case
def loss_ce_smooth():
    name = "loss_ce_smooth"
    seed_for(name)
    return loss_case(name, randn(6, 5, scale=2.0), torch.randint(0, 5, (6,)),
                     lambda p, t: F.cross_entropy(p, t, label_smoothing=0.1))


@case
def loss_ce_margin():
    """Additive target margin (CosFace on scaled cosines): cross-entropy of z - m onehot."""
    name = "loss_ce_margin"
    seed_for(name)
    target = torch.randint(0, 5, (6,))
    return loss_case(name, randn(6, 5, scale=4.0), target,
                     lambda p, t: F.cross_entropy(p - 1.6 * F.one_hot(t, 5).double(), t,
                                                  label_smoothing=0.1))


@case
def loss_ce_prob():
    name = "loss_ce_prob"
    seed_for(name)
    target = torch.softmax(randn(6, 5, scale=1.5).double(), dim=1).float()
    return loss_case(name, randn(6, 5, scale=2.0), target,
                     lambda p, t: F.cross_entropy(p, d(t)))


@case
def loss_bce_logits():
    name = "loss_bce_logits"
    seed_for(name)
    target = torch.rand(5, 4, dtype=torch.float32)  # soft targets in [0, 1)
    return loss_case(name, randn(5, 4, scale=2.0), target,
                     lambda p, t: F.binary_cross_entropy_with_logits(p, d(t)))


@case
def loss_bce_prob():
    name = "loss_bce_prob"
    seed_for(name)
    pred = torch.sigmoid(randn(5, 4, scale=1.5))  # probabilities well inside (1e-7, 1 - 1e-7)
    target = torch.randint(0, 2, (5, 4)).to(torch.float32)
    return loss_case(name, pred, target, lambda p, t: F.binary_cross_entropy(p, d(t)))


# --- Training steps ----------------------------------------------------------------------------
#
# Model A: Conv2d(3->4, 3x3, pad 1) ReLU, MaxPool 2, Conv2d(4->6, 3x3), Flatten,
#          Linear(24->16) ReLU, Linear(16->5).                    input (3, 9, 9)
# Model B: as A with BatchNorm2d(4) between the first conv (linear, no bias) and its ReLU.
# Loss: cross-entropy on class indices. STEPS steps, one new batch of BATCH per step.

STEPS = 3
BATCH = 6
CLASSES = 5


def make_model(bn):
    # No bias before BatchNorm: the normalisation cancels it, so its gradient is exactly 0 and
    # both sides would hold only rounding noise (which Adam then scales up to lr-sized steps).
    layers = [nn.Conv2d(3, 4, 3, padding=1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.Flatten(),
               nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, CLASSES)]
    return nn.Sequential(*layers)


def add_kink_checks(name, model):
    """Forward hooks refusing a batch whose float32 rounding could change a discrete choice:
    a ReLU input near 0, or a max-pool window whose two largest values (when positive; zero ties
    come from the ReLU before and carry no gradient) nearly tie."""
    def relu_hook(mod, inp, out):
        margin_check(f"{name} ReLU", inp[0], margin=1e-5)

    def pool_hook(mod, inp, out):
        x = inp[0].detach()
        n, c, _, _ = x.shape
        cols = F.unfold(x.reshape(n * c, 1, *x.shape[2:]), mod.kernel_size, stride=mod.stride)
        top = cols.topk(2, dim=1).values
        gap = (top[:, 0] - top[:, 1])[top[:, 0] > 0]
        if gap.numel() and gap.min().item() < 1e-5 * x.abs().max().item():
            raise NearKink(f"{name}: max-pool near-tie {gap.min().item():g}")

    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.register_forward_hook(relu_hook)
        elif isinstance(m, nn.MaxPool2d):
            m.register_forward_hook(pool_hook)


def train_case(name, bn, make_opt):
    seed_for(name)
    model = make_model(bn)  # torch's default init, in float32
    fx = Fixture(name)
    params = list(model.named_parameters())
    for i, (_, p) in enumerate(params):
        fx.add(f"p{i}.init", p)
    model = model.double()
    add_kink_checks(name, model)
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if not (n.endswith("weight") and p.dim() > 1)]
    opt = make_opt(decay, no_decay)
    model.train()
    for step in range(STEPS):
        x = randn(BATCH, 3, 9, 9)
        y = torch.randint(0, CLASSES, (BATCH,))
        opt.zero_grad()
        out = model(d(x))
        loss = F.cross_entropy(out, y)
        loss.backward()
        fx.add(f"step{step}.x", x)
        fx.add(f"step{step}.y", y.to(torch.float32))
        fx.add(f"step{step}.loss", loss.reshape(1))
        for i, (pname, p) in enumerate(model.named_parameters()):
            grad_margin_check(f"{name} step {step} {pname}", p.grad)
            if step == 0:
                fx.add(f"p{i}.grad0", p.grad)
        if step == 0:
            fx.add("step0.out", out)
        opt.step()
    for i, (_, p) in enumerate(model.named_parameters()):
        fx.add(f"p{i}.final", p)
    if bn:
        fx.add("bn.running_mean.final", model[1].running_mean)
        fx.add("bn.running_var.final", model[1].running_var)
    return fx


@case
def train_adam():
    return train_case("train_adam", False,
                      lambda dec, nod: torch.optim.Adam(dec + nod, lr=1e-2))


@case
def train_adam_bn():
    return train_case("train_adam_bn", True,
                      lambda dec, nod: torch.optim.Adam(dec + nod, lr=1e-2))


@case
def train_adam_l2():
    # Adam's L2 weight decay (added to the gradient), on the conv/linear weights only
    return train_case("train_adam_l2", False, lambda dec, nod: torch.optim.Adam(
        [{"params": dec, "weight_decay": 0.05}, {"params": nod, "weight_decay": 0.0}], lr=1e-2))


@case
def train_sgd_nesterov():
    return train_case("train_sgd_nesterov", False, lambda dec, nod: torch.optim.SGD(
        [{"params": dec, "weight_decay": 0.01}, {"params": nod, "weight_decay": 0.0}],
        lr=0.05, momentum=0.9, nesterov=True))


@case
def train_adamw_bn():
    # decoupled weight decay on the conv/linear weights only (not biases, not BatchNorm)
    return train_case("train_adamw_bn", True, lambda dec, nod: torch.optim.AdamW(
        [{"params": dec, "weight_decay": 0.1}, {"params": nod, "weight_decay": 0.0}], lr=1e-2))


# --- Metric learning (docs/metric-learning.md) -------------------------------------------------
#
# References written with plain torch ops in float64: pairwise distances, label masks, hardest /
# semi-hard selection, then autograd. Every discrete choice (which positive is the farthest, which
# negative the closest, whether a negative is semi-hard, whether a hinge is active) must be
# decided by a gap of at least METRIC_GAP, far above float32 rounding, or the case is redrawn.

METRIC_GAP = 1e-4


def gap_check(name, values, what, gap=METRIC_GAP):
    """Refuses values within `gap` of the threshold they are compared with (0)."""
    v = torch.as_tensor(values, dtype=torch.float64).detach().abs()
    if v.numel() and v.min().item() < gap:
        raise NearKink(f"{name}: {what} {v.min().item():g} is within {gap:g} of a decision")


def top2_gap_check(name, values, what, largest):
    """The winner of a max (largest) or min must beat the runner-up by METRIC_GAP."""
    v = values.detach()
    if v.numel() >= 2:
        top = v.topk(2, largest=largest).values
        gap_check(name, top[0] - top[1], what)


def pairwise_dist(p, squared=False):
    """D_ij = ||p_i - p_j|| (or its square). The square root is taken off the diagonal only: its
    derivative at 0 is infinite, and imgsim never uses the diagonal."""
    n = p.shape[0]
    diff = p[:, None, :] - p[None, :, :]
    sq = (diff * diff).sum(-1)
    if squared:
        return sq
    off = ~torch.eye(n, dtype=torch.bool)
    return torch.where(off, torch.sqrt(torch.where(off, sq, torch.ones_like(sq))),
                       torch.zeros_like(sq))


def label_masks(labels):
    n = labels.shape[0]
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(n, dtype=torch.bool)
    return pos, ~same


def contrastive_ref(name, p, labels, margin):
    n = p.shape[0]
    dist = pairwise_dist(p)
    i, j = torch.triu_indices(n, n, 1)
    dd = dist[i, j]
    same = labels[i] == labels[j]
    gap_check(name, (margin - dd)[~same], "a negative's margin - d")
    per = torch.where(same, dd * dd, torch.clamp(margin - dd, min=0.0) ** 2)
    return per.mean()


def triplet_ref(name, p, labels, margin, mining, squared=False):
    D = pairwise_dist(p, squared)
    pos, neg = label_masks(labels)
    Dd = D.detach()
    if mining == "batch_hard":
        valid = pos.any(1) & neg.any(1)
        for a in valid.nonzero().flatten().tolist():
            top2_gap_check(name, Dd[a][pos[a]], "hardest-positive gap", largest=True)
            top2_gap_check(name, Dd[a][neg[a]], "hardest-negative gap", largest=False)
        hp = torch.where(pos, D, torch.full_like(D, -np.inf)).max(1).values
        hn = torch.where(neg, D, torch.full_like(D, np.inf)).min(1).values
        h = (margin + hp - hn)[valid]
        gap_check(name, h, "hinge")
        return F.relu(h).mean()
    if mining == "semi_hard":
        losses, kinds = [], set()
        for a, q in pos.nonzero().tolist():
            negs = neg[a].nonzero().flatten()
            if negs.numel() == 0:
                continue
            dap, dan = Dd[a, q], Dd[a, negs]
            gap_check(name, dan - dap, "D_an - D_ap")
            gap_check(name, dan - dap - margin, "D_an - D_ap - margin")
            semi = (dan > dap) & (dan < dap + margin)
            cand = negs[semi] if semi.any() else negs
            top2_gap_check(name, Dd[a, cand], "semi-hard selection gap", largest=False)
            sel = cand[Dd[a, cand].argmin()]
            h = margin + D[a, q] - D[a, sel]
            gap_check(name, h, "hinge")
            kinds.add("semi-hard" if semi.any() else
                      "fallback, h > 0" if h > 0 else "fallback, h = 0")
            losses.append(F.relu(h))
        assert len(kinds) == 3, f"{name}: want semi-hard pairs and both kinds of fallback: {kinds}"
        return torch.stack(losses).mean()
    assert mining == "all"
    tri = pos[:, :, None] & neg[:, None, :]  # (a, p, n)
    h = (margin + D[:, :, None] - D[:, None, :])[tri]
    gap_check(name, h, "hinge")
    active = h.detach() > 0
    assert 0 < active.sum() < h.numel(), f"{name}: want both active and inactive triplets"
    return h[active].sum() / active.sum()


def ntxent_ref(p, tau):
    n = p.shape[0]
    u = F.normalize(p, dim=1)
    s = (u @ u.T / tau).masked_fill(torch.eye(n, dtype=torch.bool), -np.inf)
    k = (torch.arange(n) + n // 2) % n
    return F.cross_entropy(s, k)


# 12 rows: three classes of 3, one of 2, and a single row (label -2) that has no positive.
METRIC_LABELS = [0, 0, 0, 1, 1, 1, 2, 2, 2, 5, 5, -2]


def metric_batch(n_dim):
    labels = torch.tensor(METRIC_LABELS, dtype=torch.float32)[torch.randperm(len(METRIC_LABELS))]
    pred = F.normalize(randn(len(METRIC_LABELS), n_dim), dim=1)  # unit rows, in float32
    return pred, labels


@case
def l2_normalize():
    return act_case("l2_normalize", (5, 7), lambda t: F.normalize(t, dim=1))


@case
def loss_contrastive():
    name = "loss_contrastive"
    seed_for(name)
    pred, labels = metric_batch(5)
    return loss_case(name, pred, labels, lambda p, t: contrastive_ref(name, p, t, 1.0))


def triplet_case(name, margin, mining, squared=False):
    seed_for(name)
    pred, labels = metric_batch(6)
    return loss_case(name, pred, labels,
                     lambda p, t: triplet_ref(name, p, t, margin, mining, squared))


@case
def loss_triplet_batch_hard():
    return triplet_case("loss_triplet_batch_hard", 0.2, "batch_hard")


@case
def loss_triplet_batch_hard_sq():
    return triplet_case("loss_triplet_batch_hard_sq", 0.2, "batch_hard", squared=True)


@case
def loss_triplet_semi_hard():
    return triplet_case("loss_triplet_semi_hard", 0.2, "semi_hard")


@case
def loss_triplet_all():
    return triplet_case("loss_triplet_all", 0.2, "all")


@case
def loss_triplet_all_sq():
    return triplet_case("loss_triplet_all_sq", 0.3, "all", squared=True)


@case
def loss_ntxent():
    # random rows (not normalised: the loss normalises them itself), temperature 0.5
    name = "loss_ntxent"
    seed_for(name)
    return loss_case(name, randn(8, 5, scale=1.5), torch.zeros(8),
                     lambda p, t: ntxent_ref(p, 0.5))


@case
def loss_ntxent_views():
    # two noisy views of 6 images, temperature 0.1
    name = "loss_ntxent_views"
    seed_for(name)
    base = randn(6, 7)
    pred = torch.cat([base + randn(6, 7, scale=0.3), base + randn(6, 7, scale=0.3)])
    return loss_case(name, pred, torch.zeros(12), lambda p, t: ntxent_ref(p, 0.1))


def supcon_ref(p, labels, tau):
    """Supervised contrastive loss (Khosla et al. 2020, L_out), mean over anchors with a positive."""
    n = p.shape[0]
    u = F.normalize(p, dim=1)
    eye = torch.eye(n, dtype=torch.bool)
    logp = torch.log_softmax((u @ u.T / tau).masked_fill(eye, -np.inf), dim=1)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    count = pos.sum(dim=1)
    has = count > 0
    per = -(logp.masked_fill(~pos, 0.0)).sum(dim=1)[has] / count[has].double()
    return per.mean()


@case
def loss_supcon():
    # the 12-row metric batch (a class of two and a row without a positive), raw rows, tau 0.1
    name = "loss_supcon"
    seed_for(name)
    labels = torch.tensor(METRIC_LABELS, dtype=torch.float32)[torch.randperm(len(METRIC_LABELS))]
    pred = randn(len(METRIC_LABELS), 6, scale=1.5)
    return loss_case(name, pred, labels, lambda p, t: supcon_ref(p, t, 0.1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    total = 0
    global SALT
    for fn in CASES:
        for SALT in range(100):
            try:
                fx = fn()
                break
            except NearKink as e:
                print(f"  redraw: {e}")
        else:
            sys.exit(f"{fn.__name__}: no salt in 0..99 avoids near-kinks")
        path, size = fx.write(args.out)
        total += size
        print(f"{os.path.relpath(path)}  {len(fx.tensors)} tensors  {size} bytes  salt {SALT}")
    print(f"{len(CASES)} fixtures, {total} bytes, torch {torch.__version__}")
    if total > 2 * 1024 * 1024:
        sys.exit("fixtures exceed 2 MB")


if __name__ == "__main__":
    main()
