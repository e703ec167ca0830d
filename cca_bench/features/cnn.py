"""ImageNet CNN architectures in plain torch, named like their published state dicts (no torchvision / timm).

Parameter names match the files users already have, so those load with strict key checks:

- ``vgg(cfg)``: torchvision VGG16 / VGG19 (Simonyan & Zisserman 2015): ``features.N``, ``classifier.N``.
- ``resnet152()``: torchvision ResNet-152 v1.5 (He et al. 2016; stride on the 3x3 conv of a bottleneck):
  ``conv1``, ``bn1``, ``layerK.i.{conv1,bn1,conv2,bn2,conv3,bn3,downsample.0,downsample.1}``, ``fc``.
- ``inception_v3()``: torchvision Inception v3 with Google's weights (Szegedy et al. 2016):
  ``Conv2d_1a_3x3.conv/bn`` ... ``Mixed_7c``, ``AuxLogits`` (kept only so the file loads strictly), ``fc``.
- ``inception_resnet_v2()``: Cadene's ``pretrainedmodels`` / timm layout (Szegedy et al. 2017):
  ``conv2d_1a`` ... ``repeat``, ``repeat_1``, ``repeat_2``, ``block8``, ``conv2d_7b``, ``classif``.

Every builder takes ``width`` (channel multiplier, 1.0 = the published network; tests use small widths to
keep random state dicts tiny) and ``num_classes``. Every model has ``extract(x) -> (b, d)``: the vector
this suite uses as image features (VGG: fc7 after its ReLU; the others: global average pool), and
``out_dim`` = d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VGG_CFGS = {  # conv widths, "M" = 2x2 max pool (torchvision's configurations D and E)
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _w(c: int, width: float) -> int:
    """Channels at ``width``; at least 4 so that very thin test networks still pass a signal through ReLUs."""
    return c if width == 1 else max(4, int(round(c * width)))


# ------------------------------------------------------------------------------------------------------ VGG


class VGG(nn.Module):
    """VGG: 3x3 conv + ReLU stacks, max pools, 7x7 adaptive average pool, three fully connected layers."""

    def __init__(self, cfg: list, width: float = 1.0, num_classes: int = 1000):
        super().__init__()
        layers, c_in = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, _w(v, width), 3, padding=1), nn.ReLU(inplace=True)]
                c_in = _w(v, width)
        hidden = _w(4096, width)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 49, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )
        self.out_dim = hidden

    def pool5(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, H, W) -> (b, 512, H/32, W/32): the last max pool of the conv stack."""
        return self.features(x)

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, 224, 224) -> (b, 4096): fc7 after its ReLU (classifier[4]); dropout is off in eval."""
        x = torch.flatten(self.avgpool(self.pool5(x)), 1)
        return self.classifier[:5](x)

    def forward(self, x):
        return self.classifier[5:](self.extract(x))


def vgg(name: str, width: float = 1.0, num_classes: int = 1000) -> VGG:
    """``vgg16`` or ``vgg19`` (torchvision layout, no batch norm)."""
    return VGG(VGG_CFGS[name], width, num_classes)


# --------------------------------------------------------------------------------------------------- ResNet


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand x4, plus the shortcut; ReLU after the sum."""

    def __init__(self, c_in: int, planes: int, stride: int):
        super().__init__()
        c_out = planes * 4
        self.conv1, self.bn1 = nn.Conv2d(c_in, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """Stem (7x7/2 conv, 3x3/2 max pool), four bottleneck stages, global average pool, fc."""

    def __init__(self, blocks: tuple[int, ...], width: float = 1.0, num_classes: int = 1000):
        super().__init__()
        c = _w(64, width)
        self.conv1, self.bn1 = nn.Conv2d(3, c, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(c)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)
        for k, (n, planes) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
            planes, stride = _w(planes, width), 1 if k == 1 else 2
            stage = [Bottleneck(c, planes, stride)] + [Bottleneck(planes * 4, planes, 1) for _ in range(n - 1)]
            setattr(self, f"layer{k}", nn.Sequential(*stage))
            c = planes * 4
        self.fc = nn.Linear(c, num_classes)
        self.out_dim = c

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, H, W) -> (b, 2048, H/32, W/32): the stem and the four bottleneck stages."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, H, W) -> (b, 2048) global average pool of the last stage."""
        return self.trunk(x).mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.extract(x))


def resnet152(width: float = 1.0, num_classes: int = 1000) -> ResNet:
    return ResNet((3, 8, 36, 3), width, num_classes)


# ------------------------------------------------------------------------------------- shared Inception parts


def cat_channels(xs: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(xs, 1)``; oneDNN tensors (the prepacked bf16 path of
    :func:`cca_bench.features.accel.prepack_bf16`) are joined as plain tensors, torch has no oneDNN cat."""
    if xs[0].is_mkldnn:
        return torch.cat([x.to_dense() for x in xs], 1).to_mkldnn()
    return torch.cat(xs, 1)


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as both Google ports use) -> ReLU; keys ``conv``, ``bn``."""

    def __init__(self, c_in: int, c_out: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _seq(*convs: tuple) -> nn.Sequential:
    """A chain of BasicConv2d, each given as (c_in, c_out, kernel[, stride[, padding]])."""
    return nn.Sequential(*(BasicConv2d(*c) for c in convs))


# ------------------------------------------------------------------------------------------- Inception v3


class InceptionA(nn.Module):
    """35x35 block: 1x1; 1x1 -> 5x5; 1x1 -> 3x3 -> 3x3; 3x3 average pool -> 1x1 (``pool_features``)."""

    def __init__(self, c_in: int, pool_features: int, w: float):
        super().__init__()
        c64, c48, c96 = _w(64, w), _w(48, w), _w(96, w)
        self.branch1x1 = BasicConv2d(c_in, c64, 1)
        self.branch5x5_1, self.branch5x5_2 = BasicConv2d(c_in, c48, 1), BasicConv2d(c48, c64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, c64, 1)
        self.branch3x3dbl_2 = BasicConv2d(c64, c96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c96, c96, 3, padding=1)
        self.branch_pool = BasicConv2d(c_in, _w(pool_features, w), 1)
        self.out_channels = 2 * c64 + c96 + _w(pool_features, w)

    def forward(self, x):
        return cat_channels(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1)),
            ]
        )


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17: 3x3/2 conv, double 3x3 ending in /2, max pool."""

    def __init__(self, c_in: int, w: float):
        super().__init__()
        c384, c64, c96 = _w(384, w), _w(64, w), _w(96, w)
        self.branch3x3 = BasicConv2d(c_in, c384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, c64, 1)
        self.branch3x3dbl_2 = BasicConv2d(c64, c96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c96, c96, 3, stride=2)
        self.out_channels = c384 + c96 + c_in

    def forward(self, x):
        dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return cat_channels([self.branch3x3(x), dbl, F.max_pool2d(x, 3, stride=2)])


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (1x7 then 7x1) of ``c7`` channels."""

    def __init__(self, c_in: int, c7: int, w: float):
        super().__init__()
        c7, c192 = _w(c7, w), _w(192, w)
        row, col = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))
        self.branch1x1 = BasicConv2d(c_in, c192, 1)
        self.branch7x7_1, self.branch7x7_2 = BasicConv2d(c_in, c7, 1), BasicConv2d(c7, c7, *row)
        self.branch7x7_3 = BasicConv2d(c7, c192, *col)
        self.branch7x7dbl_1, self.branch7x7dbl_2 = BasicConv2d(c_in, c7, 1), BasicConv2d(c7, c7, *col)
        self.branch7x7dbl_3, self.branch7x7dbl_4 = BasicConv2d(c7, c7, *row), BasicConv2d(c7, c7, *col)
        self.branch7x7dbl_5 = BasicConv2d(c7, c192, *row)
        self.branch_pool = BasicConv2d(c_in, c192, 1)
        self.out_channels = 4 * c192

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for k in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{k}")(d)
        return cat_channels([self.branch1x1(x), b7, d, self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))])


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: 1x1 then 3x3/2; 1x1, 1x7, 7x1, 3x3/2; max pool."""

    def __init__(self, c_in: int, w: float):
        super().__init__()
        c192, c320 = _w(192, w), _w(320, w)
        self.branch3x3_1, self.branch3x3_2 = BasicConv2d(c_in, c192, 1), BasicConv2d(c192, c320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, c192, 1)
        self.branch7x7x3_2 = BasicConv2d(c192, c192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(c192, c192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(c192, c192, 3, stride=2)
        self.out_channels = c320 + c192 + c_in

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return cat_channels([b3, b7, F.max_pool2d(x, 3, stride=2)])


class InceptionE(nn.Module):
    """8x8 block whose 3x3 branches end in parallel 1x3 and 3x1 convolutions (expanded filter bank)."""

    def __init__(self, c_in: int, w: float):
        super().__init__()
        c320, c384, c448, c192 = _w(320, w), _w(384, w), _w(448, w), _w(192, w)
        row, col = ((1, 3), 1, (0, 1)), ((3, 1), 1, (1, 0))
        self.branch1x1 = BasicConv2d(c_in, c320, 1)
        self.branch3x3_1 = BasicConv2d(c_in, c384, 1)
        self.branch3x3_2a, self.branch3x3_2b = BasicConv2d(c384, c384, *row), BasicConv2d(c384, c384, *col)
        self.branch3x3dbl_1 = BasicConv2d(c_in, c448, 1)
        self.branch3x3dbl_2 = BasicConv2d(c448, c384, 3, padding=1)
        self.branch3x3dbl_3a, self.branch3x3dbl_3b = BasicConv2d(c384, c384, *row), BasicConv2d(c384, c384, *col)
        self.branch_pool = BasicConv2d(c_in, c192, 1)
        self.out_channels = c320 + 4 * c384 + c192

    def forward(self, x):
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return cat_channels(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_3a(d),
                self.branch3x3dbl_3b(d),
                self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1)),
            ]
        )


class InceptionAux(nn.Module):
    """The auxiliary classifier on the 17x17 grid: unused for features, present so the weights load strictly."""

    def __init__(self, c_in: int, num_classes: int, w: float):
        super().__init__()
        self.conv0, self.conv1 = BasicConv2d(c_in, _w(128, w), 1), BasicConv2d(_w(128, w), _w(768, w), 5)
        self.fc = nn.Linear(_w(768, w), num_classes)

    def forward(self, x):
        x = self.conv1(self.conv0(F.avg_pool2d(x, 5, stride=3)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InceptionV3(nn.Module):
    """Inception v3 for 299 x 299 inputs already scaled to [-1, 1] (Google's convention; see ``extract``)."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000):
        super().__init__()
        w = width
        self.Conv2d_1a_3x3 = BasicConv2d(3, _w(32, w), 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(_w(32, w), _w(32, w), 3)
        self.Conv2d_2b_3x3 = BasicConv2d(_w(32, w), _w(64, w), 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(_w(64, w), _w(80, w), 1)
        self.Conv2d_4a_3x3 = BasicConv2d(_w(80, w), _w(192, w), 3)
        c = _w(192, w)
        for name, make in [
            ("Mixed_5b", lambda c: InceptionA(c, 32, w)),
            ("Mixed_5c", lambda c: InceptionA(c, 64, w)),
            ("Mixed_5d", lambda c: InceptionA(c, 64, w)),
            ("Mixed_6a", lambda c: InceptionB(c, w)),
            ("Mixed_6b", lambda c: InceptionC(c, 128, w)),
            ("Mixed_6c", lambda c: InceptionC(c, 160, w)),
            ("Mixed_6d", lambda c: InceptionC(c, 160, w)),
            ("Mixed_6e", lambda c: InceptionC(c, 192, w)),
        ]:
            setattr(self, name, make(c))
            c = getattr(self, name).out_channels
        self.AuxLogits = InceptionAux(c, num_classes, w)
        self.Mixed_7a = InceptionD(c, w)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_channels, w)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_channels, w)
        self.out_dim = self.Mixed_7c.out_channels
        self.fc = nn.Linear(self.out_dim, num_classes)

    STAGES = (
        "Conv2d_1a_3x3",
        "Conv2d_2a_3x3",
        "Conv2d_2b_3x3",
        "max",
        "Conv2d_3b_1x1",
        "Conv2d_4a_3x3",
        "max",
        "Mixed_5b",
        "Mixed_5c",
        "Mixed_5d",
        "Mixed_6a",
        "Mixed_6b",
        "Mixed_6c",
        "Mixed_6d",
        "Mixed_6e",
        "Mixed_7a",
        "Mixed_7b",
        "Mixed_7c",
    )

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, 299, 299) -> (b, 2048, 8, 8): Mixed_7c."""
        for name in self.STAGES:
            x = F.max_pool2d(x, 3, stride=2) if name == "max" else getattr(self, name)(x)
        return x

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, 299, 299) in [-1, 1] -> (b, 2048) global average pool of Mixed_7c.

        torchvision's ``transform_input=True`` turns an ImageNet-normalised input into exactly this
        ``(pixel / 255 - 0.5) / 0.5`` scaling; this model takes the scaled input directly.
        """
        return self.trunk(x).mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.extract(x))


def inception_v3(width: float = 1.0, num_classes: int = 1000) -> InceptionV3:
    return InceptionV3(width, num_classes)


# ---------------------------------------------------------------------------------------- InceptionResNetV2


class Mixed5b(nn.Module):
    """35x35 entry block: 1x1; 1x1 -> 5x5; 1x1 -> 3x3 -> 3x3; avg pool (padding not counted) -> 1x1."""

    def __init__(self, c_in: int, w: float):
        super().__init__()
        c96, c48, c64 = _w(96, w), _w(48, w), _w(64, w)
        self.branch0 = BasicConv2d(c_in, c96, 1)
        self.branch1 = _seq((c_in, c48, 1), (c48, c64, 5, 1, 2))
        self.branch2 = _seq((c_in, c64, 1), (c64, c96, 3, 1, 1), (c96, c96, 3, 1, 1))
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), BasicConv2d(c_in, c64, 1)
        )
        self.out_channels = 2 * c96 + 2 * c64

    def forward(self, x):
        return cat_channels([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)])


class Residual(nn.Module):
    """An Inception-ResNet block: branches concatenated, a 1x1 conv (with bias) back to ``c``, scaled and
    added to the input, then ReLU (not after the last block8)."""

    def __init__(self, c: int, branches: list[nn.Module], c_cat: int, scale: float, relu: bool = True):
        super().__init__()
        for k, b in enumerate(branches):
            setattr(self, f"branch{k}", b)
        self.n, self.scale, self.relu = len(branches), scale, relu
        self.conv2d = nn.Conv2d(c_cat, c, 1)

    def forward(self, x):
        y = cat_channels([getattr(self, f"branch{k}")(x) for k in range(self.n)])
        y = x + self.scale * self.conv2d(y)
        return F.relu(y) if self.relu else y


def block35(c: int, w: float) -> Residual:
    c32, c48, c64 = _w(32, w), _w(48, w), _w(64, w)
    return Residual(
        c,
        [
            BasicConv2d(c, c32, 1),
            _seq((c, c32, 1), (c32, c32, 3, 1, 1)),
            _seq((c, c32, 1), (c32, c48, 3, 1, 1), (c48, c64, 3, 1, 1)),
        ],
        2 * c32 + c64,
        0.17,
    )


def block17(c: int, w: float) -> Residual:
    c192, c128, c160 = _w(192, w), _w(128, w), _w(160, w)
    return Residual(
        c,
        [BasicConv2d(c, c192, 1), _seq((c, c128, 1), (c128, c160, (1, 7), 1, (0, 3)), (c160, c192, (7, 1), 1, (3, 0)))],
        2 * c192,
        0.10,
    )


def block8(c: int, w: float, relu: bool = True) -> Residual:
    c192, c224, c256 = _w(192, w), _w(224, w), _w(256, w)
    return Residual(
        c,
        [BasicConv2d(c, c192, 1), _seq((c, c192, 1), (c192, c224, (1, 3), 1, (0, 1)), (c224, c256, (3, 1), 1, (1, 0)))],
        c192 + c256,
        0.20 if relu else 1.0,
        relu,
    )


class Reduction(nn.Module):
    """Grid reduction: conv branches (``branch0..``) and a final 3x3/2 max pool branch, concatenated."""

    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        for k, b in enumerate(branches):
            setattr(self, f"branch{k}", b)
        self.n = len(branches)

    def forward(self, x):
        outs = [getattr(self, f"branch{k}")(x) for k in range(self.n)]
        return cat_channels(outs + [F.max_pool2d(x, 3, stride=2)])


def mixed_6a(c: int, w: float) -> Reduction:
    c384, c256 = _w(384, w), _w(256, w)
    return Reduction([BasicConv2d(c, c384, 3, 2), _seq((c, c256, 1), (c256, c256, 3, 1, 1), (c256, c384, 3, 2))])


def mixed_7a(c: int, w: float) -> Reduction:
    c256, c384, c288, c320 = _w(256, w), _w(384, w), _w(288, w), _w(320, w)
    return Reduction(
        [
            _seq((c, c256, 1), (c256, c384, 3, 2)),
            _seq((c, c256, 1), (c256, c288, 3, 2)),
            _seq((c, c256, 1), (c256, c288, 3, 1, 1), (c288, c320, 3, 2)),
        ]
    )


class InceptionResNetV2(nn.Module):
    """InceptionResNetV2 for 299 x 299 inputs scaled to [-1, 1]; 1536-d pooled features."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000):
        super().__init__()
        w = width
        c32, c64, c80, c192 = _w(32, w), _w(64, w), _w(80, w), _w(192, w)
        self.conv2d_1a, self.conv2d_2a = BasicConv2d(3, c32, 3, stride=2), BasicConv2d(c32, c32, 3)
        self.conv2d_2b = BasicConv2d(c32, c64, 3, padding=1)
        self.conv2d_3b, self.conv2d_4a = BasicConv2d(c64, c80, 1), BasicConv2d(c80, c192, 3)
        self.mixed_5b = Mixed5b(c192, w)
        c = self.mixed_5b.out_channels  # 320
        self.repeat = nn.Sequential(*(block35(c, w) for _ in range(10)))
        self.mixed_6a = mixed_6a(c, w)
        c = _w(384, w) * 2 + c  # 1088
        self.repeat_1 = nn.Sequential(*(block17(c, w) for _ in range(20)))
        self.mixed_7a = mixed_7a(c, w)
        c = _w(384, w) + _w(288, w) + _w(320, w) + c  # 2080
        self.repeat_2 = nn.Sequential(*(block8(c, w) for _ in range(9)))
        self.block8 = block8(c, w, relu=False)
        self.out_dim = _w(1536, w)
        self.conv2d_7b = BasicConv2d(c, self.out_dim, 1)
        self.classif = nn.Linear(self.out_dim, num_classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, 299, 299) -> (b, 1536, 8, 8): conv2d_7b."""
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        x = self.conv2d_4a(self.conv2d_3b(F.max_pool2d(x, 3, stride=2)))
        x = self.repeat(self.mixed_5b(F.max_pool2d(x, 3, stride=2)))
        x = self.repeat_1(self.mixed_6a(x))
        return self.conv2d_7b(self.block8(self.repeat_2(self.mixed_7a(x))))

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, 299, 299) in [-1, 1] -> (b, 1536) global average pool of conv2d_7b."""
        return self.trunk(x).mean(dim=(2, 3))

    def forward(self, x):
        return self.classif(self.extract(x))


def inception_resnet_v2(width: float = 1.0, num_classes: int = 1000) -> InceptionResNetV2:
    return InceptionResNetV2(width, num_classes)
