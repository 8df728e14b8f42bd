"""Domain-generalised meta-comparer (Chen et al., ICME 2022): see :mod:`.model`."""
