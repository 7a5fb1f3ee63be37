"""AFIR DATEX II publications (the profile's JSON, DATEX II 3.7 XML) built from the canonical model."""

from evpipeline.datex2.publication import (
    Creator,
    EmptyPublicationError,
    PublicationStats,
    Publisher,
    rejections,
    write_publication,
)
from evpipeline.datex2.selection import Rejection

__all__ = [
    "Creator",
    "EmptyPublicationError",
    "PublicationStats",
    "Publisher",
    "Rejection",
    "rejections",
    "write_publication",
]
