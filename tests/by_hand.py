"""A working copy run as a person runs it in JupyterLab: each code cell in turn on a real
kernel, prompts answered as typed (the kernel's ``input`` gets ``answers`` in order), the copy
never saved. What the browser test does through JupyterLab, without the browser."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import KernelManager


def run_by_hand(
    copy: Path, answers: list[str], again: Sequence[int] = (), timeout: float = 600
) -> list[dict[str, Any]]:
    """Run every code cell of ``copy`` in its folder, then the cells at the indexes ``again``
    once more, answering prompts with ``answers``; returns the replies' contents (status
    ``error`` for a cell that raised, and it stops)."""
    nb = nbformat.read(copy, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"] + [nb.cells[i] for i in again]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    manager = KernelManager(kernel_name=nb.metadata.kernelspec.name)
    manager.start_kernel(cwd=str(copy.parent), env=env)
    client = manager.client()
    client.start_channels()
    typed: Iterator[str] = iter(answers)
    replies: list[dict[str, Any]] = []
    try:
        client.wait_for_ready(timeout=60)
        for cell in cells:
            reply = client.execute_interactive(
                cell.source, allow_stdin=True, timeout=timeout, output_hook=lambda msg: None,
                stdin_hook=lambda msg: client.input(next(typed)),
            )  # fmt: skip
            replies.append(reply["content"])
            if reply["content"]["status"] != "ok":
                break
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return replies
