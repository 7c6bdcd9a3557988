"""hib-attn: the attention-map variant of HIB, as the paper's reviews describe it (our
reconstruction; no paper text or code is public).

Each head gets a learnable attention matrix P_h = softmax(W_h) (T x S, initialised uniform) and a
learnable mix g_h = sigmoid(a_h); the bottlenecked map is A~ = (1 - g) A + g P, so the head's
context becomes (1 - g) C + g P V (C = A V). Fitted with the network frozen on
task loss + beta * mean similarity(A, A~), the task keeps close to its original map only the
heads it needs. A head's contribution is the similarity after fitting, 1 - E[TV(A, A~)] with TV the
total-variation distance between attention rows (= 1 - g E[TV(A, P)]).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from hib.methods.base import HeadMethod
from hib.methods.registry import register
from hib.tasks.base import TaskModel


@register
class HIBAttention(HeadMethod):
    name = "hib-attn"

    def __init__(self, beta: float = 0.1, epochs: int = 2, lr: float = 0.3, **common):
        super().__init__(**common)
        self.beta, self.epochs, self.lr = beta, epochs, lr

    def options(self) -> dict:
        return {**super().options(), "beta": self.beta, "epochs": self.epochs, "lr": self.lr}

    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        model.eval()
        heads = model.heads()
        mix_logit = torch.full(heads.shape, -4.0, requires_grad=True)
        maps: dict[int, torch.Tensor] = {}  # layer -> (h, T, S) logits, made at the first batch
        optimizer = None
        total, count = torch.zeros(heads.shape), 0
        for epoch in range(self.passes(self.epochs, data)):
            total, count = torch.zeros(heads.shape), 0
            for batch in self.batches(model, data, epoch):
                with heads.capture_values() as values:  # noqa: SIM117 (mix reads values)
                    with heads.replace_context(self._mixer(values, maps, mix_logit, heads)):
                        out = model.upstream(batch.waves, output_attentions=True)
                task_loss = model.loss_of(model.outputs(out.hidden_states, batch), batch)
                similarity = self._similarity(heads, out.attentions, maps, mix_logit)
                loss = task_loss + self.beta * similarity.mean()
                if optimizer is None:
                    optimizer = torch.optim.Adam([mix_logit, *maps.values()], lr=self.lr)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += similarity.detach() * len(batch)
                count += len(batch)
        return total / max(count, 1)

    @staticmethod
    def _mixer(values: list, maps: dict[int, torch.Tensor], mix_logit: torch.Tensor, heads):
        """The context replacement (1 - g) C + g P V; creates each layer's P at first use."""

        def mix(layer: int, ctx: torch.Tensor) -> torch.Tensor:
            v = values[layer][-1]  # (B, S, h, d), recorded by this same forward
            if layer not in maps:
                shape = (ctx.shape[2], ctx.shape[1], v.shape[1])
                maps[layer] = torch.zeros(shape, requires_grad=True)
            prior = torch.einsum("hts,bshd->bthd", maps[layer].softmax(-1), v)
            g = torch.sigmoid(mix_logit[layer, heads.kept[layer]])[:, None]
            return (1 - g) * ctx + g * prior

        return mix

    @staticmethod
    def _similarity(heads, attentions, maps, mix_logit) -> torch.Tensor:
        """(L, H) 1 - mean TV distance between each head's original and bottlenecked rows."""
        rows = []
        for layer, attn in enumerate(attentions):
            kept = heads.kept[layer]
            row = torch.zeros(heads.n_heads)
            if kept:
                tv = 0.5 * (attn.detach() - maps[layer].softmax(-1)).abs().sum(-1)  # (B, h, T)
                g = torch.sigmoid(mix_logit[layer, kept])
                row = row.index_put((torch.tensor(kept),), 1 - g * tv.mean(dim=(0, 2)))
            rows.append(row)
        return torch.stack(rows)
