"""Raw-pointer intrinsics (AUDIO THREAD ONLY): addresses → typed Numba pointers, memory fences.

The audio callbacks receive one address (PortAudio's `userData`, JACK's `arg`) that points at
the engine's pointer table (`engine.rt.layout`); these intrinsics turn table entries back into
arrays with `numba.carray`, without any Python object on the audio thread.
"""
from llvmlite import ir
from numba import types
from numba.extending import intrinsic
from numba.np.arrayobj import get_cfarray_intrinsic

carray = get_cfarray_intrinsic("C", None)
"""`carray(typed_pointer, shape)`: a C-contiguous array over raw memory, built inline.

Numba's public `numba.carray` is an `@overload` whose implementation is a function returning
a new array, which needs Numba's runtime (NRT) for reference counting; the audio thread's
kernels are compiled without NRT (engine.rt.dsp.JIT `_nrt=False`, so they cannot allocate and
carry no reference-counting calls), and use this intrinsic, the one `numba.carray` wraps."""


def _pointer_intrinsic(dtype):
    @intrinsic
    def as_pointer(typingctx, addr):
        sig = types.CPointer(dtype)(addr)

        def codegen(context, builder, signature, args):
            llty = context.get_value_type(types.CPointer(dtype))
            return builder.inttoptr(args[0], llty)

        return sig, codegen

    return as_pointer


f64_ptr = _pointer_intrinsic(types.float64)
f32_ptr = _pointer_intrinsic(types.float32)
i64_ptr = _pointer_intrinsic(types.int64)
i32_ptr = _pointer_intrinsic(types.int32)
u8_ptr = _pointer_intrinsic(types.uint8)


@intrinsic
def voidptr_to_int(typingctx, ptr):
    """The integer address held by a `void*` (PortAudio's userData, JACK's arg)."""
    sig = types.int64(ptr)

    def codegen(context, builder, signature, args):
        return builder.ptrtoint(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def fence(typingctx):
    """A full memory fence: publishes ring-buffer slots before indices (and the reverse)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


_I8P = ir.IntType(8).as_pointer()


@intrinsic
def as_voidptr(typingctx, addr):
    """An integer address as a `void*` (to pass scratch memory to C functions)."""
    sig = types.voidptr(addr)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], _I8P)

    return sig, codegen


@intrinsic
def call_ptr_u32(typingctx, fn, ptr, n):
    """Call the C function at address `fn` as `void *fn(void *ptr, uint32_t n)`; returns the
    result's address (jack_port_get_buffer)."""
    sig = types.int64(types.int64, types.int64, types.uint32)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(_I8P, [_I8P, ir.IntType(32)])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        res = builder.call(f, [builder.inttoptr(args[1], _I8P), args[2]])
        return builder.ptrtoint(res, ir.IntType(64))

    return sig, codegen


@intrinsic
def call_u32_ptr(typingctx, fn, ptr):
    """Call `uint32_t fn(void *ptr)` at address `fn` (jack_midi_get_event_count)."""
    sig = types.uint32(types.int64, types.int64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [_I8P])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(f, [builder.inttoptr(args[1], _I8P)])

    return sig, codegen


@intrinsic
def call_i32_ptr_ptr_u32(typingctx, fn, a, b, n):
    """Call `int fn(void *a, void *b, uint32_t n)` at address `fn` (jack_midi_event_get)."""
    sig = types.int32(types.int64, types.int64, types.int64, types.uint32)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [_I8P, _I8P, ir.IntType(32)])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(f, [builder.inttoptr(args[1], _I8P), builder.inttoptr(args[2], _I8P),
                                args[3]])

    return sig, codegen


@intrinsic
def call_i32_i32_ptr(typingctx, fn, a, ptr):
    """Call `int fn(int a, void *ptr)` at address `fn` (clock_gettime)."""
    sig = types.int32(types.int64, types.int32, types.int64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32), _I8P])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(f, [args[1], builder.inttoptr(args[2], _I8P)])

    return sig, codegen


@intrinsic
def call_void_ptr(typingctx, fn, ptr):
    """Call `void fn(void *ptr)` at address `fn` (jack_midi_clear_buffer)."""
    sig = types.void(types.int64, types.int64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [_I8P])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(f, [builder.inttoptr(args[1], _I8P)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def call_ptr_ptr_u32_u64(typingctx, fn, ptr, n, size):
    """Call `void *fn(void *ptr, uint32_t n, size_t size)` at address `fn`; returns the result's
    address (jack_midi_event_reserve: 0 when the buffer has no room)."""
    sig = types.int64(types.int64, types.int64, types.uint32, types.uint64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(_I8P, [_I8P, ir.IntType(32), ir.IntType(64)])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        res = builder.call(f, [builder.inttoptr(args[1], _I8P), args[2], args[3]])
        return builder.ptrtoint(res, ir.IntType(64))

    return sig, codegen
