"""modelfleet: serve open LLMs on your own GPUs at the lowest cost."""
