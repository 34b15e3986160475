"""The P5 model: a T5 encoder-decoder that reads a prompt and writes the next item's ID.

P5 (Geng et al. 2022, "Recommendation as Language Processing", https://arxiv.org/abs/2203.13366)
fine-tunes T5 on recommendation prompts and adds an optional whole-word embedding to the
encoder input, so that the pieces of one item ID ("▁12", "34") are marked as one word.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase, T5Config, T5ForConditionalGeneration

from llmrec.p5.tokenizer import whole_word_ids as _whole_word_ids

IGNORE_INDEX = -100
"""Label value that the loss skips (target padding)."""


def build_t5(
    vocab_size: int,
    *,
    d_model: int = 128,
    d_ff: int = 256,
    num_layers: int = 2,
    num_decoder_layers: int | None = None,
    num_heads: int = 4,
    d_kv: int = 32,
    dropout: float = 0.1,
    pretrained: str | None = None,
) -> T5ForConditionalGeneration:
    """A T5 (v1.0: ReLU feed-forward, tied embeddings) from scratch, or a pretrained one.

    Args:
        vocab_size: rows of the token embedding, ``len(tokenizer)``.
        d_model: width of the hidden states. (default: :obj:`128`)
        d_ff: width of the feed-forward layers. (default: :obj:`256`)
        num_layers: encoder layers. (default: :obj:`2`)
        num_decoder_layers: decoder layers; ``None`` for as many as the encoder.
            (default: :obj:`None`)
        num_heads: attention heads. (default: :obj:`4`)
        d_kv: width of each head's keys and values. (default: :obj:`32`)
        dropout: dropout rate. (default: :obj:`0.1`)
        pretrained: a hub name (``"t5-small"``, needs internet) or a folder saved by
            ``save_pretrained``; the size arguments are then ignored, the tokenizer must be
            the pretrained one (:func:`llmrec.p5.tokenizer.pretrained_tokenizer`), and the
            embedding grows to ``vocab_size`` where the tokenizer gained tokens.
            (default: :obj:`None`)
    """
    if pretrained is not None:
        try:
            t5 = T5ForConditionalGeneration.from_pretrained(pretrained, dropout_rate=dropout)
        except OSError as error:
            raise RuntimeError(
                f"could not load the pretrained model {pretrained!r}: a hub name "
                f"needs internet (or a filled HF cache), else give a local "
                f"folder"
            ) from error
        # T5's embedding has spare rows (32128 for 32100 pieces); it only ever grows.
        if vocab_size > t5.get_input_embeddings().num_embeddings:
            t5.resize_token_embeddings(vocab_size)
        return t5
    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_ff=d_ff,
        d_kv=d_kv,
        num_layers=num_layers,
        num_decoder_layers=num_decoder_layers,
        num_heads=num_heads,
        dropout_rate=dropout,
        feed_forward_proj="relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5ForConditionalGeneration(config)


class P5(nn.Module):
    r"""P5 from `"Recommendation as Language Processing (RLP): A Unified Pretrain, Personalized
    Prompt & Predict Paradigm (P5)" <https://arxiv.org/abs/2203.13366>`_ (Geng et al., RecSys
    2022): a T5 trained on (prompt, answer) text, optionally with whole-word embeddings.

    With ``whole_word``, the encoder reads token embedding + whole-word embedding, the latter
    indexed by :func:`llmrec.p5.tokenizer.whole_word_ids`. It starts at zero (P5 draws it at
    random) so that a pretrained T5 begins exactly as it was trained; being added to the input,
    it still receives the full gradient.

    State dict keys are ``t5.*`` (the Hugging Face names) and ``whole_word_embedding.weight``;
    task vectors subtract them key by key.

    Args:
        t5: the encoder-decoder, e.g. from :func:`build_t5`.
        whole_word (bool, optional): add whole-word embeddings. (default: :obj:`False`)
        max_words (int, optional): rows of the whole-word embedding; later words share the
            last row. (default: :obj:`512`)
    """

    def __init__(
        self, t5: T5ForConditionalGeneration, whole_word: bool = False, max_words: int = 512
    ) -> None:
        super().__init__()
        self.t5 = t5
        self.whole_word = whole_word
        self.max_words = max_words
        if whole_word:
            self.whole_word_embedding = nn.Embedding(max_words, t5.config.d_model)
            nn.init.zeros_(self.whole_word_embedding.weight)

    def encoder_embeds(self, input_ids: Tensor, whole_word_ids: Tensor) -> Tensor:
        """The encoder's input vectors: token plus whole-word embeddings, ``(batch, len, d)``.

        Args:
            input_ids: ``(batch, len)`` token ids.
            whole_word_ids: ``(batch, len)`` word numbers from :func:`collate`.
        """
        if not self.whole_word:
            raise ValueError("this P5 has no whole-word embedding; build it with whole_word=True")
        return self.t5.get_input_embeddings()(input_ids) + self.whole_word_embedding(whole_word_ids)

    def encoder_inputs(
        self, input_ids: Tensor, attention_mask: Tensor, whole_word_ids: Tensor | None = None
    ) -> dict[str, Tensor]:
        """What the T5 takes as its encoder input: ``input_ids``, or ``inputs_embeds`` with
        whole-word embeddings; always with ``attention_mask``."""
        if self.whole_word != (whole_word_ids is not None):
            raise ValueError(
                f"whole_word_ids must be given exactly when the model has a "
                f"whole-word embedding (whole_word={self.whole_word})"
            )
        if whole_word_ids is None:
            return {"input_ids": input_ids, "attention_mask": attention_mask}
        return {
            "inputs_embeds": self.encoder_embeds(input_ids, whole_word_ids),
            "attention_mask": attention_mask,
        }

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        labels: Tensor,
        whole_word_ids: Tensor | None = None,
    ) -> Tensor:
        """The mean cross-entropy of the answer tokens (teacher forcing), a scalar.

        Args:
            input_ids: ``(batch, len)`` prompt token ids.
            attention_mask: ``(batch, len)``, 1 on tokens and 0 on padding.
            labels: ``(batch, target_len)`` answer token ids ending with ``</s>``,
                :data:`IGNORE_INDEX` on padding; T5 shifts them right behind token 0 itself.
            whole_word_ids: ``(batch, len)``, exactly when the model has whole-word embeddings.
        """
        inputs = self.encoder_inputs(input_ids, attention_mask, whole_word_ids)
        return self.t5(**inputs, labels=labels).loss


def collate(
    examples: Sequence[tuple[str, str]],
    tokenizer: PreTrainedTokenizerBase,
    max_source_len: int,
    max_target_len: int,
    whole_word: bool,
    max_words: int = 512,
) -> dict[str, Tensor]:
    """Tokenize (prompt, answer) pairs into a padded batch for :meth:`P5.forward`.

    Args:
        examples: ``(source, target)`` texts.
        tokenizer: the model's tokenizer; it appends ``</s>`` and pads with ``<pad>`` = 0.
        max_source_len: prompt tokens kept, ``</s>`` included (longer prompts lose their end).
        max_target_len: answer tokens kept, ``</s>`` included.
        whole_word: also return ``whole_word_ids``.
        max_words: rows of the model's whole-word embedding. (default: :obj:`512`)

    Returns:
        ``input_ids``, ``attention_mask``, ``labels`` (padding set to :data:`IGNORE_INDEX`)
        and, with ``whole_word``, ``whole_word_ids``; all int64, right-padded.
    """
    sources = [source for source, _ in examples]
    targets = [target for _, target in examples]
    batch = tokenizer(
        sources, max_length=max_source_len, truncation=True, padding=True, return_tensors="pt"
    )
    labels = tokenizer(
        targets, max_length=max_target_len, truncation=True, padding=True, return_tensors="pt"
    )
    out = {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
        "labels": labels["input_ids"].masked_fill(labels["attention_mask"] == 0, IGNORE_INDEX),
    }
    if whole_word:
        out["whole_word_ids"] = whole_word_id_tensor(batch["input_ids"], tokenizer, max_words)
    return out


def whole_word_id_tensor(
    input_ids: Tensor, tokenizer: PreTrainedTokenizerBase, max_words: int = 512
) -> Tensor:
    """:func:`llmrec.p5.tokenizer.whole_word_ids` of every row of a padded batch (padding 0)."""
    return torch.tensor(
        [_whole_word_ids(row, tokenizer, max_words) for row in input_ids.tolist()], dtype=torch.long
    )
