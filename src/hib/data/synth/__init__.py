"""An offline keyword corpus from speech synthesis, in the Speech Commands layout.

`corpus.build_corpus` is the entry point; `espeak` and `piper` are the two engines (each
`synthesize(text, ...) -> float32 16 kHz`), `noise` makes the background-noise files.
Nothing is imported here, so using one engine does not load the others.
"""
