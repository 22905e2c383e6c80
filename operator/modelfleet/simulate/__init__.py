"""Trace simulator: replays a request trace against autoscaling policies in simulated time."""
