"""A T5-like Unigram tokenizer trained on the prompt corpus, and P5's whole-word ids.

The default P5 model is trained from scratch without internet, so its tokenizer is too. It
imitates T5's SentencePiece: a Unigram model over words marked by "▁" at their start, with
``<pad>`` = 0, ``</s>`` = 1 (appended to every text) and ``<unk>`` = 2. Numbers are cut into
pieces of at most two digits from the left ("1234" -> "▁12", "34"), as T5's SentencePiece
tends to cut them, so that neighbouring item IDs share pieces and the indexing question of the
study is the same as with T5. Collaborative codes such as ``<c17>`` are single tokens.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from llmrec.io import atomic_path

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
"""T5's special tokens, in the order of their ids 0, 1, 2."""

WORD_START = "▁"
"""SentencePiece's word-start marker, which replaces a space."""

CODE = re.compile(r"<[a-z]+\d+>")
"""A collaborative-indexing token, e.g. ``<c17>``; each becomes one atomic token."""

_NUMBER = re.compile(f"{WORD_START}?[0-9]+")
_SENTINEL = "\x01"
_DIGIT_SCORE = -10.0


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # The marker joins the first digit piece, so "1234" -> "▁12", "34"; the Unigram model then
    # never sees a longer run of digits and cannot learn whole numbers as single tokens.
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(f"{WORD_START}?[0-9]{{1,2}}"), behavior="isolated"),
        ]
    )


def digit_pieces() -> list[str]:
    """Every piece a number can be cut into: one or two digits, with and without the marker."""
    digits = [str(d) for d in range(10)] + [f"{d:02d}" for d in range(100)]
    return digits + [WORD_START + piece for piece in digits]


def _training_text(corpus: Iterable[str], codes: set[str], words: Counter) -> Iterator[str]:
    """The corpus without its codes (they become added tokens), counting codes and words.

    HF's Unigram trainer seeds its pieces only with substrings found in two distinct
    pre-tokenized words (huggingface/tokenizers#1027), so on a templated corpus a whole word
    such as "▁has" would never become a piece. A last line repeats every word with a sentinel
    suffix, which makes each word a candidate; the sentinel's pieces are dropped afterwards.
    """
    pre_tokenizer = _pre_tokenizer()
    for text in corpus:
        codes.update(CODE.findall(text))
        text = unicodedata.normalize("NFKC", CODE.sub(" ", text))
        words.update(
            word for word, _ in pre_tokenizer.pre_tokenize_str(text) if not _NUMBER.fullmatch(word)
        )
        yield text
    yield " ".join(word.lstrip(WORD_START) + _SENTINEL for word in sorted(words))


def _final_unigram(vocab: list[tuple[str, float]], words: Counter) -> models.Unigram:
    """The trained text pieces, rescored, then every digit piece at one shared score.

    HF's trainer iterates over hash maps, so its scores and their order carry float noise
    that changes from run to run. One Viterbi pass of the trained model over the corpus's
    words turns them into integer counts; scores ``log((count + 0.5) / total)`` and ids in
    order of count make the tokenizer deterministic.

    Within a digit chunk ("▁12") every candidate piece is a digit piece or the bare marker,
    and all scores are negative, so a shared score makes the whole chunk one token: any split
    of it adds a second negative score. Digit pieces occur nowhere else, so the score's value
    changes no other segmentation.
    """
    vocab = [(piece, score) for piece, score in vocab if _SENTINEL not in piece]
    trained = models.Unigram(
        vocab, unk_id=[piece for piece, _ in vocab].index(UNK), byte_fallback=False
    )
    counts: Counter = Counter()
    for word, n in words.items():
        for token in trained.tokenize(word):
            counts[token.value] += n
    digits = digit_pieces()
    special, skip = [PAD, EOS, UNK], {PAD, EOS, UNK, *digits}
    pieces = sorted(
        (piece for piece, _ in vocab if piece not in skip),
        key=lambda piece: (-counts[piece], piece),
    )
    total = sum(counts[piece] for piece in pieces) + 0.5 * len(pieces)
    scored = [(piece, math.log((counts[piece] + 0.5) / total)) for piece in pieces]
    return models.Unigram(
        [(piece, 0.0) for piece in special] + scored + [(piece, _DIGIT_SCORE) for piece in digits],
        unk_id=special.index(UNK),
        byte_fallback=False,
    )


def _code_order(code: str) -> tuple[str, int]:
    name, number = re.fullmatch(r"<([a-z]+)(\d+)>", code).groups()
    return name, int(number)


def _wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=512,
    )


def train_tokenizer(
    corpus: Iterable[str], vocab_size: int, folder: str | os.PathLike
) -> PreTrainedTokenizerFast:
    """Train a T5-like Unigram tokenizer on ``corpus`` and save it to ``folder``.

    Args:
        corpus: the texts (prompts and answers); read once, so a generator is fine.
        vocab_size: the Unigram trainer's target size, special tokens and the digit pieces
            it keeps included; all 220 digit pieces of :func:`digit_pieces` end up in the
            vocabulary, and the collaborative codes are added on top.
        folder: where ``tokenizer.json`` and its config go; replaced as a whole, never left
            half written.

    Returns:
        The tokenizer, as :func:`load_tokenizer` would give it back.
    """
    codes: set[str] = set()
    words: Counter = Counter()
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = _pre_tokenizer()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, EOS, UNK], unk_token=UNK, show_progress=False
    )
    tokenizer.train_from_iterator(_training_text(corpus, codes, words), trainer)
    if not words:
        raise ValueError(
            "the tokenizer corpus is empty (or only numbers and codes); there is no "
            "text to train on"
        )
    vocab = [tuple(entry) for entry in json.loads(tokenizer.to_str())["model"]["vocab"]]
    tokenizer.model = _final_unigram(vocab, words)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, 1)]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=WORD_START, prepend_scheme="always")
    # Not normalized: a code is matched as written, before NFKC and the marker touch it.
    tokenizer.add_tokens(
        [AddedToken(code, normalized=False) for code in sorted(codes, key=_code_order)]
    )
    wrapped = _wrap(tokenizer)
    save_tokenizer(wrapped, folder)
    return wrapped


def pretrained_tokenizer(
    name: str, corpus: Iterable[str], folder: str | os.PathLike
) -> PreTrainedTokenizerFast:
    """A pretrained T5 tokenizer (hub name or folder) with the corpus's codes added, saved.

    For a pretrained model (``t5-small``), whose vocabulary must stay its own. Needs internet
    for a hub name; build the model with ``build_t5(len(tokenizer), pretrained=name)`` so its
    embeddings grow by the added codes.

    Args:
        name: a hub model name or a local folder holding a T5 tokenizer.
        corpus: the texts; only their collaborative codes are used.
        folder: where to save the tokenizer.
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except OSError as error:
        raise RuntimeError(
            f"could not load the pretrained tokenizer {name!r}: a hub name needs "
            f"internet (or a filled HF cache), else give a local folder"
        ) from error
    codes = {code for text in corpus for code in CODE.findall(text)}
    tokenizer.add_tokens(
        [AddedToken(code, normalized=False) for code in sorted(codes, key=_code_order)]
    )
    save_tokenizer(tokenizer, folder)
    return tokenizer


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: str | os.PathLike) -> None:
    """Save ``tokenizer`` into a temporary folder beside ``folder``, then rename it into place."""
    with atomic_path(folder) as tmp:
        tokenizer.save_pretrained(tmp)
        # A rename cannot replace a non-empty folder; the old one goes only once the new is whole.
        if os.path.isdir(folder):
            shutil.rmtree(folder)


def load_tokenizer(folder: str | os.PathLike) -> PreTrainedTokenizerFast:
    """The tokenizer saved by :func:`train_tokenizer` or :func:`pretrained_tokenizer`."""
    if not os.path.isfile(os.path.join(folder, "tokenizer.json")):
        raise FileNotFoundError(f"no tokenizer.json in {folder}; train the tokenizer first")
    return AutoTokenizer.from_pretrained(folder)


def whole_word_ids(
    input_ids: Sequence[int], tokenizer: PreTrainedTokenizerFast, max_words: int = 512
) -> list[int]:
    """P5's whole-word ids: the tokens of one whitespace-separated word share an id.

    Words count from 1 in order; a token starts a word when it carries the "▁" marker (or is
    the first token). Special tokens (``</s>``, ``<pad>``) get 0. Ids stop growing at
    ``max_words - 1``, the last row of the whole-word embedding. See P5 (Geng et al. 2022,
    https://arxiv.org/abs/2203.13366).

    Args:
        input_ids: one tokenized text.
        tokenizer: the tokenizer that made ``input_ids``.
        max_words: rows of the whole-word embedding. (default: :obj:`512`)
    """
    special = set(tokenizer.all_special_ids)
    ids, word = [], 0
    for token_id, token in zip(input_ids, tokenizer.convert_ids_to_tokens(list(input_ids))):
        if token_id in special:
            ids.append(0)
            continue
        if word == 0 or token.startswith(WORD_START):
            word = min(word + 1, max_words - 1)
        ids.append(word)
    return ids
