"""magnitude: a head's weight mass, the L1 norm of its rows of W_Q, W_K, W_V and columns of W_O.

Data-free (Lin et al. 2022 prune speech SSL models by weight magnitude): a head with small
weights can only move the output a little, whatever the input.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from hib.methods.base import HeadMethod
from hib.methods.registry import register
from hib.tasks.base import TaskModel


@register
class Magnitude(HeadMethod):
    name = "magnitude"
    data_driven = False

    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        heads = model.heads()
        per_layer = []
        for block in heads.blocks:
            h, d = block.num_heads, block.head_dim
            rows = [p.weight.view(h, d, -1) for p in (block.q_proj, block.k_proj, block.v_proj)]
            cols = block.out_proj.weight.view(-1, h, d).transpose(0, 1)  # (h, D, d)
            per_layer.append(sum(w.abs().sum(dim=(1, 2)) for w in (*rows, cols)))
        return heads.on_grid(per_layer)
