"""The UOp intermediate representation: nodes, dtypes, op definitions, interpreter, simplifier."""
