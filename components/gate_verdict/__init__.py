"""The verdict task of a gate: halts the run when the gate's recorded verdict is a breach."""
