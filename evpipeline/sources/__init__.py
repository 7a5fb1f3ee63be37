"""The provider sources: every package here is one, loaded by being here (see docs/sources.md)."""

import pkgutil


def source_names() -> list[str]:
    """Every source package, in name order (`kit.py`, the shared factories, is a module, not a source)."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if info.ispkg)
