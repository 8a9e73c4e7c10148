"""AUDIO THREAD ONLY.

Everything in this package is Numba nopython code that runs inside the PortAudio / JACK
process callback (or the offline driver's block loop, which calls the very same kernel).
Rules, enforced by review and by `tests/test_rt_imports.py`:

- imports only numpy, numba, the standard `math` module and this package;
- no allocation, no locks, no I/O, no Python objects: every kernel works over preallocated
  arrays that the control side built once (see `engine.rt.state`);
- recursive state (filters, delays, reverb) flushes denormals explicitly (`flush`);
- every kernel is block-size invariant: rendering N samples in one call or in any split
  gives bit-identical output.
"""
