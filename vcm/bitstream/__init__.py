"""What vcm's bitstreams share (``.nerv`` and ``.icm``): the checksummed sectioned container
(:mod:`vcm.bitstream.container`) and byte/bit packing primitives (:mod:`vcm.bitstream.bits`)."""
