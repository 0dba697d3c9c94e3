"""LRP: rules, mirror layers, graph builder, explain()."""
