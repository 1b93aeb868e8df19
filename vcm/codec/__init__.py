"""NeRV compression: pruning, quantization, entropy coding and the ``.nerv`` bitstream."""
