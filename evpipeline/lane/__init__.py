"""The real-time lane: every change a source shows us reaches NDW within seconds (docs/realtime.md)."""
