"""Speech recognition: the pretrained model's own head (Whisper's decoder, or a CTC head), WER.

Nothing is trained: a run records the upstream, the head statistics (mean fill, HIB's prior)
and the unpruned WER. The loss every method minimises is the teacher-forced decoder
cross-entropy on the reference transcript (CTC loss for CTC checkpoints); the reported metric
is corpus-level WER after Whisper's English normaliser (hib.tasks.wer), from batched greedy
decoding. Data: LibriSpeech-layout folders (the synthesized corpus by default).

    upstream.name=whisper-tiny.en             Whisper tiny.en with its decoder (30 s windows)
    upstream.name=whisper-base                Whisper base (multilingual, asked for English)
    upstream.name=facebook/wav2vec2-base-960h  a transformers CTC checkpoint (or its folder)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from hib.data.corpora import asr_corpus
from hib.data.librispeech import ASRDataset, collate_asr, load_librispeech
from hib.data.synth.asr_corpus import SPLITS
from hib.distributed import LOCAL, World
from hib.errors import ConfigError
from hib.tasks.base import Batch, EvalResult, Metric, Splits, Task, TaskModel, register_task
from hib.tasks.wer import corpus_wer
from hib.upstream.packaged import PACKAGED

WER = Metric("wer", higher_is_better=False)


class Recognizer(TaskModel):
    """A recogniser (`WhisperASR` or `CTCASR`) as a task model: its encoder is the upstream
    whose heads hib sees, its decoder or CTC head is the task head."""

    metric = WER
    eval_batch_size = 8  # 30 s windows: 1500 positions per clip
    fit_batch_size = 8

    def __init__(self, recognizer: torch.nn.Module, scope: str = "encoder"):
        super().__init__(recognizer.upstream, recognizer)
        if scope != "encoder" and not hasattr(recognizer, "head_source"):
            raise ConfigError(f"config key 'heads.scope': {scope!r} needs Whisper (a decoder)")
        self.scope = scope

    def head_source(self) -> Any:
        return self.upstream if self.scope == "encoder" else self.head.head_source(self.scope)

    def stats_forward(self, batch: Batch) -> None:
        """Encoder on the batch, teacher-forced decoder per transcript (no padding tokens)."""
        if self.scope == "encoder":
            return super().stats_forward(batch)
        self.head.stats_forward((batch.waves, batch.lengths, batch.targets))

    def collate(self, items: Sequence[tuple[torch.Tensor, str]]) -> Batch:
        waves, lengths, texts = collate_asr(items)
        return Batch(self.head.prepare(waves, lengths), list(texts), lengths)

    def outputs(self, hidden_states: list[torch.Tensor], batch: Batch) -> torch.Tensor:
        return self.head.outputs(hidden_states[-1], batch.targets, batch.lengths)

    def loss_of(self, outputs: torch.Tensor, batch: Batch, reduction: str = "mean") -> torch.Tensor:
        return self.head.loss_of(outputs, batch.targets, batch.lengths, reduction)

    def predict(self, hidden_states: list[torch.Tensor], batch: Batch) -> list[str]:
        return self.head.decode(hidden_states[-1], batch.lengths)

    def summarize(self, predictions: list[list[str]], batches: list[Batch]) -> EvalResult:
        hypotheses = [text for texts in predictions for text in texts]
        references = [text for batch in batches for text in batch.targets]
        wer = corpus_wer(references, hypotheses)
        per_utterance = [
            {"reference": r, "hypothesis": h} for r, h in zip(references, hypotheses, strict=True)
        ]
        return EvalResult(
            "wer", wer["wer"], len(references), {"words": wer["words"]}, per_utterance
        )

    def answer(self, outputs: torch.Tensor, batch: Batch) -> None:
        """attattr's F for a transcript: the probability of the reference tokens."""
        return None

    def answer_probability(self, outputs: torch.Tensor, batch: Batch, answer: Any) -> torch.Tensor:
        return self.head.reference_probability(outputs, batch.targets, batch.lengths)

    def head_state(self) -> dict[str, torch.Tensor]:
        return {}  # the pretrained head is loaded with the upstream, never trained here


def load_recognizer(name: str) -> torch.nn.Module:
    """Whisper (packaged weights) by name, else a transformers CTC checkpoint."""
    if name in PACKAGED:
        from hib.upstream.whisper_asr import load_whisper_asr

        return load_whisper_asr(name=name)
    from hib.upstream.ctc_asr import load_ctc_asr

    return load_ctc_asr(name)


@register_task
class SpeechRecognition(Task):
    name = "asr"
    metric = WER
    corpus = asr_corpus
    trains_head = False
    score_clips = 200  # as the paper fitted its ASR bottleneck
    compare_clips = 200

    def _folders(self) -> dict[str, str]:
        """Role -> split folder: data.splits, else the synthesized corpus's names."""
        chosen = self.config.data.splits
        if chosen is None:
            return {"train": SPLITS["fit"], "validation": SPLITS["validation"], "test": "test"}
        return dict(zip(("train", "validation", "test"), chosen, strict=True))

    def load_splits(self, progress: bool = True) -> Splits:
        root = self.root(progress)
        folders = self._folders()
        train, validation, test = (
            load_librispeech(root, folders[role]) for role in ("train", "validation", "test")
        )
        return self.limited(train, validation, test, root)

    def read_split(self, root: Path, split: str) -> ASRDataset:
        """`split` is a role (train / validation / test: the configured folders) or any folder
        name under `root` (test-clean, test-real ...)."""
        return load_librispeech(root, self._folders().get(split, split))

    def build_model(self) -> Recognizer:
        return Recognizer(load_recognizer(self.config.upstream.name), self.config.heads.scope)

    def train_batches(
        self,
        train_set: Dataset,
        model: TaskModel,
        epoch: int,
        clips: int | None = None,
        world: World = LOCAL,
    ):
        """The fitting split in order (head statistics; nothing is trained)."""
        return world.batches(train_set, range(len(train_set)), model.eval_batch_size, model.collate)
