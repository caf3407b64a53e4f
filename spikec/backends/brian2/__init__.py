"""Brian2 backend: graph -> Brian2 network (runtime and cpp_standalone), script export."""
