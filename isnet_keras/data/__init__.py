"""Data: MNIST and digits loaders, background-bias generators, user folders."""
