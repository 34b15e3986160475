"""Loading a causal LM, adding and reloading LoRA adapters, and choosing a soft-token slot.

An adapter only makes sense on the base model it was trained on: :func:`save_adapter` records
the base's identity (its name, a hash of its configuration and of the first rows of its input
embeddings, so two checkpoints of one architecture differ) beside the adapter, and
:func:`load_adapter` refuses another base in one sentence.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..device import resolve_device
from ..io import atomic_path
from ..text.generate import DTYPES

log = logging.getLogger(__name__)

BASE_FILE = "base_model.json"
# Configuration keys that say where or how a model was loaded, not what it is.
NOT_IDENTITY = ("_name_or_path", "name_or_path", "dtype", "torch_dtype", "transformers_version")


def load_causal_lm(
    model: str | Path, dtype: str = "float32", device: str = "cpu"
) -> tuple[torch.nn.Module, object]:
    """A causal LM and its tokenizer, in eval mode.

    Args:
        model: a Hugging Face model id or a local folder in Hugging Face layout.
        dtype: ``"float32"`` (default) or ``"bfloat16"`` (:data:`llmrec.text.generate.DTYPES`).
        device: ``"cpu"`` (default), ``"cuda"`` or ``"auto"``.

    Returns:
        ``(model, tokenizer)``; the tokenizer's pad token is its end-of-sequence token where it
        has none.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    log.info("loading %s (%s)", model, dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm = AutoModelForCausalLM.from_pretrained(str(model), dtype=DTYPES[dtype])
    lm.to(resolve_device(device)).eval()
    return lm, tokenizer


def require_chat_template(tokenizer, name: str | Path) -> None:
    """Stop in one sentence where ``tokenizer`` (of the model ``name``) has no chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"the tokenizer of {name} has no chat template; use an instruct (chat) model such as "
            f"SmolLM2-135M-Instruct"
        )


def add_lora(
    model: torch.nn.Module,
    rank: int = 8,
    alpha: float = 16,
    dropout: float = 0.05,
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
) -> PeftModel:
    """``model`` wrapped with fresh LoRA adapters (only they require gradients).

    Args:
        model: the base causal LM.
        rank: LoRA rank r (default 8).
        alpha: LoRA scaling alpha (default 16; the update is scaled by alpha / r).
        dropout: dropout on the adapters' input (default 0.05).
        target_modules: the linear layers adapted (default query and value projections).
    """
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def base_identity(model: torch.nn.Module) -> dict[str, str]:
    """The base model's name and a hash of its configuration and first embedding rows."""
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    config = {k: v for k, v in base.config.to_dict().items() if k not in NOT_IDENTITY}
    rows = base.get_input_embeddings().weight[:64].detach().float().cpu().contiguous()
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    digest.update(rows.numpy().tobytes())
    name = Path(str(base.config._name_or_path)).name
    return {"name": name, "hash": digest.hexdigest()}


def save_adapter(model: PeftModel, folder: str | Path, extra: dict | None = None) -> None:
    """Write the adapter (peft layout), the base's identity and ``extra`` files' tensors
    (``{file name: state dict}``) into ``folder``, atomically."""
    with atomic_path(folder) as tmp:
        model.save_pretrained(tmp)
        (tmp / BASE_FILE).write_text(json.dumps(base_identity(model), indent=2) + "\n")
        for file, state in (extra or {}).items():
            torch.save(state, tmp / file)


def load_adapter(
    model: torch.nn.Module, folder: str | Path, base_name: str | Path, trainable: bool = False
) -> PeftModel:
    """``model`` with the adapter saved in ``folder`` by :func:`save_adapter`.

    Args:
        model: the base causal LM (as :func:`load_causal_lm` returns it).
        folder: the adapter's folder.
        base_name: the base model's name or path, for the error.
        trainable: whether the adapter's weights require gradients (default False).

    Raises:
        ValueError: the adapter was trained on another base model, or records none.
    """
    folder = Path(folder)
    recorded = folder / BASE_FILE
    if not recorded.exists():
        raise ValueError(f"{folder} records no base model ({BASE_FILE}); retrain the adapter")
    saved = json.loads(recorded.read_text())
    if saved["hash"] != base_identity(model)["hash"]:
        raise ValueError(
            f"the adapter in {folder} was trained on base model {saved['name']!r}, not on "
            f"{Path(str(base_name)).name!r}; retrain it or load its own base"
        )
    return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)


def placeholder_token(tokenizer) -> tuple[str, int]:
    """A special token for soft tokens that text never holds: a special token that is not the
    beginning, end or padding token and that the chat template never writes. No new token is
    added, so the vocabulary (and the base's identity) stays as it is.

    Raises:
        ValueError: the tokenizer has no such token.
    """
    sample = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    used = set(tokenizer.apply_chat_template(sample, return_dict=False))
    used |= {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    for token, token_id in zip(tokenizer.all_special_tokens, tokenizer.all_special_ids):
        if token_id not in used and tokenizer.encode(token, add_special_tokens=False) == [token_id]:
            return token, token_id
    raise ValueError(
        "the tokenizer has no special token that its chat template and padding leave unused, "
        "so soft tokens have no placeholder; use a tokenizer with spare special tokens"
    )
