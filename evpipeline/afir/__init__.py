"""The AFIR data elements (Implementing Regulation (EU) 2025/655, Annex) and where we carry each one:
`annex.yaml` (the map), `annex` (its typed loader), `render` (docs/afir.md generated from it)."""
