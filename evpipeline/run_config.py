"""Run config addressed by asset (or op definition), so nobody spells Dagster op names by hand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg


def op_config(nodes: Sequence[dg.AssetsDefinition | dg.OpDefinition], **values: Any) -> dict[str, Any]:
    """`{"ops": {<op>: {"config": values}}}` for every asset or op among `nodes` that takes config."""
    ops = [node.op if isinstance(node, dg.AssetsDefinition) else node for node in nodes]
    return {"ops": {op.name: {"config": dict(values)} for op in ops if op.config_field is not None}}
