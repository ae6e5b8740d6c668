"""Stage 2: split, fit the declared feature transform, check every feature against its spec."""
