"""A two-step job for the deployment-profile test: each step returns the pid of the process it ran in.

At module scope, so `dg.reconstructable` can point the multiprocess executor's step processes at it.
"""

from __future__ import annotations

import os

import dagster as dg


@dg.op
def left() -> int:
    return os.getpid()


@dg.op
def right() -> int:
    return os.getpid()


# Said explicitly (it is also @job's default): every step runs in a process of its own.
@dg.job(executor_def=dg.multiprocess_executor)
def two_processes() -> None:
    left()
    right()
