"""Train ftkit's byte-level BPE tokenizer on the built-in datasets of every task.

Run once after changing built-in data: ``python scripts/build_tokenizer.py``.
The result, ``ftkit/assets/tokenizer.json``, ships in the package; the
``builtin:tiny-*`` models are keyed by its hash, so they rebuild themselves.
"""
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from ftkit.tasks import tasks

SPECIAL = ["<|pad|>", "<|unk|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
VOCAB_SIZE = 4096


def texts():
    def flatten(value):
        if isinstance(value, (list, tuple)):
            for v in value:
                yield from flatten(v)
        elif isinstance(value, dict):
            for v in value.values():
                yield from flatten(v)
        elif isinstance(value, str):
            yield value

    for spec in tasks:
        for row in spec.builtin():
            yield " ".join(flatten(row))


def main() -> None:
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL, min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts(), trainer)
    out = Path(__file__).resolve().parents[1] / "ftkit" / "assets" / "tokenizer.json"
    tok.save(str(out))
    print(f"wrote {out} ({tok.get_vocab_size()} tokens)")


if __name__ == "__main__":
    main()
