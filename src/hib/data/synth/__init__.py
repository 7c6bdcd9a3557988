"""Offline corpora from speech synthesis, each in a real corpus's layout.

`corpus.build_corpus` (keywords, Speech Commands layout), `asr_corpus.build_asr_corpus`
(LibriSpeech layout) and `ic_corpus.build_ic_corpus` (Fluent Speech Commands layout) are the
entry points; `build` and `voices` hold what they share. `espeak` and `piper` are the two
engines (each `synthesize(text, ...) -> float32 16 kHz`), `noise` makes the noises.
Nothing is imported here, so using one engine does not load the others.
"""
