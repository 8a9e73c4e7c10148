"""bandmate's engine.

`engine.rt` is the audio thread's code (compiled, GIL-free); everything else in `engine`
runs on the control side (asyncio thread, MIDI callback threads, CLI) and reaches the audio
thread only through the lock-free queues in `engine.rt.ringbuf`.
"""
