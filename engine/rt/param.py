"""`Param`: the one parameter system. Every unit's parameters, the analog voice's among them,
are declared with it (control side: declarations; the kernels read plain float64 arrays).
"""

CURVES = ("lin", "log", "choice")


class Param:
    """One parameter of a unit: name (with its unit), range, default, curve, smoothing."""
    __slots__ = ("name", "index", "lo", "hi", "default", "curve", "smooth_s", "choices", "doc")

    def __init__(self, name, lo, hi, default, curve="lin", smooth_s=0.02, choices=None, doc=""):
        if not lo <= default <= hi:
            raise ValueError(f"{name}: default {default} outside {lo}..{hi}")
        if curve not in CURVES:
            raise ValueError(f"{name}: curve {curve!r} not one of {CURVES}")
        if curve == "log" and lo <= 0.0:
            raise ValueError(f"{name}: a log curve needs lo > 0")
        if curve == "choice" and not choices:
            raise ValueError(f"{name}: a choice parameter needs its words")
        self.name, self.index, self.lo, self.hi, self.default = name, -1, lo, hi, default
        self.curve, self.smooth_s, self.choices, self.doc = curve, smooth_s, choices, doc

    def from_unit(self, x: float) -> float:
        """A 0..1 control value (MIDI CC, a knob) on this parameter's range and curve."""
        x = min(max(float(x), 0.0), 1.0)
        if self.curve == "log":
            return self.lo * (self.hi / self.lo) ** x
        if self.curve == "choice":
            return float(round(x * (len(self.choices) - 1)))
        return self.lo + x * (self.hi - self.lo)

    def __repr__(self):
        return f"Param({self.name!r}, {self.lo}..{self.hi}, default {self.default})"


def declare(params):
    """The PARAMS tuple of a unit, each Param given its index (its column in `params`)."""
    params = tuple(params)
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate parameter names: {names}")
    for i, p in enumerate(params):
        p.index = i
    return params


def default_params(params) -> "list[float]":
    """Targets and current values, both at the defaults (control side)."""
    d = [p.default for p in params]
    return d + d
