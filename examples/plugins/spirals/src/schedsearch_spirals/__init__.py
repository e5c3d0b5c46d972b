"""Example schedsearch task plugin: two interleaved spirals. Torch-free: ``definition`` is what schedsearch
imports to list and validate the task; ``task`` (torch) is imported only when a trial loads it."""
