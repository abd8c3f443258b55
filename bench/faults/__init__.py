"""Fault injection: the ``faults:`` schedule and the injectors that carry it out while load runs."""
