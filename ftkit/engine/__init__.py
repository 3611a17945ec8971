"""The training engine: the only layer that imports torch, transformers and peft."""
