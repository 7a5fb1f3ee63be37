"""The canonical, OCPI-shaped model (schema `mart`) that joins every source."""

from evpipeline.model import identity as identity  # registers the identity migration (after the mart's)
from evpipeline.model import reference as reference  # registers the reference migrations
from evpipeline.model import tables as tables  # registers the mart migrations
