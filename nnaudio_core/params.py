"""What a transform's constructor parameter accepts (:class:`ParamSpec`), torch-free.

:meth:`nnaudio_core.features.base.Transform.param_spec` builds these from a constructor's
signature; they live here, without torch, so a stored copy of the schema can be read where
importing torch would cost seconds (``nnaudio presets``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from nnaudio_core.errors import ParameterError

_NONE = type(None)


@dataclass(frozen=True)
class ParamSpec:
    """What a constructor parameter of a transform accepts (see :meth:`Transform.param_spec`).

    Attributes
    ----------
    name : str
    types : tuple of type
        The accepted Python types (``object``: anything; ``NoneType`` when None is accepted).
    default : Any
        The default (``inspect.Parameter.empty`` when required).
    choices : tuple
        The accepted values of a string parameter (empty: any value of ``types``).
    """

    name: str
    types: tuple[type, ...]
    default: Any = inspect.Parameter.empty
    choices: tuple = ()

    @property
    def accepts_none(self) -> bool:
        return _NONE in self.types or self.default is None or object in self.types

    @property
    def kind(self) -> str:
        """``'bool'``, ``'int'``, ``'float'``, ``'str'``, ``'floats'`` (a sequence of numbers)
        or ``'any'``."""
        core = set(self.types) - {_NONE}
        for kind, want in (("bool", {bool}), ("int", {int}), ("float", {float}),
                           ("float", {float, int}), ("str", {str}), ("floats", {list, tuple})):
            if core == want:
                return kind
        return "any"

    def describe(self) -> str:
        """What the parameter takes, in words: ``'an integer'``, ``'one of 'a', 'b''``..."""
        if self.choices:
            return f"one of {', '.join(map(repr, self.choices))}"
        return {"bool": "true or false", "int": "an integer", "float": "a number",
                "str": "a string", "floats": "a list of numbers"}.get(self.kind, "a value")

    def coerce(self, value: Any) -> Any:
        """``value`` converted to the parameter's type: ``1``/``yes``/``on`` and ``0``/``no``/
        ``off`` for booleans, a whole ``512.0`` for an integer, an integer for a number.
        Raises :class:`ParameterError` (``"<name> takes an integer"``) when it cannot be.
        Choices are left to the transform, which names them in its own error."""
        kind = self.kind
        if value is None:
            if self.accepts_none or kind == "any":  # an open type: the transform decides
                return None
        elif kind == "bool":
            if isinstance(value, bool):
                return value
            low = str(value).lower()
            if low in ("1", "yes", "on", "true", "0", "no", "off", "false"):
                return low in ("1", "yes", "on", "true")
        elif kind == "int":
            if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                value == int(value)
            ):
                return int(value)
        elif kind == "float":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif kind == "str":
            if isinstance(value, str):
                return value
        elif kind == "floats":
            if isinstance(value, (list, tuple)) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            ):
                return [float(v) for v in value]
        else:
            return value
        raise ParameterError(f"{self.name} takes {self.describe()}")
