"""Device managers: one interface per capability, vendor drivers by ``type:`` name."""
