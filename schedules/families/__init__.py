"""Schedule families (torch-free). Import from ``schedules.spec``; this package holds the implementations."""
