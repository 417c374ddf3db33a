"""Plain-torch reference models of seven torchvision classifiers, and tools to compare models with them.

torchvision cannot be imported in this environment (its C extension does not load with this torch), so the
seven architectures below are written out with ``torch.nn`` only, following torchvision 0.28 / 0.29
(``torchvision/models/*.py`` and ``torchvision/ops/misc.py``, identical in both releases) layer for layer:
the same submodule names and nesting, so that a torchvision ``state_dict`` loads into them with
``strict=True``; the same layer order, norm eps / momentum, channel rounding, ceil-mode pools and dropout
positions, so that parameter counts, MACs and eval-mode outputs agree with torchvision's.

Each builder makes the model for a 1x3x224x224 input and 1000 classes. Weight initialisation is
PyTorch's default (tests call :func:`randomize`).

Tools:

- :func:`macs`: FlopCounterMode FLOPs // 2 of one eval-mode forward on the meta device;
- :func:`state_in_use_order`: the state_dict tensors in the order a forward pass first uses them;
- :func:`copy_state`: copies one model's state into an equivalent, differently structured model;
- :func:`randomize`: deterministic random parameters and buffers.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["PARAMS", "REFERENCES", "copy_state", "macs", "randomize", "state_in_use_order"]

# ---------------------------------------------------------------------------------------------------------------
# Shared building blocks (torchvision/ops/misc.py, torchvision/ops/stochastic_depth.py, torchvision/models/_utils.py)
# ---------------------------------------------------------------------------------------------------------------


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """Rounds ``v`` to the nearest multiple of ``divisor`` (at least ``min_value``), never more than 10% down."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """Conv2d, then an optional norm, then an optional activation (children ``0``, ``1``, ``2``).

    Padding defaults to ``(kernel_size - 1) // 2 * dilation``; the conv has a bias only when there is no norm,
    unless ``bias`` says otherwise; the activation is built with ``inplace=True``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        norm_layer: Callable[..., nn.Module] | None = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
        dilation: int = 1,
        bias: bool | None = None,
    ) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        if bias is None:
            bias = norm_layer is None
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=bias
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """``input * scale_activation(fc2(activation(fc1(avgpool(input)))))``, fc1 / fc2 being 1x1 convs with bias."""

    def __init__(
        self,
        input_channels: int,
        squeeze_channels: int,
        activation: Callable[..., nn.Module] = nn.ReLU,
        scale_activation: Callable[..., nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        scale = self.avgpool(input)
        scale = self.fc1(scale)
        scale = self.activation(scale)
        scale = self.fc2(scale)
        scale = self.scale_activation(scale)
        return scale * input


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: the identity in eval mode (or when ``p == 0``)."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return input
        survival_rate = 1.0 - self.p
        size = [input.shape[0]] + [1] * (input.ndim - 1) if self.mode == "row" else [1] * input.ndim
        noise = torch.empty(size, dtype=input.dtype, device=input.device).bernoulli_(survival_rate)
        if survival_rate > 0.0:
            noise.div_(survival_rate)
        return input * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class Permute(nn.Module):
    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)


# ---------------------------------------------------------------------------------------------------------------
# EfficientNet-B0 (torchvision/models/efficientnet.py)
# ---------------------------------------------------------------------------------------------------------------


class MBConv(nn.Module):
    def __init__(
        self,
        input_channels: int,
        out_channels: int,
        expand_ratio: float,
        kernel: int,
        stride: int,
        stochastic_depth_prob: float,
        norm_layer: Callable[..., nn.Module],
    ) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and input_channels == out_channels
        expanded_channels = _make_divisible(input_channels * expand_ratio, 8)
        layers: list[nn.Module] = []
        if expanded_channels != input_channels:
            layers.append(
                Conv2dNormActivation(
                    input_channels, expanded_channels, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.SiLU
                )
            )
        layers.append(
            Conv2dNormActivation(
                expanded_channels,
                expanded_channels,
                kernel_size=kernel,
                stride=stride,
                groups=expanded_channels,
                norm_layer=norm_layer,
                activation_layer=nn.SiLU,
            )
        )
        squeeze_channels = max(1, input_channels // 4)
        layers.append(SqueezeExcitation(expanded_channels, squeeze_channels, activation=partial(nn.SiLU, inplace=True)))
        layers.append(
            Conv2dNormActivation(
                expanded_channels, out_channels, kernel_size=1, norm_layer=norm_layer, activation_layer=None
            )
        )
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = out_channels

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        result = self.block(input)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += input
        return result


# (expand_ratio, kernel, stride, input_channels, out_channels, num_layers), width_mult = depth_mult = 1.0
_EFFICIENTNET_B0_SETTING: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


class EfficientNet(nn.Module):
    """efficientnet_b0(): plain nn.BatchNorm2d (eps 1e-5, momentum 0.1; only B5-B7 and V2 use eps 1e-3)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, stochastic_depth_prob: float = 0.2) -> None:
        super().__init__()
        norm_layer = nn.BatchNorm2d
        setting = _EFFICIENTNET_B0_SETTING
        layers: list[nn.Module] = [
            Conv2dNormActivation(
                3, setting[0][3], kernel_size=3, stride=2, norm_layer=norm_layer, activation_layer=nn.SiLU
            )
        ]
        total_stage_blocks = sum(s[5] for s in setting)
        stage_block_id = 0
        for expand_ratio, kernel, stride, input_channels, out_channels, num_layers in setting:
            stage: list[nn.Module] = []
            for i in range(num_layers):
                sd_prob = stochastic_depth_prob * float(stage_block_id) / total_stage_blocks
                stage.append(
                    MBConv(
                        input_channels if i == 0 else out_channels,
                        out_channels,
                        expand_ratio,
                        kernel,
                        stride if i == 0 else 1,
                        sd_prob,
                        norm_layer,
                    )
                )
                stage_block_id += 1
            layers.append(nn.Sequential(*stage))
        lastconv_input_channels = setting[-1][4]
        lastconv_output_channels = 4 * lastconv_input_channels
        layers.append(
            Conv2dNormActivation(
                lastconv_input_channels,
                lastconv_output_channels,
                kernel_size=1,
                norm_layer=norm_layer,
                activation_layer=nn.SiLU,
            )
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout, inplace=True), nn.Linear(lastconv_output_channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


# ---------------------------------------------------------------------------------------------------------------
# MobileNetV3-Large (torchvision/models/mobilenetv3.py)
# ---------------------------------------------------------------------------------------------------------------


class InvertedResidual(nn.Module):
    def __init__(
        self,
        input_channels: int,
        kernel: int,
        expanded_channels: int,
        out_channels: int,
        use_se: bool,
        use_hs: bool,
        stride: int,
        norm_layer: Callable[..., nn.Module],
    ) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and input_channels == out_channels
        activation_layer = nn.Hardswish if use_hs else nn.ReLU
        layers: list[nn.Module] = []
        if expanded_channels != input_channels:
            layers.append(
                Conv2dNormActivation(
                    input_channels,
                    expanded_channels,
                    kernel_size=1,
                    norm_layer=norm_layer,
                    activation_layer=activation_layer,
                )
            )
        layers.append(
            Conv2dNormActivation(
                expanded_channels,
                expanded_channels,
                kernel_size=kernel,
                stride=stride,
                groups=expanded_channels,
                norm_layer=norm_layer,
                activation_layer=activation_layer,
            )
        )
        if use_se:
            squeeze_channels = _make_divisible(expanded_channels // 4, 8)
            layers.append(SqueezeExcitation(expanded_channels, squeeze_channels, scale_activation=nn.Hardsigmoid))
        layers.append(
            Conv2dNormActivation(
                expanded_channels, out_channels, kernel_size=1, norm_layer=norm_layer, activation_layer=None
            )
        )
        self.block = nn.Sequential(*layers)
        self.out_channels = out_channels
        self._is_cn = stride > 1

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        result = self.block(input)
        if self.use_res_connect:
            result += input
        return result


# (input_channels, kernel, expanded_channels, out_channels, use_se, activation, stride), dilation 1, width 1.0
_MOBILENET_V3_LARGE_SETTING: tuple[tuple[int, int, int, int, bool, str, int], ...] = (
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
)


class MobileNetV3(nn.Module):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, last_channel: int = 1280) -> None:
        super().__init__()
        norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        setting = _MOBILENET_V3_LARGE_SETTING
        layers: list[nn.Module] = [
            Conv2dNormActivation(
                3, setting[0][0], kernel_size=3, stride=2, norm_layer=norm_layer, activation_layer=nn.Hardswish
            )
        ]
        for input_channels, kernel, expanded, out_channels, use_se, act, stride in setting:
            layers.append(
                InvertedResidual(
                    input_channels, kernel, expanded, out_channels, use_se, act == "HS", stride, norm_layer
                )
            )
        lastconv_input_channels = setting[-1][3]
        lastconv_output_channels = 6 * lastconv_input_channels
        layers.append(
            Conv2dNormActivation(
                lastconv_input_channels,
                lastconv_output_channels,
                kernel_size=1,
                norm_layer=norm_layer,
                activation_layer=nn.Hardswish,
            )
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(lastconv_output_channels, last_channel),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_channel, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


# ---------------------------------------------------------------------------------------------------------------
# GoogLeNet (torchvision/models/googlenet.py), aux_logits=False, transform_input=False
# ---------------------------------------------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    """Conv2d (no bias), BatchNorm2d(eps=0.001), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = self.bn(x)
        return F.relu(x, inplace=True)


class Inception(nn.Module):
    def __init__(
        self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1), BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1)
        )
        # kernel_size=3 where the paper has 5: a known torchvision quirk (pytorch/vision#906), kept by torchvision.
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1), BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self.aux_logits = False
        self.transform_input = False
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.aux1 = None
        self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.maxpool1(x)
        x = self.conv2(x)
        x = self.conv3(x)
        x = self.maxpool2(x)
        x = self.inception3a(x)
        x = self.inception3b(x)
        x = self.maxpool3(x)
        x = self.inception4a(x)
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)
        x = self.inception4e(x)
        x = self.maxpool4(x)
        x = self.inception5a(x)
        x = self.inception5b(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        return self.fc(x)


# ---------------------------------------------------------------------------------------------------------------
# SqueezeNet 1.1 (torchvision/models/squeezenet.py)
# ---------------------------------------------------------------------------------------------------------------


class Fire(nn.Module):
    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int) -> None:
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


class SqueezeNet(nn.Module):
    """squeezenet1_1()."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 16, 64, 64),
            Fire(128, 16, 64, 64),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(128, 32, 128, 128),
            Fire(256, 32, 128, 128),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Conv2d(512, num_classes, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.classifier(x)
        return torch.flatten(x, 1)


# ---------------------------------------------------------------------------------------------------------------
# ConvNeXt-Tiny (torchvision/models/convnext.py)
# ---------------------------------------------------------------------------------------------------------------


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor: permute to NHWC, F.layer_norm, permute back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    def __init__(self, dim: int, layer_scale: float, stochastic_depth_prob: float) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(in_features=dim, out_features=4 * dim, bias=True),
            nn.GELU(),
            nn.Linear(in_features=4 * dim, out_features=dim, bias=True),
            Permute([0, 3, 1, 2]),
        )
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        result = self.layer_scale * self.block(input)
        result = self.stochastic_depth(result)
        result += input
        return result


class ConvNeXt(nn.Module):
    """convnext_tiny(): stages (96, 3), (192, 3), (384, 9), (768, 3); stochastic_depth_prob 0.1; layer_scale 1e-6."""

    def __init__(self, num_classes: int = 1000, stochastic_depth_prob: float = 0.1, layer_scale: float = 1e-6) -> None:
        super().__init__()
        block_setting: list[tuple[int, int | None, int]] = [(96, 192, 3), (192, 384, 3), (384, 768, 9), (768, None, 3)]
        norm_layer = partial(LayerNorm2d, eps=1e-6)
        layers: list[nn.Module] = [
            Conv2dNormActivation(
                3,
                block_setting[0][0],
                kernel_size=4,
                stride=4,
                padding=0,
                norm_layer=norm_layer,
                activation_layer=None,
                bias=True,
            )
        ]
        total_stage_blocks = sum(s[2] for s in block_setting)
        stage_block_id = 0
        for input_channels, out_channels, num_layers in block_setting:
            stage: list[nn.Module] = []
            for _ in range(num_layers):
                sd_prob = stochastic_depth_prob * stage_block_id / (total_stage_blocks - 1.0)
                stage.append(CNBlock(input_channels, layer_scale, sd_prob))
                stage_block_id += 1
            layers.append(nn.Sequential(*stage))
            if out_channels is not None:
                layers.append(
                    nn.Sequential(
                        norm_layer(input_channels), nn.Conv2d(input_channels, out_channels, kernel_size=2, stride=2)
                    )
                )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last = block_setting[-1]
        lastconv_output_channels = last[1] if last[1] is not None else last[0]
        self.classifier = nn.Sequential(
            norm_layer(lastconv_output_channels), nn.Flatten(1), nn.Linear(lastconv_output_channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        return self.classifier(x)


# ---------------------------------------------------------------------------------------------------------------
# DenseNet-121 (torchvision/models/densenet.py), memory_efficient=False, drop_rate=0
# ---------------------------------------------------------------------------------------------------------------


class _DenseLayer(nn.Module):
    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, prev_features: list[torch.Tensor]) -> torch.Tensor:
        concated_features = torch.cat(prev_features, 1)
        bottleneck_output = self.conv1(self.relu1(self.norm1(concated_features)))
        new_features = self.conv2(self.relu2(self.norm2(bottleneck_output)))
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return new_features


class _DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int, drop_rate: float):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features: torch.Tensor) -> torch.Tensor:
        features = [init_features]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, int, int, int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv0", nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers, num_features, bn_size, growth_rate, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(num_features, num_features // 2))
                num_features = num_features // 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        return self.classifier(out)


# ---------------------------------------------------------------------------------------------------------------
# ViT-B/16 (torchvision/models/vision_transformer.py)
# ---------------------------------------------------------------------------------------------------------------


class MLPBlock(nn.Sequential):
    """torchvision.ops.MLP(in_dim, [mlp_dim, in_dim], activation_layer=nn.GELU, dropout=dropout): children 0..4."""

    def __init__(self, in_dim: int, mlp_dim: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(in_dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, in_dim),
            nn.Dropout(dropout),
        )


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x = x + dropout(MHA(ln_1(x))); x + mlp(ln_2(x))."""

    def __init__(
        self,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.num_heads = num_heads
        self.ln_1 = norm_layer(hidden_dim)
        self.self_attention = nn.MultiheadAttention(hidden_dim, num_heads, dropout=attention_dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = norm_layer(hidden_dim)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        torch._assert(input.dim() == 3, f"Expected (batch_size, seq_length, hidden_dim) got {input.shape}")
        x = self.ln_1(input)
        x, _ = self.self_attention(x, x, x, need_weights=False)
        x = self.dropout(x)
        x = x + input
        y = self.ln_2(x)
        y = self.mlp(y)
        return x + y


class Encoder(nn.Module):
    def __init__(
        self,
        seq_length: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))
        self.dropout = nn.Dropout(dropout)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(num_layers):
            layers[f"encoder_layer_{i}"] = EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout, attention_dropout)
        self.layers = nn.Sequential(layers)
        self.ln = nn.LayerNorm(hidden_dim, eps=1e-6)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        torch._assert(input.dim() == 3, f"Expected (batch_size, seq_length, hidden_dim) got {input.shape}")
        input = input + self.pos_embedding
        return self.ln(self.layers(self.dropout(input)))


class VisionTransformer(nn.Module):
    """vit_b_16(): image 224, patch 16, 12 layers, 12 heads, hidden 768, MLP 3072, dropout 0, no representation."""

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        num_layers: int = 12,
        num_heads: int = 12,
        hidden_dim: int = 768,
        mlp_dim: int = 3072,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        torch._assert(image_size % patch_size == 0, "Input shape indivisible by patch size!")
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.mlp_dim = mlp_dim
        self.num_classes = num_classes
        self.conv_proj = nn.Conv2d(3, hidden_dim, kernel_size=patch_size, stride=patch_size)
        seq_length = (image_size // patch_size) ** 2
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        seq_length += 1
        self.encoder = Encoder(seq_length, num_layers, num_heads, hidden_dim, mlp_dim)
        self.seq_length = seq_length
        self.heads = nn.Sequential(OrderedDict([("head", nn.Linear(hidden_dim, num_classes))]))

    def _process_input(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        p = self.patch_size
        torch._assert(h == self.image_size, f"Wrong image height! Expected {self.image_size} but got {h}!")
        torch._assert(w == self.image_size, f"Wrong image width! Expected {self.image_size} but got {w}!")
        n_h = h // p
        n_w = w // p
        x = self.conv_proj(x)
        x = x.reshape(n, self.hidden_dim, n_h * n_w)
        return x.permute(0, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._process_input(x)
        n = x.shape[0]
        batch_class_token = self.class_token.expand(n, -1, -1)
        x = torch.cat([batch_class_token, x], dim=1)
        x = self.encoder(x)
        x = x[:, 0]
        return self.heads(x)


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------

REFERENCES: dict[str, Callable[[], nn.Module]] = {
    "efficientnet_b0": EfficientNet,
    "mobilenet_v3_large": MobileNetV3,
    "googlenet": GoogLeNet,
    "squeezenet1_1": SqueezeNet,
    "convnext_tiny": ConvNeXt,
    "densenet121": DenseNet,
    "vit_b_16": VisionTransformer,
}

# torchvision's own counts (the "num_params" of each model's weights metadata).
PARAMS: dict[str, int] = {
    "efficientnet_b0": 5_288_548,
    "mobilenet_v3_large": 5_483_032,
    "googlenet": 6_624_904,
    "squeezenet1_1": 1_235_496,
    "convnext_tiny": 28_589_128,
    "densenet121": 7_978_856,
    "vit_b_16": 86_567_656,
}


# ---------------------------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------------------------


def _state_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The tensors of ``model.state_dict()`` (the Parameter / buffer objects themselves), each once."""
    seen: set[int] = set()
    tensors: list[torch.Tensor] = []
    for t in model.state_dict(keep_vars=True).values():
        if id(t) not in seen:
            seen.add(id(t))
            tensors.append(t)
    return tensors


def macs(model: nn.Module, shape: Sequence[int] = (1, 3, 224, 224)) -> int:
    """Multiply-accumulates of one eval-mode forward pass: FlopCounterMode's total FLOPs // 2, on the meta device.

    The model runs with meta stand-ins for its parameters and buffers (``torch.func.functional_call``), so a CPU
    model is neither moved nor changed and nothing is computed. The meta device also keeps
    ``nn.MultiheadAttention`` off its fused fast path (which only runs on CPU / CUDA and, under no_grad in eval
    mode, hides the QKV projections and attention products from FlopCounterMode): ViT-B/16 counts
    17,563,828,224 MACs here, its true count.
    """
    state: dict[str, torch.Tensor] = {}
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        state[name] = torch.empty_like(t, device="meta")
    floating = [t for t in state.values() if t.is_floating_point()]
    dtype = floating[0].dtype if floating else torch.get_default_dtype()
    x = torch.empty(tuple(shape), dtype=dtype, device="meta")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            torch.func.functional_call(model, state, (x,))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


# Calls that only read a tensor's metadata (dtype, device, shape, requires_grad, ...): not uses of its values.
# nn.MultiheadAttention and nn.TransformerEncoderLayer read such attributes of their weights in their fast-path
# checks, in an order of their own, before the weights take part in any computation.
_METADATA_METHODS = {"dim", "size", "numel", "is_floating_point", "is_complex", "element_size", "stride"}


def _is_metadata_query(func: Callable[..., Any]) -> bool:
    name = getattr(func, "__name__", "")
    return name == "__get__" or name in _METADATA_METHODS


def _walk(obj: Any) -> Iterator[Any]:
    if isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _walk(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _walk(item)
    else:
        yield obj


class _FirstUseRecorder(TorchFunctionMode):
    def __init__(self, watched: dict[int, torch.Tensor]) -> None:
        super().__init__()
        self.watched = watched
        self.order: list[torch.Tensor] = []
        self.seen: set[int] = set()

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if not _is_metadata_query(func):
            for obj in _walk((args, kwargs)):
                if isinstance(obj, torch.Tensor) and id(obj) in self.watched and id(obj) not in self.seen:
                    self.seen.add(id(obj))
                    self.order.append(obj)
        return func(*args, **kwargs)


def state_in_use_order(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every tensor of ``model.state_dict()`` (the Parameter / buffer objects), in the order one forward pass on
    ``x`` first uses them.

    A TorchFunctionMode records each tensor argument (also inside lists, tuples and kwargs) of every torch
    function, Tensor method and operator called at the top level of the forward pass, e.g. F.conv2d(x, weight,
    bias), F.batch_norm(x, running_mean, running_var, weight, bias), F.multi_head_attention_forward(...,
    in_proj_weight, in_proj_bias, ..., out_proj.weight, out_proj.bias), ``layer_scale * y``. Attribute reads and
    other metadata queries (``w.dtype``, ``w.device``, ``w.dim()``) are not counted as uses.

    The pass runs with the model in eval mode (restored afterwards) and with grad enabled, so that
    nn.MultiheadAttention and nn.TransformerEncoderLayer take their ordinary path. In eval mode under no_grad
    they may take a fused fast path (torch._native_multi_head_attention / torch._transformer_encoder_layer_fwd)
    that receives all of a layer's weights in one call, in an order of its own (the attention weights before
    norm1 of a pre-norm layer): the order would then follow that kernel's signature rather than the computation,
    and a model built from nn.TransformerEncoderLayer would not pair with one built from nn.MultiheadAttention.
    With grad enabled and parameters that require grad, both modules refuse the fast path. (torch 2.13 also
    refuses it while a TorchFunctionMode is active, as here; grad keeps the guarantee whatever later releases do.)

    Tensors the pass never uses (BatchNorm's ``num_batches_tracked``, which only training updates, or the
    weights of a branch the forward skips) follow, in state_dict order.
    """
    tensors = _state_tensors(model)
    recorder = _FirstUseRecorder({id(t): t for t in tensors})
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), recorder:
            model(x)
    finally:
        model.train(was_training)
    return recorder.order + [t for t in tensors if id(t) not in recorder.seen]


def copy_state(source: nn.Module, target: nn.Module, x: torch.Tensor) -> None:
    """Copies ``source``'s parameters and buffers into ``target``, pairing them by order of first use on ``x``.

    This lets an equivalent model of a different structure (its state_dict in another order, under other names)
    receive the reference's weights. Raises AssertionError when the two models do not have the same number of
    state tensors or when a pair's shapes differ.
    """
    src = state_in_use_order(source, x)
    dst = state_in_use_order(target, x)
    assert len(src) == len(dst), f"source has {len(src)} state tensors, target has {len(dst)}"
    for i, (s, d) in enumerate(zip(src, dst)):
        assert s.shape == d.shape, (
            f"state tensor #{i} (in order of first use): source shape {tuple(s.shape)} != target shape {tuple(d.shape)}"
        )
    with torch.no_grad():
        for s, d in zip(src, dst):
            d.copy_(s)


def randomize(model: nn.Module, seed: int) -> None:
    """Fills every parameter and buffer of ``model`` with random values drawn deterministically from ``seed``.

    Values are drawn in float64 on the CPU in state_dict order, then copied in (any dtype / device):

    - ``running_var``: uniform in [0.5, 1.5);
    - ``num_batches_tracked``: integers in [0, 1000); other integer tensors (an index a model computes from its
      arguments, Swin's ``relative_position_index``) are kept as they are;
    - conv / linear weights (``weight`` or ``in_proj_weight`` with two or more dims): normal with std
      ``1 / sqrt(fan_in)``, fan_in = ``w[0].numel()``, so that activations keep their scale through deep nets;
    - other tensors named ``weight`` (1-D norm scales): ``1 + normal(std 0.1)``;
    - everything else (biases, running_mean, ConvNeXt's layer_scale, ViT's class_token and pos_embedding):
      normal with std 0.1.
    """
    gen = torch.Generator().manual_seed(seed)
    seen: set[int] = set()
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if id(t) in seen:
                continue
            seen.add(id(t))
            leaf = name.rsplit(".", 1)[-1]
            shape = tuple(t.shape)
            if not (t.is_floating_point() or t.is_complex()):
                if leaf != "num_batches_tracked":
                    continue  # an index a model computed (Swin's relative_position_index): kept as it is
                values = torch.randint(0, 1000, shape, generator=gen)
            elif leaf == "running_var":
                values = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5
            elif t.dim() >= 2 and leaf.endswith("weight"):
                values = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(t[0].numel())
            elif leaf == "weight":
                values = 1.0 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
            else:
                values = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
            t.copy_(values)
