"""The neural network: a plain `torch.nn.Module` from preprocessed features to one logit.

Team-owned: `copier update` never touches this file. Change the architecture freely; keep
`in_features` as the first argument (training sets it from the data) and return one logit
per row. Plain torch only (no Lightning): this module is exported with `torch.export` and
served without the training stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    def __init__(
        self, in_features: int, hidden_dims: Sequence[int] = (64, 32), dropout: float = 0.1
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        """(batch, in_features) -> (batch,) logits."""
        logits: Tensor = self.layers(features)
        return logits.squeeze(-1)
