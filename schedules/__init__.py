"""The pure schedule library: families and specs, theory check, paper presets, search space, metrics (all
torch-free), plus the optimizer, tasks and trainer (torch). Import submodules directly; this package
imports nothing so that ``import schedules.spec`` stays torch-free."""
