"""The AFIR quality report: completeness, timeliness, reliability and status plots (see docs/quality.md)."""
