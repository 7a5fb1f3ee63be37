"""Small typed helpers for tests, so assertions need no `type: ignore`.

`SimServer.__enter__` is annotated as returning the base class, so `with ZaptecSimulator(...) as sim`
types `sim` as `SimServer`; `running(sim)` enters the same way and keeps the subclass. Dagster types
many results as optional or as a union of what any sensor/step could return; these helpers check the
shape a test expects and fail with a clear message otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

from evpipeline.simulators.toolkit import SimServer

S = TypeVar("S", bound=SimServer)
T = TypeVar("T")


@contextmanager
def running(sim: S) -> Iterator[S]:
    """`with sim:` (start on entry, stop on exit), typed as the simulator's own class."""
    with sim:
        yield sim


def sim_as(sim: SimServer, cls: type[S]) -> S:
    """One simulator of `start_all()` (a `dict[str, SimServer]`) as its own class."""
    assert isinstance(sim, cls), f"{sim!r} is not a {cls.__name__}"
    return sim


def present(value: T | None) -> T:
    """A value the test knows is set (an optional field of a Dagster result, a lookup hit...)."""
    assert value is not None
    return value


def all_of(items: Iterable[object] | None, cls: type[T]) -> list[T]:
    """Every item of a collection Dagster types as a union (or optional), checked to be a `cls`."""
    everything = list(items or [])
    checked = [i for i in everything if isinstance(i, cls)]
    assert len(checked) == len(everything), f"not all {cls.__name__}: {everything!r}"
    return checked


def step_error(result: dg.ExecuteInProcessResult, cls_name: str | None = None) -> SerializableErrorInfo:
    """The error of the first failed step, unwrapped from Dagster's wrapper down to `cls_name` if given."""
    error = present(next(e for e in result.all_events if e.is_step_failure).step_failure_data.error)
    while cls_name is not None and error.cls_name != cls_name and error.cause is not None:
        error = error.cause
    return error


def sensor_result(value: Any) -> dg.SensorResult:
    """What a sensor evaluation returned, when the test expects a `SensorResult`."""
    assert isinstance(value, dg.SensorResult), f"expected a SensorResult, got {value!r}"
    return value


def run_requests(value: Any) -> Sequence[dg.RunRequest]:
    """The run requests of a sensor evaluation that returns a `SensorResult`."""
    return present(sensor_result(value).run_requests)
