//! Per-connection session: two pumps, the tap, the cut handle.
