"""P5 / OpenP5 sequential recommendation as text: item indexing, prompts, arithmetic task, T5
model and decoding."""
