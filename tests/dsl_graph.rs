//! The deployment graph of stacks: order, nesting, collections, optional fields, cycles.
