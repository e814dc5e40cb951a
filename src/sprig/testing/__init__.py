"""Public test helpers: run a real core on a temporary root and drive it as a user would."""

from sprig.testing.core import CoreProcess, write_recipe

__all__ = ["CoreProcess", "write_recipe"]
