"""Unpruned Whisper tiny.en WER and cost with the faithful 30 s input against the short one.

Both contexts decode the same clips in the same process, batches of similar length (sorted by
duration), so the seconds compare; WER is corpus-level after Whisper's normaliser, also per
degradation (clean / noisy) when the corpus has utterances.tsv. Prints one JSON object.

    python benchmarks/asr_context.py [--data DIR] [--split test] [--batch 8] [--dump TSV]

Without --data it builds (once, cached) and reads the default synthesized ASR corpus.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hib.data.corpora import asr_corpus
from hib.data.librispeech import ASRDataset, collate_asr, load_librispeech
from hib.tasks.wer import corpus_wer
from hib.upstream.whisper_asr import CONTEXTS, WhisperASR, load_whisper_asr


def transcribe_all(asr: WhisperASR, data: ASRDataset, batch: int) -> tuple[list[str], float]:
    """Hypotheses in dataset order, and the seconds spent (audio already in memory)."""
    order = sorted(range(len(data)), key=lambda i: data.durations[i])
    hypotheses: dict[int, str] = {}
    start = time.perf_counter()
    for k in range(0, len(order), batch):
        chunk = order[k : k + batch]
        waves, lengths, _ = collate_asr([data[i] for i in chunk])
        hypotheses.update(zip(chunk, asr.transcribe(waves, lengths), strict=True))
    return [hypotheses[i] for i in range(len(data))], time.perf_counter() - start


def conditions(root: Path, ids: list[str]) -> dict[str, str]:
    table = root / "utterances.tsv"
    if not table.exists():
        return {}
    rows = [line.split("\t") for line in table.read_text().splitlines()[1:]]
    noise = {r[0]: ("clean" if r[3] == "clean" else "noisy") for r in rows}
    return {i: noise[i] for i in ids if i in noise}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="LibriSpeech-layout folder (default: synthesized corpus)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--limit", type=int, help="only the first N utterances")
    parser.add_argument("--contexts", default=",".join(CONTEXTS))
    parser.add_argument("--dump", help="also write id, context, reference, hypothesis (TSV) here")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    root = Path(args.data) if args.data else asr_corpus()
    data = load_librispeech(root, args.split)
    if args.limit:
        data = data.subset(range(min(args.limit, len(data))))
    data.preload()
    condition = conditions(root, data.ids)
    asr = load_whisper_asr()
    out: dict = {"data": str(root), "split": args.split, "n": len(data)}
    out["audio_seconds"] = round(sum(data.durations), 1)
    dump = ["id\tcontext\treference\thypothesis\n"]
    for context in args.contexts.split(","):
        asr.context = context
        hyps, seconds = transcribe_all(asr, data, args.batch)
        result = {**corpus_wer(data.texts, hyps), "seconds": round(seconds, 1)}
        for name in sorted(set(condition.values())):
            keep = [i for i, u in enumerate(data.ids) if condition.get(u) == name]
            wer = corpus_wer([data.texts[i] for i in keep], [hyps[i] for i in keep])["wer"]
            result[f"wer_{name}"] = wer
        out[context] = result
        rows = zip(data.ids, data.texts, hyps, strict=True)
        dump += [f"{u}\t{context}\t{r}\t{h}\n" for u, r, h in rows]
    if args.dump:
        Path(args.dump).write_text("".join(dump))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
