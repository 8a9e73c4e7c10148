"""Control side: drivers, clock and scheduler, live input, the session. Never runs on the
audio thread; reaches it only through `engine.rt.ringbuf` queues."""
