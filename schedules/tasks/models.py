"""Models for the built-in and generic tasks: a small MLP and CNN for digits, logistic regression, the paper's
CIFAR ResNet-18 (BasicBlock with a ``residual_function``, as in the code the paper uses; paper-notes §3.1), a
small CNN for images of any size, and a small causal transformer over bytes."""

from __future__ import annotations

import torch
from torch import nn


def mlp(in_features: int, hidden: int, depth: int, num_classes: int) -> nn.Module:
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def small_cnn(channels: int, num_classes: int) -> nn.Module:
    """For 1x8x8 digits. BatchNorm is there on purpose: it makes the eval-mode measurement pass matter."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(2 * channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * channels * 4 * 4, num_classes),
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.residual_function = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual_function(x) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem without max-pool, four stages of BasicBlocks, global average pool, linear head.

    ``width`` is the stem width (64 in the paper); tests use a narrow one to stay fast. Input (B,
    ``in_channels``, H, W) with H, W >= 8 (three stride-2 stages, then global pooling); output (B, classes).
    """

    def __init__(
        self,
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        num_classes: int = 100,
        width: int = 64,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        channels = width
        stages: list[nn.Module] = []
        for i, count in enumerate(blocks):
            out = width * 2**i
            layers: list[nn.Module] = []
            for j in range(count):
                layers.append(BasicBlock(channels, out, stride=2 if (i > 0 and j == 0) else 1))
                channels = out
            stages.append(nn.Sequential(*layers))
        self.conv2_x, self.conv3_x, self.conv4_x, self.conv5_x = stages
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.conv5_x(self.conv4_x(self.conv3_x(self.conv2_x(x))))
        return self.fc(torch.flatten(self.avg_pool(x), 1))


def resnet18(num_classes: int, width: int = 64, in_channels: int = 3) -> ResNet:
    return ResNet((2, 2, 2, 2), num_classes=num_classes, width=width, in_channels=in_channels)


def image_cnn(in_channels: int, width: int, num_classes: int) -> nn.Module:
    """Three conv-BatchNorm-ReLU layers (``width``, 2 ``width``, 4 ``width`` channels; 2x2 max-pool after the
    first two), global average pooling and a linear head: (B, ``in_channels``, H, W) with H, W >= 4 to
    (B, ``num_classes``) logits."""

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]

    return nn.Sequential(
        *block(in_channels, width),
        nn.MaxPool2d(2),
        *block(width, 2 * width),
        nn.MaxPool2d(2),
        *block(2 * width, 4 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, num_classes),
    )


class ByteTransformer(nn.Module):
    """A small GPT-style causal language model over bytes: token and learned position embeddings,
    ``layers`` pre-LayerNorm transformer blocks (``heads`` attention heads, a 4x ``width`` GELU MLP, no
    dropout; PyTorch's ``nn.TransformerEncoderLayer`` with a causal mask), a final LayerNorm and a linear
    head. Input (B, T) token ids (any integer dtype, T <= ``context``); output (B, T, ``vocab``) logits where
    position t sees only tokens 0..t."""

    def __init__(self, context: int, width: int, layers: int, heads: int, vocab: int = 256) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(context, width)
        block = nn.TransformerEncoderLayer(
            width,
            heads,
            dim_feedforward=4 * width,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(
            block, layers, norm=nn.LayerNorm(width), enable_nested_tensor=False
        )
        self.head = nn.Linear(width, vocab)
        self.causal: torch.Tensor
        self.register_buffer(
            "causal", nn.Transformer.generate_square_subsequent_mask(context), persistent=False
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = int(tokens.shape[1])
        h = self.tokens(tokens.long()) + self.positions.weight[:t]
        h = self.blocks(h, mask=self.causal[:t, :t], is_causal=True)
        return self.head(h)
