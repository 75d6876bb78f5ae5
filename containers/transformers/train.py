"""Create the reference sentiment classifier locally and package it as a SageMaker artifact.

No model hub is involved at any step: everything is built on this machine, in seconds.

1. A corpus of short English sentences labelled POSITIVE or NEGATIVE is generated
   deterministically from the word lists below (templates x subjects x sentiment phrases).
2. A WordPiece tokenizer is built on it with the ``tokenizers`` library (BERT-style:
   lower-casing normaliser, ``[CLS] ... [SEP]`` template; its vocabulary is the corpus's
   words, counted by a ``tokenizers`` trainer, plus character pieces for unseen words) and
   wrapped as a ``PreTrainedTokenizerFast``.
3. A tiny BERT (2 layers, 2 heads, hidden size 32) for sequence classification is
   initialised from a fixed seed and fine-tuned for a few epochs on 80 % of the corpus; the
   accuracy on the other 20 % (held out, never trained on) is printed.
4. ``save_pretrained`` writes model (safetensors) and tokenizer into one directory, which is
   packed reproducibly (sorted members, fixed mtimes and owners) into ``model.tar.gz`` with
   the files at its root, the layout SageMaker extracts into ``/opt/ml/model``.

The container loads it back with ``AutoModelForSequenceClassification.from_pretrained`` and
``AutoTokenizer.from_pretrained``, so the host venv's torch/transformers/tokenizers versions
must be the ones pinned in ``requirements.txt``::

    .venv/bin/python containers/transformers/train.py [--out build/model.tar.gz]
"""

from __future__ import annotations

import argparse
import gzip
import io
import itertools
import json
import random
import string
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tokenizers
import torch
import transformers
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

DEFAULT_OUT = Path(__file__).resolve().parent / "build" / "model.tar.gz"
SEED = 0
#: Fixed timestamp for tar members and the gzip header (2024-01-01T00:00:00Z).
FIXED_MTIME = 1_704_067_200
LABELS = ("NEGATIVE", "POSITIVE")
#: Longest input the model accepts (tokens, [CLS] and [SEP] included); the server truncates
#: to this by default. Small on purpose: the corpus sentences are under 20 tokens.
MAX_LENGTH = 128
HELD_OUT_FRACTION = 0.2
EPOCHS = 4
BATCH_SIZE = 32
LEARNING_RATE = 3e-3

# --- the corpus ---------------------------------------------------------------------------
# Sentences are "<template>" filled with a subject and a sentiment phrase. Phrases carry the
# label; subjects and templates are shared by both labels, so the model must learn the
# sentiment words, not the sentence shape.
SUBJECTS = (
    "the movie",
    "this film",
    "the food",
    "the service",
    "this book",
    "my new phone",
    "the hotel room",
    "the concert",
    "the staff",
    "this restaurant",
    "the game",
    "the show",
    "the app",
    "the trip",
    "the coffee",
    "this product",
)
POSITIVE_PHRASES = (
    "great",
    "wonderful",
    "excellent",
    "amazing",
    "delightful",
    "fantastic",
    "superb",
    "lovely",
    "brilliant",
    "enjoyable",
    "really good",
    "so much fun",
    "a real pleasure",
    "worth every penny",
)
NEGATIVE_PHRASES = (
    "terrible",
    "awful",
    "boring",
    "horrible",
    "disappointing",
    "dreadful",
    "poor",
    "really bad",
    "annoying",
    "useless",
    "a waste of time",
    "a total mess",
    "not worth the money",
    "painful to sit through",
)
TEMPLATES = (
    "{subject} was {phrase}",
    "i thought {subject} was {phrase}",
    "honestly, {subject} is {phrase}",
    "in my opinion {subject} was {phrase}!",
    "{subject} turned out to be {phrase}",
    "my friends said {subject} was {phrase} and they were right",
)
#: Whole sentences with sentiment verbs, so "I love it" / "I hate it" style inputs work too.
POSITIVE_VERBS = ("i love {subject}", "i really enjoyed {subject}", "we adored {subject}")
NEGATIVE_VERBS = ("i hate {subject}", "i really disliked {subject}", "we regretted {subject}")


@dataclass(frozen=True)
class Example:
    """One labelled sentence; ``label`` indexes :data:`LABELS`."""

    text: str
    label: int


def build_corpus() -> list[Example]:
    """All sentences of the generated corpus, in a fixed order (3,144)."""
    positive, negative = LABELS.index("POSITIVE"), LABELS.index("NEGATIVE")
    examples: list[Example] = []
    for template, subject in itertools.product(TEMPLATES, SUBJECTS):
        for phrase in POSITIVE_PHRASES:
            examples.append(Example(template.format(subject=subject, phrase=phrase), positive))
        for phrase in NEGATIVE_PHRASES:
            examples.append(Example(template.format(subject=subject, phrase=phrase), negative))
    for subject in SUBJECTS:
        examples += [Example(v.format(subject=subject), positive) for v in POSITIVE_VERBS]
        examples += [Example(v.format(subject=subject), negative) for v in NEGATIVE_VERBS]
    # Short forms too ("great food", "awful!"), so the model does not tie sentiment to the
    # length or shape of the templated sentences.
    nouns = [subject.split()[-1] for subject in SUBJECTS]
    for phrases, label in ((POSITIVE_PHRASES, positive), (NEGATIVE_PHRASES, negative)):
        for phrase in phrases:
            examples += [Example(phrase, label), Example(f"{phrase}!", label)]
            if " " not in phrase:
                examples += [Example(f"{phrase} {noun}", label) for noun in nouns]
    return examples


def split(examples: Sequence[Example], rng: random.Random) -> tuple[list[Example], list[Example]]:
    """Shuffle with ``rng`` and split into (train, held-out)."""
    shuffled = list(examples)
    rng.shuffle(shuffled)
    cut = int(len(shuffled) * (1 - HELD_OUT_FRACTION))
    return shuffled[:cut], shuffled[cut:]


# --- tokenizer ----------------------------------------------------------------------------


def train_tokenizer(texts: Sequence[str]) -> PreTrainedTokenizerFast:
    """Train a BERT-style WordPiece tokenizer on ``texts``, deterministically.

    ``tokenizers``' WordPiece/BPE trainers break ties between equally frequent merges in hash
    map order, which changes from run to run (seen: a different vocabulary on every run, even
    single-threaded). So the word inventory is learnt with the ``WordLevelTrainer`` (a plain
    count: the same set every time), sorted, and completed with every character as a word
    start and as a ``##`` continuation piece, which lets WordPiece spell out words it has
    never seen instead of mapping them to ``[UNK]``.
    """
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()

    word_level = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    word_level.normalizer = normalizer
    word_level.pre_tokenizer = pre_tokenizer
    word_level.train_from_iterator(
        texts, trainer=trainers.WordLevelTrainer(min_frequency=1, show_progress=False)
    )
    words = sorted(word_level.get_vocab())
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation).union(*words))
    pieces = [*special, *words, *chars, *(f"##{c}" for c in chars)]
    vocab = {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}  # first wins

    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=MAX_LENGTH,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


# --- model --------------------------------------------------------------------------------


def new_model(vocab_size: int, pad_token_id: int) -> BertForSequenceClassification:
    """A tiny randomly initialised BERT classifier (seeded by the caller)."""
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=pad_token_id,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        problem_type="single_label_classification",
    )
    return BertForSequenceClassification(config)


def _batches(
    examples: Sequence[Example], tokenizer: PreTrainedTokenizerFast
) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    out = []
    for start in range(0, len(examples), BATCH_SIZE):
        chunk = examples[start : start + BATCH_SIZE]
        encoded = tokenizer(
            [e.text for e in chunk], padding=True, truncation=True, return_tensors="pt"
        )
        out.append((dict(encoded), torch.tensor([e.label for e in chunk])))
    return out


def fine_tune(
    model: BertForSequenceClassification,
    tokenizer: PreTrainedTokenizerFast,
    train_set: Sequence[Example],
    rng: random.Random,
) -> int:
    """Train ``model`` in place for :data:`EPOCHS` epochs; returns the number of steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    model.train()
    steps = 0
    for _ in range(EPOCHS):
        order = list(train_set)
        rng.shuffle(order)
        for inputs, labels in _batches(order, tokenizer):
            loss = model(**inputs, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    model.eval()
    return steps


@torch.no_grad()
def accuracy(
    model: BertForSequenceClassification,
    tokenizer: PreTrainedTokenizerFast,
    examples: Sequence[Example],
) -> float:
    """Fraction of ``examples`` whose arg-max label is right."""
    right = 0
    for inputs, labels in _batches(examples, tokenizer):
        right += int((model(**inputs).logits.argmax(dim=-1) == labels).sum())
    return right / len(examples)


# --- artifact -----------------------------------------------------------------------------


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add one regular file to ``tar`` with reproducible metadata."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def write_artifact(model_dir: Path, out: Path) -> list[str]:
    """Pack every file of ``model_dir`` (flat) into the tarball ``out``, atomically."""
    names = sorted(p.name for p in model_dir.iterdir() if p.is_file())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=FIXED_MTIME) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in names:
            _add_file(tar, name, (model_dir / name).read_bytes())
    tmp.replace(out)
    return names


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: build corpus, tokenizer and model, train, write, report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"where to write the model tarball (default: {DEFAULT_OUT})",
    )
    args = parser.parse_args(argv)
    out: Path = args.out

    started = time.perf_counter()
    # Determinism: one seed for Python and torch, deterministic kernels, and one thread
    # (float sums in a different order would change the weights; it also leaves the other
    # core to whoever shares this machine).
    rng = random.Random(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()  # no "weights newly initialised" banner
    transformers.logging.disable_progress_bar()  # no "Writing model shards" bar

    corpus = build_corpus()
    train_set, held_out = split(corpus, rng)
    tokenizer = train_tokenizer([e.text for e in train_set])
    model = new_model(len(tokenizer), tokenizer.pad_token_id or 0)
    steps = fine_tune(model, tokenizer, train_set, rng)
    train_accuracy = accuracy(model, tokenizer, train_set)
    held_out_accuracy = accuracy(model, tokenizer, held_out)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp)
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        metadata = {
            "task": "text-classification (sentiment)",
            "labels": list(LABELS),
            "corpus_size": len(corpus),
            "train_size": len(train_set),
            "held_out_size": len(held_out),
            "training_steps": steps,
            "train_accuracy": round(train_accuracy, 6),
            "held_out_accuracy": round(held_out_accuracy, 6),
            "parameters": sum(p.numel() for p in model.parameters()),
            "versions": {
                "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__,
            },
        }
        (model_dir / "smlocal_metadata.json").write_text(
            json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        names = write_artifact(model_dir, out)

    print(f"wrote {out} ({out.stat().st_size} bytes): {', '.join(names)}")
    print(
        f"corpus: {len(corpus)} sentences ({len(train_set)} train, {len(held_out)} held out); "
        f"vocab {len(tokenizer)}; {metadata['parameters']} parameters; {steps} steps"
    )
    print(f"train accuracy: {train_accuracy:.4f}")
    print(f"held-out accuracy: {held_out_accuracy:.4f}")
    print(f"took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
