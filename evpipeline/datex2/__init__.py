"""DATEX II 3.7 (AFIR energy infrastructure) publications built from the canonical model."""

from evpipeline.datex2.publication import (
    EmptyPublicationError,
    PublicationStats,
    Publisher,
    Rejection,
    rejections,
    write_publication,
)

__all__ = ["EmptyPublicationError", "PublicationStats", "Publisher", "Rejection", "rejections", "write_publication"]
