"""Brian2 preferences set before standalone compiles."""

import brian2 as b2

from hcs_neuro.brian import limit_compile_jobs


def test_unlimited_make_jobs_are_limited_and_user_choice_is_kept():
    key = "devices.cpp_standalone.extra_make_args_unix"
    old = list(b2.prefs[key])
    try:
        b2.prefs[key] = ["-j"]
        limit_compile_jobs(3)
        assert b2.prefs[key] == ["-j3"]
        b2.prefs[key] = ["-j7", "-s"]
        limit_compile_jobs(3)
        assert b2.prefs[key] == ["-j7", "-s"]
    finally:
        b2.prefs[key] = old
