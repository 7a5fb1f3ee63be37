"""OCPI 2.2.1 + NDW DOT-NL, below both `model` and `ndw`: the definition (`definition`), its
published JSON Schemas (`schemas/`), the developer cross-check (`crosscheck`) and the status-code
helpers every OCPI-style client uses (`status`)."""
