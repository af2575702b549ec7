"""lmscan: policy-as-code scanner for Hyper-V live-migration networks."""

__version__ = "1.0.0"
