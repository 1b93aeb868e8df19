"""Quantization and entropy models shared by training and coding: learned quantization steps and
Laplace entropy models (``learned``, ``laplace``) and the noise-then-rounding schedule that trains
them (``schedule``). Below both the trainer (``nerv/``) and the codec (``codec/``); imports neither."""
