"""The lab: its spec, its state directory and everything rendered from the spec."""
