"""The DVC stages: each module is a main() that reads params.yaml and calls the library in facemask/."""
