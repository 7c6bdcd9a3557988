"""hib-attn: the attention-map variant of HIB, as the paper's reviews describe it (our
reconstruction; no paper text or code is public).

Each head gets a learnable attention matrix P_h = softmax(W_h) (T x S, initialised uniform) and a
learnable mix g_h = sigmoid(a_h); the bottlenecked map is A~ = (1 - g) A + g P, so the head's
context becomes (1 - g) C + g P V (C = A V). Fitted with the network frozen on
task loss + beta * mean similarity(A, A~), the task keeps close to its original map only the
heads it needs. A head's contribution is the similarity after fitting, 1 - E[TV(A, A~)] with TV the
total-variation distance between attention rows (= 1 - g E[TV(A, P)]).

Clips of unequal length (SID, IC) get the top-left T x S corner of each P, softmaxed over its S
columns: P is a learned prior over positions, grown (new entries uniform) when a longer batch
comes, the optimizer then restarted on the grown matrices.
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
        mix_logit = torch.full(heads.shape, -4.0, device=heads.device, requires_grad=True)
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
                params = [mix_logit, *maps.values()]
                if optimizer is None or _ids(optimizer.param_groups[0]["params"]) != _ids(params):
                    optimizer = torch.optim.Adam(params, lr=self.lr)  # new or grown maps
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += similarity.detach().cpu() * len(batch)
                count += len(batch)
        return total / max(count, 1)

    @staticmethod
    def _mixer(values: list, maps: dict[int, torch.Tensor], mix_logit: torch.Tensor, heads):
        """The context replacement (1 - g) C + g P V; creates each layer's P at first use."""

        def mix(layer: int, ctx: torch.Tensor) -> torch.Tensor:
            v = values[layer][-1]  # (B, S, h, d), recorded by this same forward
            t, s = ctx.shape[1], v.shape[1]
            old = maps.get(layer)
            have = tuple(old.shape[1:]) if old is not None else (0, 0)
            if have[0] < t or have[1] < s:
                grown = ctx.new_zeros(ctx.shape[2], max(t, have[0]), max(s, have[1]))
                if old is not None:
                    grown[:, : have[0], : have[1]] = old.detach()
                maps[layer] = grown.requires_grad_()
            prior = torch.einsum("hts,bshd->bthd", _corner(maps[layer], t, s), v)
            g = torch.sigmoid(mix_logit[layer, heads.kept[layer]])[:, None]
            return (1 - g) * ctx + g * prior

        return mix

    @staticmethod
    def _similarity(heads, attentions, maps, mix_logit) -> torch.Tensor:
        """(L, H) 1 - mean TV distance between each head's original and bottlenecked rows."""
        rows = []
        for layer, attn in enumerate(attentions):
            kept = heads.kept[layer]
            row = mix_logit.new_zeros(heads.n_heads)
            if kept:
                prior = _corner(maps[layer], *attn.shape[-2:])
                tv = 0.5 * (attn.detach() - prior).abs().sum(-1)  # (B, h, T)
                g = torch.sigmoid(mix_logit[layer, kept])
                index = torch.tensor(kept, device=row.device)
                row = row.index_put((index,), 1 - g * tv.mean(dim=(0, 2)))
            rows.append(row)
        return torch.stack(rows)


def _corner(logits: torch.Tensor, t: int, s: int) -> torch.Tensor:
    """The (h, t, s) prior rows of a batch whose clips have t queries and s keys."""
    return logits[:, :t, :s].softmax(-1)


def _ids(tensors: list[torch.Tensor]) -> list[int]:
    return [id(t) for t in tensors]
