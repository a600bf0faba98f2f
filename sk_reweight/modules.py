"""Ready-made PyTorch networks for :class:`ReweightedNeuralNetClassifier`.

All modules return raw logits, to be paired with ``CrossEntropyLoss`` (the
estimator's default criterion).
"""
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLP", "LeNet", "ResNet32"]


class MLP(nn.Module):
    """Fully connected network for tabular data.

    This is the network ``ReweightedNeuralNetClassifier(module=None)`` builds
    at fit time, with ``n_features`` and ``n_classes`` taken from the data.

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_classes : int
        Number of output logits.
    hidden_units : sequence of int, default=(100,)
        Width of each hidden layer; ``()`` gives a linear model.
    dropout : float, default=0.0
        Dropout probability after each hidden activation.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.modules import MLP
    >>> MLP(n_features=4, n_classes=3)(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(self, n_features, n_classes, hidden_units=(100,), dropout=0.0):
        super().__init__()
        if isinstance(hidden_units, int):
            hidden_units = (hidden_units,)
        if (not isinstance(hidden_units, Sequence) or isinstance(hidden_units, str)
                or not all(isinstance(u, int) and not isinstance(u, bool) and u >= 1 for u in hidden_units)):
            raise TypeError(
                f"hidden_units must be an int or a sequence of ints >= 1, got {hidden_units!r}."
            )
        layers, width = [], n_features
        for units in hidden_units:
            layers += [nn.Linear(width, units), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = units
        layers.append(nn.Linear(width, n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, X):
        return self.layers(X.flatten(1))


def mlp_sized_for(net):
    """The default network of ``module=None``: an :class:`MLP` sized from the data ``net`` saw.

    ``net`` is a classifier being fitted (it knows ``sample_shape_`` and
    ``classes_``); its ``module__*`` parameters go to the MLP.
    """
    if not hasattr(net, "classes_inferred_"):
        raise ValueError(
            "module=None builds an MLP sized from the data, so it is created by "
            "fit(); pass module=... to initialize() before fitting."
        )
    kwargs = net.get_params_for("module")
    taken = sorted({"n_features", "n_classes"} & set(kwargs))
    if taken:
        raise ValueError(
            f"module__{taken[0]} cannot be set with module=None: the default MLP takes "
            "n_features and n_classes from the data. Pass module=MLP to set them yourself."
        )
    n_features = 1
    for size in net.sample_shape_:
        n_features *= int(size)
    return MLP(n_features=n_features, n_classes=len(net.classes_), **kwargs)


class LeNet(nn.Module):
    """LeNet-5 style convolutional network for small images ``(n, C, H, W)``.

    The network of the paper's MNIST experiments: two 5x5 convolutions with
    max-pooling, then three fully connected layers.

    Parameters
    ----------
    n_classes : int, default=10
        Number of output logits.
    in_channels : int, default=1
        Number of image channels ``C``.
    image_size : int or (int, int), default=28
        Image height and width ``(H, W)``; both must be at least 12.

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.modules import LeNet
    >>> LeNet(n_classes=2)(torch.zeros(5, 1, 28, 28)).shape
    torch.Size([5, 2])
    """

    def __init__(self, n_classes=10, in_channels=1, image_size=28):
        super().__init__()
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        if min(h, w) < 12:
            raise ValueError(f"LeNet needs images of at least 12x12 pixels, got {h}x{w}.")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        # spatial size after conv(pad 2) -> pool -> conv(5) -> pool
        fh, fw = (h // 2 - 4) // 2, (w // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * fh * fw, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, n_classes),
        )

    def forward(self, X):
        return self.classifier(self.features(X))


class _BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet32(nn.Module):
    """ResNet-32 with batch norm for CIFAR-sized images ``(n, 3, 32, 32)``.

    He et al. (2016)'s CIFAR ResNet: three stages of five basic blocks with
    16, 32 and 64 channels (projection shortcuts), global average pooling.

    Parameters
    ----------
    n_classes : int, default=10
        Number of output logits.
    in_channels : int, default=3
        Number of image channels.
    width : int, default=16
        Channels of the first stage (doubled at each later stage).

    Examples
    --------
    >>> import torch
    >>> from sk_reweight.modules import ResNet32
    >>> ResNet32(n_classes=10)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, n_classes=10, in_channels=3, width=16):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        blocks, planes = [], width
        for stage, stride in enumerate((1, 2, 2)):
            out_planes = width * 2**stage
            for i in range(5):
                blocks.append(_BasicBlock(planes, out_planes, stride if i == 0 else 1))
                planes = out_planes
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(planes, n_classes)

    def forward(self, X):
        out = self.blocks(self.stem(X))
        return self.head(out.mean(dim=(2, 3)))
