"""Delivery to NDW (DOT-NL): the export, pull server and push client, built on `evpipeline.ocpi`."""
