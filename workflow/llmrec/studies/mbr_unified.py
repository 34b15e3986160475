"""The multi-behaviour study, part 2: the unified model and its ablations as rows of the
multi-behaviour table.

:func:`train_unified` trains :class:`~llmrec.models.unified.UnifiedMBR` (or an ablation,
:data:`VARIANTS`) on a dataset's training part, early-stopped on the validation target, and
tests it as :func:`llmrec.studies.mbr.train_mbr` tests part 1's models (the same inputs, stages,
segments and outputs, written by the same :func:`~llmrec.studies.mbr.write_results`, so
``mbr_table`` reads its runs unchanged). It also writes the trained user and item vectors for
the LLM fine-tuning (``vectors``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch

from ..device import resolve_device
from ..io import atomic_path
from ..models.lightgcn import normalized_bipartite, sparse_adjacency
from ..models.unified import UnifiedMBR
from ..training.next_target import target_only
from ..training.seed import init_seed
from ..training.unified import fit_unified, stage_states
from .mbr import load_stages, write_results

log = logging.getLogger(__name__)


class Parts(NamedTuple):
    """What a variant of the unified model is built from."""

    llm: bool  # the frozen LLM item view (and its alignment term)
    aux: bool  # the auxiliary behaviours' graphs and events (else the target's alone)
    gnn: bool  # the cascading GNN
    seq: bool  # the behaviour-aware Transformer


VARIANTS = {
    "unified": Parts(llm=True, aux=True, gnn=True, seq=True),
    "unified_no_llm": Parts(llm=False, aux=True, gnn=True, seq=True),
    "unified_no_aux": Parts(llm=True, aux=False, gnn=True, seq=True),
    "unified_no_gnn": Parts(llm=True, aux=True, gnn=False, seq=True),
    "unified_no_seq": Parts(llm=True, aux=True, gnn=True, seq=False),
}
MODELS = tuple(VARIANTS)  # in the order of studies/mbr.py's UNIFIED, the table's rows


def train_unified(
    input: Mapping[str, str],
    output: Mapping[str, str],
    *,
    dataset: str,
    model: str,
    seed: int | str,
    settings: Mapping,
    segments: Mapping,
    ks: Sequence[int],
    masked: Sequence[str] = (),
    device: str = "auto",
    progress: bool = True,
    threads: int = 1,
) -> None:
    """Train one variant of the unified model with one seed, test it by segment and write the
    per-user metrics, summary and weights (as ``train_mbr``) and its vectors.

    Args:
        input: ``sequences``, ``graphs_valid``, ``graphs_test`` (``results/data/{ds}/mbr``) and,
            for every variant but ``unified_no_llm``, ``item_embeddings`` (``.npy`` float
            ``[n_items, d_llm]``, from ``mbr_llm_embed``).
        output: ``per_user``, ``summary``, ``weights`` (as ``train_mbr``) and ``vectors``
            (``.npz`` of float32: ``items`` ``[n_items, d]`` the scoring item vectors with the
            training graphs, ``items_test`` the same with the test-time graphs, ``users_valid``
            ``[n_users, d]`` the user states after the training part, ``users_test`` after the
            whole test-time history; zeros for a user with no event before the cut).
        dataset: the dataset's name (for the summary).
        model: a key of :data:`VARIANTS`.
        seed: the run's seed.
        settings: ``mbr.unified``: ``embedding_dim``, ``num_layers``, ``max_len``,
            ``num_heads``, ``dropout``, ``holdout``, ``align_weight``, ``temperature``, ``epochs``,
            ``batch_size``, ``lr``, ``weight_decay``, ``eval_every``, ``patience``, ``metric``.
        segments: ``mbr.segments`` (``head_share``, ``strict_tail_share``, ``sparse_max``).
        ks: the test cut-offs.
        masked: behaviours whose earlier items are never ranked, besides the target.
        device: ``auto``, ``cpu``, ``cuda``, ... (default ``auto``).
        progress: show a bar over epochs (default True).
        threads: torch's CPU threads (default 1).
    """
    if model not in VARIANTS:
        raise ValueError(f"unknown unified model {model!r}; known: {', '.join(MODELS)}")
    parts = VARIANTS[model]
    if parts.llm and not input.get("item_embeddings"):
        raise ValueError(
            f"{model} needs the LLM item embeddings (input item_embeddings, from mbr_llm_embed)"
        )
    seed = int(seed)
    torch.set_num_threads(threads)
    init_seed(seed)
    seqs, valid, test = load_stages(input, dataset, masked)
    dev = resolve_device(device)
    graphs = valid.graphs
    text = np.load(input["item_embeddings"]) if parts.llm else None
    if text is not None and (text.ndim != 2 or text.shape[0] != graphs.n_items):
        raise ValueError(
            f"{input['item_embeddings']} holds embeddings of shape {text.shape}; "
            f"{dataset} has {graphs.n_items} items, so it needs [{graphs.n_items}, d]"
        )

    behaviours = graphs.behaviours if parts.aux else graphs.behaviours[-1:]
    items, kinds, n_train = seqs.items, seqs.behaviours, seqs.n_train
    if not parts.aux:
        items, kinds, n_train = target_only(items, kinds, n_train, seqs.target)
    net = UnifiedMBR(
        graphs.n_users,
        graphs.n_items,
        len(behaviours),
        settings["embedding_dim"],
        settings["num_layers"],
        settings["max_len"],
        settings["num_heads"],
        settings["dropout"],
        text_dim=None if text is None else text.shape[1],
        use_gnn=parts.gnn,
        use_seq=parts.seq,
    )
    if text is not None:
        net.set_item_text(torch.from_numpy(text.astype(np.float32)))

    def adjacencies(stage_graphs) -> list[torch.Tensor] | None:
        if not parts.gnn:
            return None
        return [
            sparse_adjacency(normalized_bipartite(stage_graphs.matrices[b]), dev)
            for b in behaviours
        ]

    start = time.perf_counter()
    state, history = fit_unified(
        net,
        adjacencies(valid.graphs),
        items,
        kinds,
        n_train,
        seqs.valid_item,
        target=seqs.target,  # target_only keeps the behaviour codes
        exclude=valid.masked,
        target_graph=valid.target_items,
        holdout=settings["holdout"],
        align_weight=settings["align_weight"],
        temperature=settings["temperature"],
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        lr=settings["lr"],
        weight_decay=settings["weight_decay"],
        eval_every=settings["eval_every"],
        patience=settings["patience"],
        metric=settings["metric"],
        seed=seed,
        device=dev,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    everything = np.array([len(i) for i in items], np.int64)
    users_test, items_test = stage_states(
        net, adjacencies(test.graphs), items, kinds, everything, dev
    )
    write_results(
        output,
        dataset=dataset,
        model=model,
        seed=seed,
        seqs=seqs,
        valid=valid,
        test=test,
        scores_fn=lambda u: net.scores(users_test[u.to(dev)], items_test),
        state=state,
        history=history,
        seconds=seconds,
        settings=settings,
        segments=segments,
        ks=ks,
        device=dev,
        candidates=input.get("candidates"),
    )
    users_valid, items_valid = stage_states(
        net, adjacencies(valid.graphs), items, kinds, n_train, dev
    )
    with atomic_path(output["vectors"]) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            **{
                name: v.detach().cpu().numpy().astype(np.float32)
                for name, v in (
                    ("items", items_valid),
                    ("items_test", items_test),
                    ("users_valid", users_valid),
                    ("users_test", users_test),
                )
            },
        )
