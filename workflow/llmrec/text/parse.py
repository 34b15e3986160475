"""Reading an LLM's profile answer: RLMRec-style JSON, ``{"summary": ..., "reasoning": ...}``.

Small models wrap the JSON in prose or markdown fences, or write no JSON at all. The first JSON
object in the answer is used when it holds a string ``summary`` (RLMRec's own key,
``summarization``, is accepted too) and, if present, a string ``reasoning``. Otherwise the whole
answer is kept as the summary, flagged ``parsed=False``, so that downstream stages still have
text to embed; only an empty answer is ``valid=False``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SUMMARY_KEYS = ("summary", "summarization")


@dataclass(frozen=True)
class Profile:
    summary: str
    reasoning: str
    parsed: bool  # the answer held a JSON object of the expected shape
    valid: bool  # the answer was not empty
    raw: str


def first_json_object(text: str) -> dict | None:
    """The first ``{...}`` in ``text`` that decodes as a JSON object, or None."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def parse_profile(raw: str) -> Profile:
    """Summary and reasoning of an answer; see the module docstring for the fallbacks."""
    text = raw.strip()
    if not text:
        return Profile(summary="", reasoning="", parsed=False, valid=False, raw=raw)
    obj = first_json_object(text)
    if obj is not None:
        summary = next((obj[k] for k in SUMMARY_KEYS if k in obj), None)
        reasoning = obj.get("reasoning", "")
        if isinstance(summary, str) and summary.strip() and isinstance(reasoning, str):
            return Profile(
                summary=summary.strip(),
                reasoning=reasoning.strip(),
                parsed=True,
                valid=True,
                raw=raw,
            )
    return Profile(summary=text, reasoning="", parsed=False, valid=True, raw=raw)
