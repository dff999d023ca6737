"""hispeed's native parts, each a faster twin of Python code that stays (see each source's
notes): `hispeed.log._rdbulk` reads Kafka records in bulk, `hispeed.formats._flatjson`
decodes flat JSON records, `hispeed.formats._flatavro` flat Avro records. All are optional:
without a C compiler the build goes on without them, and the Python code runs instead
(slower, the same results). HISPEED_NATIVE=0 switches them off at run time. Everything else
is in pyproject.toml.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(
    ext_modules=[
        Extension(
            "hispeed.log._rdbulk",
            ["src/hispeed/log/_rdbulk.c"],
            libraries=["dl"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
        Extension(
            "hispeed.formats._flatjson",
            ["src/hispeed/formats/_flatjson.c"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
        Extension(
            "hispeed.formats._flatavro",
            ["src/hispeed/formats/_flatavro.c"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
    ]
)
