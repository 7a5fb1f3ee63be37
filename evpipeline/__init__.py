"""evpipeline: EV-charging infrastructure data from four provider APIs into DuckDB, OCPI out to NDW."""

__version__ = "0.1.0"
