"""What every command shares: flags, devices, progress, messages' text, where outputs may be
written, interrupts, and extract's background import of torch."""
