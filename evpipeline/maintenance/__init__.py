"""Housekeeping of the warehouse itself (group `ops`): retention of the append-only history tables."""
