"""SoundSweep's ``python -m platform.<command>`` façade, and a stand-in for the stdlib module.

``platform`` is also a standard-library module that ``uuid`` (and so torch, ray and pandas)
imports at start-up. Run from the repository root, this package shadows it, so it first loads
the real ``platform.py`` by path and re-exports its names; only then can ``platform.tune``
import SoundSweep. Nothing that runs inside a Ray worker may live here (workers import the
stdlib module): the commands are one-line calls into :mod:`soundsweep.cli`.
"""
import importlib.util as _importlib_util
import os as _os
import sysconfig as _sysconfig

_spec = _importlib_util.spec_from_file_location(
    "_stdlib_platform", _os.path.join(_sysconfig.get_paths()["stdlib"], "platform.py")
)
_stdlib = _importlib_util.module_from_spec(_spec)
_spec.loader.exec_module(_stdlib)
globals().update({k: v for k, v in vars(_stdlib).items() if not k.startswith("__")})
