"""Builds the Cython extensions of fastdicom.

Environment knobs:
  FASTDICOM_DEBUG=1                     bounds checks and line tracing on, -O0 -g
  FASTDICOM_SANITIZE=address,undefined  build with gcc ASan/UBSan (see tools/asan.sh)
"""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTDICOM_DEBUG") == "1"
SANITIZE = os.environ.get("FASTDICOM_SANITIZE", "").strip()

compile_args = ["-O3", "-fno-strict-aliasing"] if not DEBUG else ["-O0", "-g"]
link_args = []
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if SANITIZE:
    flags = [f"-fsanitize={SANITIZE}", "-fno-omit-frame-pointer", "-g", "-fno-sanitize-recover=undefined"]
    compile_args = ["-O1"] + flags
    link_args = flags
if DEBUG:
    macros.append(("CYTHON_TRACE_NOGIL", "1"))

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": DEBUG,
    "linetrace": DEBUG,
    "embedsignature": True,
}

extensions = []
for pyx in sorted(glob.glob("fastdicom/**/*.pyx", recursive=True)):
    module = pyx[:-4].replace(os.sep, ".")
    extensions.append(Extension(
        module, [pyx],
        include_dirs=[numpy.get_include()],
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    ))

setup(ext_modules=cythonize(extensions, compiler_directives=directives,
                            include_path=["fastdicom"], quiet=True))
