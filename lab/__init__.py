"""Hardware-in-the-loop bench: simulators that speak the real protocols."""
