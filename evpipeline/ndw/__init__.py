"""Delivery to NDW (DOT-NL): the project's OCPI 2.2.1 + NDW definition (`ocpi`), its cross-check tool
(`crosscheck`), and the export, pull server and push client built on them."""
