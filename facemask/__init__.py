"""facemask: a 4-class face classifier (mask x age) and the pipeline that trains it.

The package has floors that import downward only (docs/architecture.md): core <- pipeline, store, ops <- use
<- the CLI (facemask/__main__.py), stages/ and benchmarks/. Importing it loads no TensorFlow.
"""
