"""The `modelfleet` command: one module per subcommand. `run` imports only the operator."""
