"""qrtl: quantized networks -> exact integer networks -> hardware.

Importing this package (every ``qrtl`` command does, before anything else) silences
TensorFlow's, absl's and CUDA's start-up noise *before* TensorFlow is imported, so each
command prints only its own lines: the C++ logs ("Could not find cuda drivers", "Unable to
register cuDNN factory", the oneDNN and CPU-feature notices, TF-TRT) are below
TF_CPP_MIN_LOG_LEVEL=3, the Python-side ``tensorflow`` and ``absl`` loggers are set to ERROR.
A value the user already exported wins (e.g. ``TF_CPP_MIN_LOG_LEVEL=0 qrtl ...`` to see them).
"""
import logging as _logging
import os as _os

for _key, _value in (("TF_CPP_MIN_LOG_LEVEL", "3"), ("TF_CPP_MIN_VLOG_LEVEL", "0"), ("AUTOGRAPH_VERBOSITY", "0"),
                     ("GRPC_VERBOSITY", "ERROR")):
    _os.environ.setdefault(_key, _value)
if _os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3":  # not when the user asked for TensorFlow's logs
    for _name in ("tensorflow", "absl"):
        _logging.getLogger(_name).setLevel(_logging.ERROR)
