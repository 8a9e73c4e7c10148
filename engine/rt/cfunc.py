"""C-callable entry points with nothing but compiled kernel code behind them.

Built on the control side (before a stream opens); the addresses they give are called by
PortAudio or JACK on their own threads (AUDIO THREAD).

Numba's `@cfunc` wraps a kernel in a C function that, should the kernel ever return an error
status, takes the GIL (`numba_gil_ensure`) and prints the exception through Python
(`PyErr_WriteUnraisable`). bandmate's kernels cannot raise (no `raise`, numpy's error model, no
bounds checks, no runtime/NRT: tests/test_rt_proof.py reads the compiled code and fails on any
such path), so that branch is dead, but dead code that names the GIL is still code a real-time
thread could jump into. `RtCallback` builds the C entry point itself: an LLVM function of a
few instructions that calls the compiled kernel (Numba's calling convention: return slot,
exception slot, arguments) at its address and returns the kernel's value. There is no error
branch, no reference to Python, nothing to link.

The kernel is an ordinary `@njit` dispatcher compiled (or loaded from Numba's disk cache) for
one signature, so the callbacks are cached like every other kernel; only the wrapper, a dozen
instructions, is compiled each time (milliseconds).
"""
from llvmlite import ir
from numba.core import types
from numba.core.callconv import excinfo_t
from numba.core.compiler_lock import global_compiler_lock

_I64 = ir.IntType(64)


class RtCallback:
    """A C function pointer (`.address`) for `kernel` (an `@njit` dispatcher) at `sig`.

    `sig` is a Numba signature of scalars and pointers, e.g. `types.int32(types.uint32,
    types.voidptr)`; the C function has exactly these argument and return types. Keep this
    object alive as long as the address may be called."""

    def __init__(self, name: str, kernel, sig):
        self.name = name
        self.kernel = kernel
        self.signature = sig
        kernel.compile(sig)
        self.cres = kernel.overloads[tuple(sig.args)]
        ctx = self.cres.target_context
        fndesc = self.cres.fndesc
        if fndesc.restype != sig.return_type:
            raise TypeError(f"{name}: kernel returns {fndesc.restype}, the callback "
                            f"{sig.return_type}")
        for t in sig.args:
            if not isinstance(t, (types.Integer, types.Float, types.RawPointer, types.CPointer)):
                raise TypeError(f"{name}: callback arguments must be scalars or pointers, "
                                f"not {t}")
        self.kernel_symbol = fndesc.llvm_func_name
        self.kernel_address = self.cres.library.get_pointer_to_function(self.kernel_symbol)
        if not self.kernel_address:
            raise RuntimeError(f"{name}: compiled kernel {self.kernel_symbol} has no address")

        # the kernel as Numba calls it: i32 status (ret *retval, excinfo **exc, args...)
        call_conv = ctx.call_conv
        kernel_ty = call_conv.get_function_type(fndesc.restype, fndesc.argtypes)
        void = fndesc.restype in (types.none, types.void)
        ret_ty = ir.VoidType() if void else ctx.get_value_type(fndesc.restype)
        arg_tys = [ctx.get_value_type(t) for t in fndesc.argtypes]
        self.module = ir.Module(name=f"bandmate_rt_{name}")
        fn = ir.Function(self.module, ir.FunctionType(ret_ty, arg_tys), f"bandmate_rt_{name}")
        builder = ir.IRBuilder(fn.append_basic_block("entry"))
        slot_ty = call_conv.get_return_type(fndesc.restype).pointee
        retval = builder.alloca(slot_ty, name="retval")
        builder.store(ir.Constant(slot_ty, None), retval)
        excinfo = builder.alloca(ir.PointerType(excinfo_t), name="excinfo")
        packed = list(call_conv._get_arg_packer(fndesc.argtypes).as_arguments(builder,
                                                                              list(fn.args)))
        callee = builder.inttoptr(ir.Constant(_I64, self.kernel_address),
                                  kernel_ty.as_pointer(), name="kernel")
        builder.call(callee, [retval, excinfo] + packed)   # the status is always 0: ignored
        if void:
            builder.ret_void()
        else:
            builder.ret(ctx.get_returned_value(builder, fndesc.restype, builder.load(retval)))

        with global_compiler_lock:
            self.library = ctx.codegen().create_library(f"bandmate_rt_{name}")
            self.library.add_ir_module(self.module)
            self.library.finalize()
            self.address = self.library.get_pointer_to_function(fn.name)
        if not self.address:
            raise RuntimeError(f"{name}: the C entry point did not compile")

    def wrapper_ir(self) -> str:
        """LLVM IR of the C entry point (for tests/test_rt_proof.py)."""
        return str(self.module)

    def kernel_ir(self) -> str:
        """LLVM IR of the kernel and everything it calls or inlines, as compiled (also when
        the kernel came from Numba's disk cache)."""
        return str(self.cres.library._get_module_for_linking())
