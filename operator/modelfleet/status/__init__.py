"""Status and conditions from what was observed: pure functions of spec, placement, children."""
